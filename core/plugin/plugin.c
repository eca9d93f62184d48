/* plugin.c — the plugin loader: search path, dlopen, descriptor checks, refcounted handle cache,
 * option validation and instance lifetime (plugin.h; docs/DESIGN.md, "Plugin ABI", lists the refusals). */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fisherflow/plugin.h"

#ifndef FF_PLUGIN_BUILD_DIR
#define FF_PLUGIN_BUILD_DIR ""
#endif
#ifndef FF_LIB_OWN_BUILD_DIR
#define FF_LIB_OWN_BUILD_DIR ""
#endif
#ifndef FF_PLUGIN_SUBDIR
#define FF_PLUGIN_SUBDIR "fisherflow/plugins"
#endif

#define MAX_DIRS 64
#define MAX_PATH 4096

/* One dlopen'd, validated plugin file. Instances hold references; a handle with no reference
 * stays cached (so ff_plugin_find's descriptor stays valid) until ff_plugin_unload_unused. */
typedef struct handle {
    struct handle   *next;
    char            *path;
    void            *dl;
    const ff_plugin *desc;
    int              refs;     /* live instances */
    /* in-process registrations only (dl NULL, see ff_plugin_register): */
    ff_plugin        copy;     /* the loader's copy of the descriptor; desc points here            */
    int              orphan;   /* unregistered while instances lived: freed with the last one      */
} handle;

static handle         *cache;
static handle         *registry;     /* in-process registrations, looked up before files */
static handle *registered_locked(ff_plugin_kind kind, const char *name);
static void    registration_free(handle *h);
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *kind_names[] = { NULL, "source", "coupler", "network", "decoder" };

const char *ff_plugin_kind_name(ff_plugin_kind kind) {
    return (kind >= FF_PLUGIN_SOURCE && kind <= FF_PLUGIN_DECODER) ? kind_names[kind] : "?";
}

size_t ff_plugin_vtable_min_size(ff_plugin_kind kind) {
    switch (kind) {
    case FF_PLUGIN_SOURCE:  return sizeof(ff_source_vtable);
    case FF_PLUGIN_COUPLER: return offsetof(ff_coupler_vtable, plan);   /* 1.0 ended before plan */
    case FF_PLUGIN_NETWORK: return offsetof(ff_network_vtable, forward_reentrant);   /* 1.0-1.1 ended before it */
    case FF_PLUGIN_DECODER: return sizeof(ff_decoder_vtable);
    }
    return 0;
}

static int valid_name(const char *name) {
    if (!name || !name[0] || strlen(name) > 64) return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
    return 1;
}

/* --- search path ---------------------------------------------------------------------------- */

typedef struct dirlist {
    char        buf[MAX_PATH * 2];
    const char *dir[MAX_DIRS];
    int         n;
} dirlist;

static void dirs_add(dirlist *l, const char *d) {
    if (!d[0] || l->n == MAX_DIRS) return;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->dir[i], d)) return;       /* each directory once, first position wins */
    l->dir[l->n++] = d;
}

/* The shipped plugins' directory, found from where this library itself was loaded (so an install
 * works in any prefix): the build tree's plugins/ when this is the build tree's library, else
 * <the library's directory>/fisherflow/plugins. "" when dladdr cannot tell. */
static char           own_dir[MAX_PATH];
static pthread_once_t own_dir_once = PTHREAD_ONCE_INIT;

static void own_dir_find(void) {
    Dl_info info;
    char lib[MAX_PATH], build[MAX_PATH];
    if (!dladdr((void *)ff_plugin_search_path, &info) || !info.dli_fname || !realpath(info.dli_fname, lib))
        return;
    char *slash = strrchr(lib, '/');
    if (!slash) return;
    *slash = '\0';
    int w;
    if (FF_LIB_OWN_BUILD_DIR[0] && realpath(FF_LIB_OWN_BUILD_DIR, build) && !strcmp(build, lib))
        w = snprintf(own_dir, sizeof own_dir, "%s", FF_PLUGIN_BUILD_DIR);
    else
        w = snprintf(own_dir, sizeof own_dir, "%s/%s", lib, FF_PLUGIN_SUBDIR);
    if (w < 0 || (size_t)w >= sizeof own_dir) own_dir[0] = '\0';    /* too long: search nothing */
}

/* $FISHERFLOW_PLUGIN_PATH (read on every call, so a test or a script may set it late), then the
 * shipped plugins (own_dir_find). */
