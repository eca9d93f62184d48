/* runner.c — the `fisherflow` executable: embeds LuaJIT, points package.path at the Lua layer (the
 * source/build tree when this binary lives in the build tree, else FF_BIN_TO_LUA from the binary's own
 * directory, so an install works in whatever prefix it was put), tells
 * lua/fisherflow/core.lua where libfisherflow is, and runs `run SCRIPT [--key value ...]`,
 * `plugins`, `--version`, `--help`. Script errors print "fisherflow: script.lua:12: message" + exit 1.
 * `run [--threads N] SCRIPT` (or FISHERFLOW_THREADS=N) sets the thread count (threads.h); every run
 * starts with one line on stderr: version, commit, threads, OpenBLAS version and kernel.
 * Under an MPI launcher (`mpirun -np N fisherflow run ...`, see dist.h) `run` initialises MPI first;
 * ranks other than 0 send their stdout to /dev/null (rank 0 speaks for the job; FF_DIST_STDOUT=all
 * keeps every rank's), and a script error on any rank ends the whole job naming that rank.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>
#include "fisherflow/fisherflow.h"
#include "ff_commit.h"        /* FF_GIT_COMMIT: the source tree's commit at build time, "" if unknown */

static void usage(FILE *f) {
    fprintf(f,
        "usage: fisherflow run SCRIPT.lua [--key value | --flag ...]   run an experiment script\n"
        "       fisherflow run --threads N SCRIPT.lua ...             the same with N threads (OpenBLAS's,\n"
        "                                                             the only ones; or FISHERFLOW_THREADS=N)\n"
        "       fisherflow run SCRIPT.lua --help                      list the script's arguments\n"
        "       fisherflow plugins                                    list the plugins found\n"
        "       fisherflow --version | --help\n");
}

/* Where the Lua files and libraries are. */
typedef struct paths {
    char exe_dir[PATH_MAX];
    char lua_dir[PATH_MAX];       /* lua/, holding fisherflow/init.lua and friends    */
    char gen_dir[PATH_MAX];       /* generated fisherflow/cdef.lua (== lua_dir when installed) */
    char lib[PATH_MAX];           /* libfisherflow as the dynamic loader found it      */
    char viz_lib[PATH_MAX];       /* "" when the viz library is not there              */
    int  build_tree;
} paths;

static int same_dir(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb)) return 0;
    return strcmp(ra, rb) == 0;
}

/* The file a loaded symbol came from: the runner is linked with libfisherflow (found through its
 * $ORIGIN-relative RPATH), and handing that same path to ffi.load makes Lua and the runner share one
 * copy of the library. */
static int lib_of(void *sym, char *out, size_t size) {
    Dl_info info;
    if (!sym || !dladdr(sym, &info) || !info.dli_fname) return 0;
    if (!realpath(info.dli_fname, out)) snprintf(out, size, "%s", info.dli_fname);
    return 1;
}

static int find_paths(paths *p) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) { fprintf(stderr, "fisherflow: cannot read /proc/self/exe\n"); return 0; }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(p->exe_dir, sizeof p->exe_dir, "%s", exe);
    p->build_tree = same_dir(p->exe_dir, FF_LIB_BUILD_DIR);
    if (p->build_tree) {
        snprintf(p->lua_dir, sizeof p->lua_dir, "%s", FF_LUA_BUILD_DIR);
        snprintf(p->gen_dir, sizeof p->gen_dir, "%s/lua", FF_LIB_BUILD_DIR);
    } else {
        char rel[PATH_MAX];
        int w = snprintf(rel, sizeof rel, "%s/%s", p->exe_dir, FF_BIN_TO_LUA);
        if (w < 0 || (size_t)w >= sizeof rel || !realpath(rel, p->lua_dir)) {
            fprintf(stderr, "fisherflow: the Lua files are not where this installation keeps them (%s)\n", rel);
            return 0;
        }
        snprintf(p->gen_dir, sizeof p->gen_dir, "%s", p->lua_dir);
    }
    if (!lib_of((void *)ff_version, p->lib, sizeof p->lib)) {
        fprintf(stderr, "fisherflow: cannot locate libfisherflow (dladdr failed)\n");
        return 0;
    }
    /* viz is optional at this level: looked up at run time, not linked by symbol. Installed, it sits
     * next to libfisherflow. */
    p->viz_lib[0] = '\0';
    if (!lib_of(dlsym(RTLD_DEFAULT, "ff_viz_simplex"), p->viz_lib, sizeof p->viz_lib)) {
        char cand[PATH_MAX], libdir[PATH_MAX];
        snprintf(libdir, sizeof libdir, "%s", p->lib);
        char *ls = strrchr(libdir, '/');
        if (ls) *ls = '\0';
        int w = p->build_tree ? snprintf(cand, sizeof cand, "%s/viz/libfisherflow_viz.so", FF_LIB_BUILD_DIR)
                              : snprintf(cand, sizeof cand, "%s/libfisherflow_viz.so", libdir);
        if (w > 0 && (size_t)w < sizeof cand && access(cand, R_OK) == 0)
            snprintf(p->viz_lib, sizeof p->viz_lib, "%s", cand);
    }
    return 1;
}

