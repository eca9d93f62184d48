/* png.c — atomic PNG writer (libpng) with tEXt/iTXt metadata, and the checks of ff_viz_opts.
 * PNG spec §11.3.4 (tEXt keywords: 1-79 Latin-1 characters, no leading/trailing/double spaces). */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fisherflow/fisherflow.h"
#include "viz_internal.h"

ff_status viz_check_path(const char *fn, const char *path) {
    if (!path || !*path) return ff_errorf(FF_EINVAL, "%s: png_path is NULL or empty", fn);
    size_t n = strlen(path);
    if (path[n - 1] == '/') return ff_errorf(FF_EINVAL, "%s: png_path \"%s\" names a directory", fn, path);
    if (n > 3000) return ff_errorf(FF_EINVAL, "%s: png_path is %zu bytes long (max 3000)", fn, n);
    return FF_OK;
}

static ff_status check_key(const char *fn, int k, const char *key) {
    if (!key) return ff_errorf(FF_EINVAL, "%s: meta_keys[%d] is NULL", fn, k);
    size_t n = strlen(key);
    if (n < 1 || n > 79)
        return ff_errorf(FF_EINVAL, "%s: metadata key %d \"%s\" has %zu bytes (PNG keywords need 1-79)", fn, k, key, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        int ok = (c >= 32 && c <= 126) || c >= 161;
        if (!ok || (c == ' ' && (i == 0 || i == n - 1 || key[i + 1] == ' ')))
            return ff_errorf(FF_EINVAL, "%s: metadata key \"%s\": byte %zu (0x%02x) is not allowed in a PNG "
                             "keyword (printable Latin-1, single inner spaces)", fn, key, i, c);
    }
    if (!strcmp(key, "Software"))
        return ff_errorf(FF_EINVAL, "%s: metadata key \"Software\" is reserved (fisherflow writes it)", fn);
    return FF_OK;
}