static void dirs_get(dirlist *l) {
    l->n = 0;
    const char *env = getenv("FISHERFLOW_PLUGIN_PATH");
    snprintf(l->buf, sizeof l->buf, "%s", env ? env : "");
    char *save = NULL;
    for (char *tok = strtok_r(l->buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
        dirs_add(l, tok);
    pthread_once(&own_dir_once, own_dir_find);
    dirs_add(l, own_dir);
}

static void dirs_join(const dirlist *l, char *buf, size_t size, const char *sep) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->n; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? sep : "", l->dir[i]);
        if (w < 0 || (size_t)w >= size - used) break;
        used += (size_t)w;
    }
}

const char *ff_plugin_search_path(void) {
    static _Thread_local char out[MAX_PATH * 2];
    dirlist l;
    dirs_get(&l);
    dirs_join(&l, out, sizeof out, ":");
    return out;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* --- loading and checking ------------------------------------------------------------------- */

static ff_status check_desc(const ff_plugin *d, const char *path, ff_plugin_kind kind, const char *name) {
    if (!d)
        return ff_errorf(FF_EPLUGIN, "%s: ff_plugin_entry returned NULL", path);
    if (d->abi_major != FF_PLUGIN_ABI_MAJOR)
        return ff_errorf(FF_EABI, "%s: built for plugin ABI %u.%u, this fisherflow speaks %d.%d "
                         "(rebuild against fisherflow %d.x headers)", path, d->abi_major, d->abi_minor,
                         FF_PLUGIN_ABI_MAJOR, FF_PLUGIN_ABI_MINOR, FF_PLUGIN_ABI_MAJOR);
    if (d->kind != (uint32_t)kind) {
        if (d->kind >= FF_PLUGIN_SOURCE && d->kind <= FF_PLUGIN_DECODER)
            return ff_errorf(FF_EPLUGIN, "%s: is a %s, asked for a %s", path,
                             kind_names[d->kind], ff_plugin_kind_name(kind));
        return ff_errorf(FF_EPLUGIN, "%s: is of unknown kind %u, asked for a %s", path, d->kind,
                         ff_plugin_kind_name(kind));
    }
    if (!d->name || strcmp(d->name, name))
        return ff_errorf(FF_EPLUGIN, "%s: descriptor names itself \"%s\", the file says \"%s\" "
                         "(a plugin must be built as %s_<its name>.so)", path,
                         d->name ? d->name : "(null)", name, ff_plugin_kind_name(kind));
    size_t need = ff_plugin_vtable_min_size(kind);
    if (!d->vtable || d->vtable_size < need)
        return ff_errorf(FF_EPLUGIN, "%s: vtable_size %u is below the %s vtable of ABI 1.0 (%zu bytes)%s",
                         path, d->vtable_size, ff_plugin_kind_name(kind), need,
                         d->vtable ? "" : "; vtable is NULL");
    char owner[96];
    snprintf(owner, sizeof owner, "%s: %s \"%s\"", path, ff_plugin_kind_name(kind), name);
    FF_TRY(ff_option_spec_check(d->options, owner));
    const char *missing = NULL;
    switch (kind) {
    case FF_PLUGIN_SOURCE: {
        const ff_source_vtable *v = d->vtable;
        missing = !v->create ? "create" : !v->sample ? "sample" : NULL;
        break;
    }
    case FF_PLUGIN_COUPLER: {
        const ff_coupler_vtable *v = d->vtable;
        missing = !v->create ? "create" : !v->pair ? "pair" : NULL;
        break;
    }
    case FF_PLUGIN_NETWORK: {
        const ff_network_vtable *v = d->vtable;
        missing = !v->create ? "create" : !v->forward ? "forward" : NULL;
        break;
    }
    case FF_PLUGIN_DECODER: {
        const ff_decoder_vtable *v = d->vtable;
        missing = !v->create ? "create" : !v->decode ? "decode" : NULL;
        break;
    }
    }
    if (missing)
        return ff_errorf(FF_EPLUGIN, "%s: vtable lacks the required function \"%s\"", path, missing);
    return FF_OK;
}

/* Loads and checks path (expected to hold kind/name), or returns the cached handle.
 * Caller holds cache_lock. A refused file is closed again and never cached. */
static ff_status load_locked(const char *path, ff_plugin_kind kind, const char *name, handle **out) {
    for (handle *h = cache; h; h = h->next)
        if (!strcmp(h->path, path)) { *out = h; return FF_OK; }
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        if (!e) e = "dlopen failed";
        if (!strncmp(e, path, strlen(path)))   /* glibc's text often starts with the path already */
            return ff_errorf(FF_EPLUGIN, "%s", e);
        return ff_errorf(FF_EPLUGIN, "%s: %s", path, e);
    }
    dlerror();
    void *sym = dlsym(dl, "ff_plugin_entry");
    if (!sym) {
        dlclose(dl);
        return ff_errorf(FF_EPLUGIN, "%s: not a fisherflow plugin (no ff_plugin_entry)", path);
    }
    ff_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);   /* object pointer -> function pointer, as POSIX allows */
    const ff_plugin *d = entry();
    ff_status s = check_desc(d, path, kind, name);
    if (s != FF_OK) { dlclose(dl); return s; }
    handle *h = calloc(1, sizeof *h);
    if (!h || !(h->path = strdup(path))) {
        free(h);
        dlclose(dl);
        return ff_errorf(FF_ENOMEM, "ff_plugin_find: out of memory");
    }
    h->dl = dl;
    h->desc = d;
    h->next = cache;
    cache = h;
    *out = h;
    return FF_OK;
}