static void set_field(lua_State *L, const char *key, const char *value) {
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

/* package.path and package.loaded["fisherflow.config"]; no globals are created. */
static void setup_lua(lua_State *L, const paths *p, const char *script_dir) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *old = lua_tostring(L, -1);
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua;%s/?.lua;%s", p->lua_dir, p->lua_dir,
                    p->gen_dir, script_dir ? script_dir : ".", old ? old : "");
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);

    lua_getfield(L, -1, "loaded");
    lua_newtable(L);
    set_field(L, "lib", p->lib);
    if (p->viz_lib[0]) set_field(L, "viz_lib", p->viz_lib);
    set_field(L, "lua_dir", p->lua_dir);
    set_field(L, "gen_dir", p->gen_dir);
    set_field(L, "version", ff_version());
    if (FF_GIT_COMMIT[0]) set_field(L, "commit", FF_GIT_COMMIT);
    lua_pushboolean(L, p->build_tree);
    lua_setfield(L, -2, "build_tree");
    lua_setfield(L, -2, "fisherflow.config");
    lua_pop(L, 2);
}

/* Message handler: keeps ff.args' clean-exit marker as is, turns anything else into a string with
 * a traceback (from the frame that raised). */
static const char *msgh_src =
    "local e = ...\n"
    "if type(e) == 'table' and e.fisherflow_exit then return e end\n"
    "return { message = tostring(e), traceback = debug.traceback('', 2) }\n";

/* Runs the function on top of the stack with nargs arguments below it; returns the exit code. */
static int protected_call(lua_State *L, int nargs) {
    int base = lua_gettop(L) - nargs;
    if (luaL_loadbuffer(L, msgh_src, strlen(msgh_src), "=fisherflow") != 0) {
        fprintf(stderr, "fisherflow: %s\n", lua_tostring(L, -1));
        return 1;
    }
    lua_insert(L, base);                        /* handler below the function */
    int rc = lua_pcall(L, nargs, 0, base);
    if (rc == 0) { lua_remove(L, base); return 0; }
    int code = 1;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "fisherflow_exit");
        if (lua_isnumber(L, -1)) {
            code = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
            lua_getfield(L, -1, "message");
            if (lua_isstring(L, -1)) fprintf(stderr, "fisherflow: %s\n", lua_tostring(L, -1));
            lua_pop(L, 2);
            lua_remove(L, base);
            return code;
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "message");
        fprintf(stderr, "fisherflow: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object)");
        lua_pop(L, 1);
        lua_getfield(L, -1, "traceback");
        if (lua_isstring(L, -1))
            fprintf(stderr, "%s\n", lua_tostring(L, -1) + 1);     /* skip the leading newline */
        lua_pop(L, 1);
    } else {
        /* memory errors bypass the handler */
        fprintf(stderr, "fisherflow: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object)");
    }
    lua_pop(L, 1);
    lua_remove(L, base);
    return code;
}

static int run_script(lua_State *L, const char *script, int argc, char **argv) {
    /* package.loaded["fisherflow.script"] = { path = script, args = { ... } }: read by ff.args. */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_newtable(L);
    set_field(L, "path", script);
    lua_newtable(L);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "args");
    lua_setfield(L, -2, "fisherflow.script");
    lua_pop(L, 2);

    if (luaL_loadfile(L, script) != 0) {
        fprintf(stderr, "fisherflow: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 1;
    }
    char line[256];                  /* the start line, once the script is known to load */
    ff_threads_describe(line, sizeof line);
    fprintf(stderr, "fisherflow %s%s%s: %s\n", ff_version(), FF_GIT_COMMIT[0] ? ", commit " : "", FF_GIT_COMMIT, line);
    for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);   /* also as `...` */
    return protected_call(L, argc);
}