static int is_ascii(const char *s) {
    for (; *s; s++) if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

/* Index of the first byte of an invalid UTF-8 sequence, or -1 when s is valid UTF-8. */
static long bad_utf8(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    for (long i = 0; s[i];) {
        int len = s[i] < 0x80 ? 1 : (s[i] >> 5) == 6 ? 2 : (s[i] >> 4) == 14 ? 3 : (s[i] >> 3) == 30 ? 4 : 0;
        if (!len) return i;
        for (int k = 1; k < len; k++) if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return -1;
}

ff_status viz_check_text(const char *fn, const char *what, const char *s) {
    if (!s) return FF_OK;
    long bad = bad_utf8(s);
    if (bad >= 0) return ff_errorf(FF_EINVAL, "%s: %s is not valid UTF-8 (byte %ld)", fn, what, bad);
    return FF_OK;
}

ff_status viz_check_opts(const char *fn, const ff_viz_opts *opts, int w, int h) {
    if (opts) FF_TRY(viz_check_text(fn, "opts.title", opts->title));
    if (w < 16 || h < 16 || w > 16384 || h > 16384)
        return ff_errorf(FF_EINVAL, "%s: image size %d x %d outside 16..16384 pixels per side", fn, w, h);
    if (!opts) return FF_OK;
    if (opts->n_meta < 0) return ff_errorf(FF_EINVAL, "%s: n_meta %d is negative", fn, (int)opts->n_meta);
    if (opts->n_meta > 0 && (!opts->meta_keys || !opts->meta_values))
        return ff_errorf(FF_EINVAL, "%s: n_meta %d but meta_keys or meta_values is NULL", fn, (int)opts->n_meta);
    for (int k = 0; k < opts->n_meta; k++) {
        FF_TRY(check_key(fn, k, opts->meta_keys[k]));
        for (int m = 0; m < k; m++)
            if (!strcmp(opts->meta_keys[m], opts->meta_keys[k]))
                return ff_errorf(FF_EINVAL, "%s: metadata key \"%s\" given twice (%d and %d)", fn, opts->meta_keys[k], m, k);
        const char *v = opts->meta_values[k];
        if (!v) return ff_errorf(FF_EINVAL, "%s: meta_values[%d] (key \"%s\") is NULL", fn, k, opts->meta_keys[k]);
        long bad = bad_utf8(v);
        if (bad >= 0)
            return ff_errorf(FF_EINVAL, "%s: metadata value of \"%s\" is not UTF-8 (byte %ld)", fn, opts->meta_keys[k], bad);
    }
    return FF_OK;
}

/* libpng reports errors by longjmp; we keep its message and jump back into write_png. */
typedef struct sink {
    int  fd;
    int  err;            /* errno of a failed write, 0 otherwise */
    char msg[256];
} sink;

static void sink_error(png_structp png, png_const_charp msg) {
    sink *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void sink_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void sink_write(png_structp png, png_bytep data, size_t len) {
    sink *s = png_get_io_ptr(png);
    while (len > 0) {
        ssize_t k = write(s->fd, data, len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            s->err = k < 0 ? errno : EIO;
            png_error(png, strerror(s->err));
        }
        data += k;
        len -= (size_t)k;
    }
}

static void sink_flush(png_structp png) { (void)png; }

/* Encodes rows (RGB, 3*w bytes each) to fd. Returns 0, or -1 with s->msg set. */
static int write_png(sink *s, png_bytep *rows, int w, int h, png_textp text, int n_text) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s, sink_error, sink_warning);
    if (!png) { snprintf(s->msg, sizeof s->msg, "png_create_write_struct failed"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(s->msg, sizeof s->msg, "png_create_info_struct failed");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, s, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_text(png, info, text, n_text);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

static atomic_uint tmp_counter;

ff_status viz_write_surface(const char *fn, const char *path, cairo_surface_t *surf, const ff_viz_opts *opts) {
    cairo_surface_flush(surf);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS)
        return ff_errorf(FF_EIO, "%s: drawing %s failed: %s", fn, path, cairo_status_to_string(cairo_surface_status(surf)));
    int w = cairo_image_surface_get_width(surf), h = cairo_image_surface_get_height(surf);
    int stride = cairo_image_surface_get_stride(surf);
    const unsigned char *px = cairo_image_surface_get_data(surf);
    if (!px || cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS)
        return ff_errorf(FF_ENOMEM, "%s: cairo surface %d x %d: %s", fn, w, h,
                         cairo_status_to_string(cairo_surface_status(surf)));

    int n_meta = opts ? opts->n_meta : 0;
    unsigned char *rgb = malloc((size_t)w * (size_t)h * 3);
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    png_text *text = calloc((size_t)n_meta + 1, sizeof *text);
    char *tmp = malloc(strlen(path) + 64);
    char software[64];
    int fd = -1, created = 0;
    ff_status st = FF_OK;
    if (!rgb || !rows || !text || !tmp) {
        st = ff_errorf(FF_ENOMEM, "%s: cannot allocate %d x %d image for %s", fn, w, h, path);
        goto done;
    }
    /* ARGB32 premultiplied (native endian) composited over white. */
    for (int y = 0; y < h; y++) {
        const uint32_t *src = (const uint32_t *)(px + (size_t)y * (size_t)stride);
        unsigned char *dst = rgb + (size_t)y * (size_t)w * 3;
        for (int x = 0; x < w; x++) {
            uint32_t v = src[x];
            unsigned a = v >> 24;
            dst[3 * x + 0] = (unsigned char)(((v >> 16) & 255) + 255 - a);
            dst[3 * x + 1] = (unsigned char)(((v >> 8) & 255) + 255 - a);
            dst[3 * x + 2] = (unsigned char)((v & 255) + 255 - a);
        }
        rows[y] = dst;
    }
    snprintf(software, sizeof software, "fisherflow %s", ff_version());
    text[0].compression = PNG_TEXT_COMPRESSION_NONE;
    text[0].key = (char *)"Software";
    text[0].text = software;
    for (int k = 0; k < n_meta; k++) {
        png_text *t = &text[k + 1];
        t->key = (char *)opts->meta_keys[k];
        t->text = (char *)opts->meta_values[k];
        t->compression = is_ascii(opts->meta_values[k]) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
    }

    /* The temporary sits next to the destination so that rename() is atomic. */
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    const char *base = path + dirlen;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        sprintf(tmp, "%.*s.%.40s.tmp%ld.%u", dirlen, path, base, (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    created = fd >= 0;
    if (fd < 0) {
        st = ff_errorf(FF_EIO, "%s: cannot write %s: cannot create a temporary file in \"%.*s\": %s", fn, path,
                       dirlen ? dirlen : 1, dirlen ? path : ".", strerror(errno));
        goto done;
    }
    sink s = { .fd = fd };
    if (write_png(&s, rows, w, h, text, n_meta + 1) != 0) {
        st = ff_errorf(FF_EIO, "%s: writing %s failed: %s", fn, path, s.msg);
        goto done;
    }
    if (fsync(fd) != 0) {
        st = ff_errorf(FF_EIO, "%s: fsync of %s failed: %s", fn, path, strerror(errno));
        goto done;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        st = ff_errorf(FF_EIO, "%s: closing %s failed: %s", fn, path, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = ff_errorf(FF_EIO, "%s: cannot rename the temporary to %s: %s", fn, path, strerror(errno));
        goto done;
    }
    created = 0;                           /* nothing left to remove */
    /* Make the rename itself durable (best effort: some filesystems refuse fsync on directories). */
    {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", dirlen ? dirlen : 1, dirlen ? path : ".");
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
    }
done:
    if (fd >= 0) close(fd);
    if (created) unlink(tmp);
    free(rgb); free(rows); free(text); free(tmp);
    return st;
}