/* Finds kind/name on the search path and loads it. Caller holds cache_lock. */
static ff_status find_locked(ff_plugin_kind kind, const char *name, handle **out) {
    if (kind < FF_PLUGIN_SOURCE || kind > FF_PLUGIN_DECODER)
        return ff_errorf(FF_EINVAL, "ff_plugin_find: unknown plugin kind %d", (int)kind);
    if (!valid_name(name))
        return ff_errorf(FF_EINVAL, "%s \"%s\": invalid plugin name (expected [a-z0-9_]+, at most 64 characters)",
                         kind_names[kind], name ? name : "(null)");
    handle *r = registered_locked(kind, name);
    if (r) { *out = r; return FF_OK; }
    dirlist l;
    char path[MAX_PATH];
    dirs_get(&l);
    for (int i = 0; i < l.n; i++) {
        snprintf(path, sizeof path, "%s/%s_%s.so", l.dir[i], kind_names[kind], name);
        if (is_file(path)) return load_locked(path, kind, name, out);
    }
    char looked[MAX_PATH * 2];
    dirs_join(&l, looked, sizeof looked, ", ");
    return ff_errorf(FF_EIO, "%s \"%s\" not found; looked in: %s", kind_names[kind], name,
                     l.n ? looked : "(no directory: set FISHERFLOW_PLUGIN_PATH)");
}

ff_status ff_plugin_find(ff_plugin_kind kind, const char *name, const ff_plugin **out) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_plugin_find: out is NULL");
    *out = NULL;
    handle *h = NULL;
    pthread_mutex_lock(&cache_lock);
    ff_status s = find_locked(kind, name, &h);
    pthread_mutex_unlock(&cache_lock);
    if (s == FF_OK) *out = h->desc;
    return s;
}