static int list_plugins(lua_State *L) {
    static const char *src = "return require('fisherflow').plugin.report(io.stdout)";
    if (luaL_loadbuffer(L, src, strlen(src), "=fisherflow plugins") != 0) {
        fprintf(stderr, "fisherflow: %s\n", lua_tostring(L, -1));
        return 1;
    }
    return protected_call(L, 0);
}

/* MPI when launched by mpirun (dist.h); stdout of ranks > 0 goes to /dev/null unless FF_DIST_STDOUT=all. */
static int start_dist(int *argc, char ***argv) {
    if (ff_dist_init(argc, argv) != FF_OK) {
        fprintf(stderr, "fisherflow: %s\n", ff_last_error());
        return 1;
    }
    const char *keep = getenv("FF_DIST_STDOUT");
    if (ff_dist_rank() > 0 && !(keep && !strcmp(keep, "all")) && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "fisherflow: rank %d: cannot send stdout to /dev/null\n", ff_dist_rank());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("fisherflow %s (%s, plugin ABI %d.%d%s)\n", ff_version(), LUAJIT_VERSION,
               FF_PLUGIN_ABI_MAJOR, FF_PLUGIN_ABI_MINOR, ff_dist_built() ? ", MPI" : "");
        return 0;
    }
    int is_run = !strcmp(argv[1], "run"), is_plugins = !strcmp(argv[1], "plugins");
    if (!is_run && !is_plugins) {
        fprintf(stderr, "fisherflow: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 1;
    }
    int script_at = 2;                /* argv index of the script */
    if (is_run) {
        /* the thread count: --threads N (before the script) wins over FISHERFLOW_THREADS */
        const char *threads = NULL, *what = "FISHERFLOW_THREADS";
        const char *env = getenv("FISHERFLOW_THREADS");
        if (env && env[0]) threads = env;
        if (argc > 2 && !strncmp(argv[2], "--threads", 9)) {
            if (argv[2][9] == '=') { threads = argv[2] + 10; script_at = 3; }
            else if (argv[2][9] == '\0' && argc > 3) { threads = argv[3]; script_at = 4; }
            else { fprintf(stderr, "fisherflow: --threads needs a value (fisherflow run --threads N SCRIPT.lua)\n"); return 1; }
            what = "--threads";
        }
        if (threads) {
            int n;
            if (ff_threads_parse(threads, what, &n) != FF_OK || ff_threads_set(n) != FF_OK) {
                fprintf(stderr, "fisherflow: %s\n", ff_last_error());
                return 1;
            }
        }
    }
    if (is_run && argc <= script_at) {
        fprintf(stderr, "fisherflow: run needs a script (fisherflow run [--threads N] SCRIPT.lua [args])\n");
        return 1;
    }

    paths p;
    if (!find_paths(&p)) return 1;

    char script_dir[PATH_MAX] = ".";
    if (is_run) {
        snprintf(script_dir, sizeof script_dir, "%s", argv[script_at]);
        char *slash = strrchr(script_dir, '/');
        if (slash) *slash = '\0'; else strcpy(script_dir, ".");
    }

    if (is_run && start_dist(&argc, &argv) != 0) return 1;
    lua_State *L = luaL_newstate();
    if (!L) { fprintf(stderr, "fisherflow: cannot create a Lua state (out of memory)\n"); return 1; }
    luaL_openlibs(L);
    setup_lua(L, &p, script_dir);
    int rc = is_run ? run_script(L, argv[script_at], argc - script_at - 1, argv + script_at + 1) : list_plugins(L);
    fflush(stdout);
    /* a failed rank takes the job down (the others would wait in their next collective) */
    if (rc != 0 && ff_dist_size() > 1) ff_dist_abort(rc, "the script failed on this rank (message above)");
    lua_close(L);                 /* runs every finalizer: tensors and flows are freed */
    if (ff_dist_finalize() != FF_OK) { fprintf(stderr, "fisherflow: %s\n", ff_last_error()); return 1; }
    return rc;
}