int ff_plugin_unload_unused(void) {
    int closed = 0;
    pthread_mutex_lock(&cache_lock);
    for (handle **p = &cache; *p;) {
        handle *h = *p;
        if (h->refs == 0) {
            *p = h->next;
            dlclose(h->dl);
            free(h->path);
            free(h);
            closed++;
        } else {
            p = &h->next;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return closed;
}

int ff_plugin_refs(const ff_plugin *desc) {
    int refs = -1;
    pthread_mutex_lock(&cache_lock);
    for (handle *h = cache; h; h = h->next)
        if (h->desc == desc) { refs = h->refs; break; }
    for (handle *h = registry; h && refs < 0; h = h->next)
        if (h->desc == desc) { refs = h->refs; break; }
    pthread_mutex_unlock(&cache_lock);
    return refs;
}

static void release(handle *h) {
    pthread_mutex_lock(&cache_lock);
    h->refs--;
    int drop = h->orphan && h->refs == 0;
    pthread_mutex_unlock(&cache_lock);
    if (drop) registration_free(h);
}

/* --- in-process registrations ------------------------------------------------------------- */

/* Caller holds cache_lock. */
static handle *registered_locked(ff_plugin_kind kind, const char *name) {
    for (handle *h = registry; h; h = h->next)
        if (h->desc->kind == (uint32_t)kind && !strcmp(h->desc->name, name)) return h;
    return NULL;
}

static void registration_free(handle *h) {
    if (!h) return;
    for (ff_option_spec *o = (ff_option_spec *)h->copy.options; o && o->name; o++) {
        free((char *)o->name);
        free((char *)o->default_value);
        free((char *)o->help);
    }
    free((void *)h->copy.options);
    free((void *)h->copy.vtable);
    free((char *)h->copy.name);
    free((char *)h->copy.version);
    free((char *)h->copy.summary);
    free(h);
}

static char *dup_or_null(const char *s, int *failed) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *failed = 1;
    return d;
}

/* The loader's own copy of a checked descriptor: vtable bytes, strings, option spec. */
static handle *registration_copy(const ff_plugin *d) {
    handle *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    int failed = 0;
    h->copy = *d;
    h->copy.name = dup_or_null(d->name, &failed);
    h->copy.version = dup_or_null(d->version, &failed);
    h->copy.summary = dup_or_null(d->summary, &failed);
    h->copy.options = NULL;
    void *vt = malloc(d->vtable_size);
    if (vt) memcpy(vt, d->vtable, d->vtable_size); else failed = 1;
    h->copy.vtable = vt;
    if (d->options) {
        size_t n = 0;
        while (d->options[n].name) n++;
        ff_option_spec *o = calloc(n + 1, sizeof *o);
        if (!o) failed = 1;
        for (size_t i = 0; o && i < n; i++) {
            o[i].type = d->options[i].type;
            o[i].name = dup_or_null(d->options[i].name, &failed);
            o[i].default_value = dup_or_null(d->options[i].default_value, &failed);
            o[i].help = dup_or_null(d->options[i].help, &failed);
        }
        h->copy.options = o;
    }
    h->desc = &h->copy;
    if (failed) { registration_free(h); return NULL; }
    return h;
}

ff_status ff_plugin_register(const ff_plugin *desc) {
    if (!desc) return ff_errorf(FF_EINVAL, "ff_plugin_register: desc is NULL");
    ff_plugin_kind kind = (ff_plugin_kind)desc->kind;
    if (kind < FF_PLUGIN_SOURCE || kind > FF_PLUGIN_DECODER)
        return ff_errorf(FF_EPLUGIN, "ff_plugin_register: unknown plugin kind %u (expected 1..4: source, "
                         "coupler, network, decoder)", desc->kind);
    if (!valid_name(desc->name))
        return ff_errorf(FF_EINVAL, "ff_plugin_register: %s \"%s\": invalid plugin name (expected [a-z0-9_]+, "
                         "at most 64 characters)", kind_names[kind], desc->name ? desc->name : "(null)");
    char who[128];
    snprintf(who, sizeof who, "ff_plugin_register: %s \"%s\"", kind_names[kind], desc->name);
    FF_TRY(check_desc(desc, who, kind, desc->name));     /* the checks a plugin file passes */
    pthread_mutex_lock(&cache_lock);
    ff_status s = FF_OK;
    if (registered_locked(kind, desc->name)) {
        s = ff_errorf(FF_EINVAL, "%s: a %s of that name is already registered (unregister it first)", who,
                      kind_names[kind]);
    } else {
        handle *h = registration_copy(desc);
        if (!h) s = ff_errorf(FF_ENOMEM, "%s: out of memory", who);
        else { h->next = registry; registry = h; }
    }
    pthread_mutex_unlock(&cache_lock);
    return s;
}

ff_status ff_plugin_unregister(ff_plugin_kind kind, const char *name) {
    if (kind < FF_PLUGIN_SOURCE || kind > FF_PLUGIN_DECODER)
        return ff_errorf(FF_EINVAL, "ff_plugin_unregister: unknown plugin kind %d", (int)kind);
    handle *drop = NULL;
    int found = 0;
    pthread_mutex_lock(&cache_lock);
    for (handle **p = &registry; *p; p = &(*p)->next) {
        handle *h = *p;
        if (h->desc->kind == (uint32_t)kind && name && !strcmp(h->desc->name, name)) {
            *p = h->next;
            found = 1;
            if (h->refs == 0) drop = h; else h->orphan = 1;
            break;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    registration_free(drop);
    if (!found)
        return ff_errorf(FF_EINVAL, "ff_plugin_unregister: %s \"%s\" is not registered", kind_names[kind],
                         name ? name : "(null)");
    return FF_OK;
}

int ff_plugin_emits_probs(const ff_plugin *desc) {
    if (!desc || desc->kind != FF_PLUGIN_DECODER || !desc->vtable) return 0;
    return desc->vtable_size >= offsetof(ff_decoder_vtable, emits_probs) + sizeof(int32_t)
        && ((const ff_decoder_vtable *)desc->vtable)->emits_probs != 0;
}

int ff_plugin_forward_reentrant(const ff_plugin *desc) {
    if (!desc || desc->kind != FF_PLUGIN_NETWORK || !desc->vtable) return 0;
    return desc->vtable_size >= offsetof(ff_network_vtable, forward_reentrant) + sizeof(int32_t)
        && ((const ff_network_vtable *)desc->vtable)->forward_reentrant != 0;
}

/* --- instances ------------------------------------------------------------------------------ */

ff_status ff_plugin_new(ff_plugin_inst **out, ff_plugin_kind kind, const char *name,
                        const ff_options *opts, const ff_space *space,
                        ff_params_t *params, ff_rng_t *rng) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_plugin_new: out is NULL");
    *out = NULL;
    handle *h = NULL;
    pthread_mutex_lock(&cache_lock);
    ff_status s = find_locked(kind, name, &h);
    if (s == FF_OK) h->refs++;
    pthread_mutex_unlock(&cache_lock);
    if (s != FF_OK) return s;

    char owner[96];
    snprintf(owner, sizeof owner, "%s \"%s\"", kind_names[kind], name);
    ff_plugin_inst *inst = calloc(1, sizeof *inst);
    if (!inst) { s = ff_errorf(FF_ENOMEM, "%s: out of memory", owner); goto fail; }
    inst->desc = h->desc;
    inst->handle = h;
    if (space) inst->space = *space;
    if (inst->space.k < 0 || inst->space.d < 0 || inst->space.cond_classes < 0 || inst->space.cond_channels < 0) {
        s = ff_errorf(FF_EINVAL, "%s: bad space k=%lld d=%lld cond_classes=%lld cond_channels=%lld", owner,
                      (long long)inst->space.k, (long long)inst->space.d,
                      (long long)inst->space.cond_classes, (long long)inst->space.cond_channels);
        goto fail;
    }
    if ((s = ff_options_copy(&inst->opts, opts)) != FF_OK) goto fail;
    if ((s = ff_options_validate(inst->opts, h->desc->options, owner)) != FF_OK) goto fail;

    ff_clear_error();
    switch (kind) {
    case FF_PLUGIN_SOURCE:
        s = ((const ff_source_vtable *)h->desc->vtable)->create(inst->opts, &inst->space, &inst->state);
        break;
    case FF_PLUGIN_COUPLER:
        s = ((const ff_coupler_vtable *)h->desc->vtable)->create(inst->opts, &inst->space, &inst->state);
        break;
    case FF_PLUGIN_NETWORK:
        if (!params) { s = ff_errorf(FF_EINVAL, "%s: a network needs a parameter registry (params is NULL)", owner); goto fail; }
        s = ((const ff_network_vtable *)h->desc->vtable)->create(inst->opts, &inst->space, params, rng, &inst->state);
        break;
    case FF_PLUGIN_DECODER:
        s = ((const ff_decoder_vtable *)h->desc->vtable)->create(inst->opts, &inst->space, &inst->state);
        break;
    }
    if (s != FF_OK) {
        if (s < FF_EINVAL || s > FF_ENUMERIC)
            s = ff_errorf(FF_EPLUGIN, "%s: create returned unknown status %d", owner, (int)s);
        else if (!ff_last_error()[0])
            ff_errorf(s, "%s: create failed (%s) without a message", owner, ff_status_name(s));
        inst->state = NULL;
        goto fail;
    }
    *out = inst;
    return FF_OK;
fail:
    if (inst) ff_options_free(inst->opts);
    free(inst);
    release(h);
    return s;
}

void ff_plugin_free(ff_plugin_inst *inst) {
    if (!inst) return;
    const void *vt = inst->desc->vtable;
    void (*destroy)(void *) = NULL;
    switch ((ff_plugin_kind)inst->desc->kind) {
    case FF_PLUGIN_SOURCE:  destroy = ((const ff_source_vtable *)vt)->destroy; break;
    case FF_PLUGIN_COUPLER: destroy = ((const ff_coupler_vtable *)vt)->destroy; break;
    case FF_PLUGIN_NETWORK: destroy = ((const ff_network_vtable *)vt)->destroy; break;
    case FF_PLUGIN_DECODER: destroy = ((const ff_decoder_vtable *)vt)->destroy; break;
    }
    if (destroy) destroy(inst->state);        /* before release: the code lives in the handle */
    ff_options_free(inst->opts);
    release(inst->handle);
    free(inst);
}

/* --- listing -------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "coupler_exact_ot.so" -> kind, name (into name, size >= 65). 0 if the file name does not fit. */
static int parse_file(const char *file, ff_plugin_kind *kind, char *name) {
    size_t len = strlen(file);
    if (len < 4 || strcmp(file + len - 3, ".so")) return 0;
    for (int k = FF_PLUGIN_SOURCE; k <= FF_PLUGIN_DECODER; k++) {
        size_t kl = strlen(kind_names[k]);
        if (!strncmp(file, kind_names[k], kl) && file[kl] == '_') {
            size_t nl = len - 3 - kl - 1;
            if (nl == 0 || nl > 64) return 0;
            memcpy(name, file + kl + 1, nl);
            name[nl] = '\0';
            *kind = (ff_plugin_kind)k;
            return valid_name(name);
        }
    }
    return 0;
}

ff_status ff_plugin_list(ff_plugin_list_fn fn, void *ctx) {
    if (!fn) return ff_errorf(FF_EINVAL, "ff_plugin_list: fn is NULL");
    dirlist l;
    dirs_get(&l);
    char **seen = NULL, **seen_path = NULL;   /* "kind_name" already reported, and where */
    int nseen = 0;
    ff_status s = FF_OK;
    for (int i = 0; i < l.n && s == FF_OK; i++) {
        DIR *dir = opendir(l.dir[i]);
        if (!dir) continue;                   /* a missing directory is not an error */
        char **files = NULL;
        int nfiles = 0;
        struct dirent *de;
        while ((de = readdir(dir))) {
            size_t len = strlen(de->d_name);
            if (len < 4 || strcmp(de->d_name + len - 3, ".so")) continue;
            char **nf = realloc(files, (size_t)(nfiles + 1) * sizeof *nf);
            if (!nf || !(nf[nfiles] = strdup(de->d_name))) {
                files = nf ? nf : files;
                s = ff_errorf(FF_ENOMEM, "ff_plugin_list: out of memory");
                break;
            }
            files = nf;
            nfiles++;
        }
        closedir(dir);
        if (files) qsort(files, (size_t)nfiles, sizeof *files, cmp_str);
        for (int f = 0; f < nfiles && s == FF_OK; f++) {
            char path[MAX_PATH], name[80], msg[2048];
            ff_plugin_kind kind;
            snprintf(path, sizeof path, "%s/%s", l.dir[i], files[f]);
            if (!is_file(path)) continue;
            if (!parse_file(files[f], &kind, name)) {
                fn(ctx, path, NULL, "file name is not <kind>_<name>.so (kinds: source, coupler, network, decoder)");
                continue;
            }
            int dup = -1;
            for (int k = 0; k < nseen; k++)
                if (!strcmp(seen[k], files[f])) { dup = k; break; }
            if (dup >= 0) {
                snprintf(msg, sizeof msg, "shadowed by %s (found earlier on the search path)", seen_path[dup]);
                fn(ctx, path, NULL, msg);
                continue;
            }
            char **ns = realloc(seen, (size_t)(nseen + 1) * sizeof *ns);
            char **np = ns ? realloc(seen_path, (size_t)(nseen + 1) * sizeof *np) : NULL;
            if (ns) seen = ns;
            if (np) seen_path = np;
            if (!ns || !np || !(seen[nseen] = strdup(files[f]))) {
                s = ff_errorf(FF_ENOMEM, "ff_plugin_list: out of memory");
                break;
            }
            if (!(seen_path[nseen] = strdup(path))) {
                free(seen[nseen]);
                s = ff_errorf(FF_ENOMEM, "ff_plugin_list: out of memory");
                break;
            }
            nseen++;
            handle *h = NULL;
            pthread_mutex_lock(&cache_lock);
            ff_status ls = load_locked(path, kind, name, &h);
            const ff_plugin *desc = ls == FF_OK ? h->desc : NULL;
            if (ls != FF_OK) snprintf(msg, sizeof msg, "%s", ff_last_error());
            pthread_mutex_unlock(&cache_lock);
            fn(ctx, path, desc, desc ? NULL : msg);   /* outside the lock: fn may call the loader */
        }
        for (int f = 0; f < nfiles; f++) free(files[f]);
        free(files);
    }
    for (int k = 0; k < nseen; k++) { free(seen[k]); free(seen_path[k]); }
    free(seen);
    free(seen_path);
    return s;
}
