/* io_safetensors.c — strict safetensors reader and atomic writer (io.h); the JSON parser is in
 * io_json.c. Format: huggingface.co/docs/safetensors. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fisherflow/io.h"
#include "io_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io_safetensors.c assumes a little-endian host (safetensors data is little-endian)"
#endif

/* ---------------------------------------------------------------- dtypes */
static const struct { const char *name; size_t size; } dtypes[] = {
    [FF_DTYPE_F32] = { "F32", 4 },  [FF_DTYPE_F16] = { "F16", 2 },  [FF_DTYPE_BF16] = { "BF16", 2 },
    [FF_DTYPE_F64] = { "F64", 8 },  [FF_DTYPE_I64] = { "I64", 8 },  [FF_DTYPE_I32] = { "I32", 4 },
    [FF_DTYPE_I16] = { "I16", 2 },  [FF_DTYPE_I8]  = { "I8", 1 },   [FF_DTYPE_U64] = { "U64", 8 },
    [FF_DTYPE_U32] = { "U32", 4 },  [FF_DTYPE_U16] = { "U16", 2 },  [FF_DTYPE_U8]  = { "U8", 1 },
    [FF_DTYPE_BOOL] = { "BOOL", 1 },
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *ff_dtype_name(ff_dtype t) {
    return (t > 0 && (int)t < N_DTYPES) ? dtypes[t].name : "?";
}
size_t ff_dtype_size(ff_dtype t) {
    return (t > 0 && (int)t < N_DTYPES) ? dtypes[t].size : 0;
}
static ff_dtype dtype_from(const char *s) {
    for (int i = 1; i < N_DTYPES; i++) if (!strcmp(s, dtypes[i].name)) return (ff_dtype)i;
    return (ff_dtype)0;
}

/* ---------------------------------------------------------------- reader */
typedef struct st_entry {
    char    *name;
    ff_dtype dtype;
    int      ndim;
    int64_t  shape[FF_ST_MAX_DIMS];
    int64_t  numel;
    uint64_t begin, end;
} st_entry;

struct ff_safetensors {
    unsigned char *buf;     /* the whole file */
    size_t         len;
    size_t         data0;   /* 8 + header length */
    int            n;
    st_entry      *e;       /* sorted by begin   */
    int            nmeta;
    char         **mkeys, **mvals;
    char          *label;
};

void ff_safetensors_free(ff_safetensors_t *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->e[i].name);
    for (int i = 0; i < st->nmeta; i++) { free(st->mkeys[i]); free(st->mvals[i]); }
    free(st->e); free(st->mkeys); free(st->mvals); free(st->buf); free(st->label);
    free(st);
}

static int cmp_entry(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static ff_status parse_tensor_entry(jparser *p, const char *name, size_t keyoff, const jval *v,
                                    uint64_t datalen, st_entry *e) {
    char msg[512];
    const char *lab = p->label;
    size_t at = p->base + keyoff;
    if (v->type != J_OBJ)
        return ff_errorf(FF_EIO, "%s: byte %zu: tensor \"%.200s\": expected an object {dtype, shape, data_offsets}",
                         lab, at, name);
    const jval *dt = NULL, *sh = NULL, *of = NULL;
    for (size_t i = 0; i < v->n; i++) {
        if (!strcmp(v->keys[i], "dtype")) dt = &v->items[i];
        else if (!strcmp(v->keys[i], "shape")) sh = &v->items[i];
        else if (!strcmp(v->keys[i], "data_offsets")) of = &v->items[i];
        else {
            snprintf(msg, sizeof msg, "tensor \"%.200s\": unknown field \"%.100s\" (expected dtype, shape, data_offsets)",
                     name, v->keys[i]);
            return jerr(p, v->keyoffs[i], msg);
        }
    }
    if (!dt || !sh || !of)
        return ff_errorf(FF_EIO, "%s: byte %zu: tensor \"%.200s\": missing field \"%s\"", lab, at, name,
                         !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (dt->type != J_STR || !(e->dtype = dtype_from(dt->str))) {
        snprintf(msg, sizeof msg, "tensor \"%.200s\": unknown dtype %s%.40s%s (expected F32, F16, BF16, F64, "
                 "I64, I32, I16, I8, U64, U32, U16, U8 or BOOL)", name,
                 dt->type == J_STR ? "\"" : "", dt->type == J_STR ? dt->str : "(not a string)",
                 dt->type == J_STR ? "\"" : "");
        return jerr(p, dt->off, msg);
    }
    if (sh->type != J_ARR) {
        snprintf(msg, sizeof msg, "tensor \"%.200s\": shape must be an array of integers", name);
        return jerr(p, sh->off, msg);
    }
    if (sh->n > FF_ST_MAX_DIMS) {
        snprintf(msg, sizeof msg, "tensor \"%.200s\": %zu dims, at most %d supported", name, sh->n, FF_ST_MAX_DIMS);
        return jerr(p, sh->off, msg);
    }
    e->ndim = (int)sh->n;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < sh->n; i++) {
        uint64_t d;
        if (!json_uint(&sh->items[i], &d) || d > (uint64_t)INT64_MAX) {
            snprintf(msg, sizeof msg, "tensor \"%.200s\": shape[%zu] is not a non-negative integer", name, i);
            return jerr(p, sh->items[i].off, msg);
        }
        e->shape[i] = (int64_t)d;
        if (d && numel > (uint64_t)INT64_MAX / d) overflow = 1;
        else numel *= d;
    }
    /* A zero dimension makes the product 0 even if other dims "overflowed". */
    for (size_t i = 0; i < sh->n; i++) if (e->shape[i] == 0) { overflow = 0; numel = 0; }
    size_t esz = dtypes[e->dtype].size;
    if (overflow || numel > UINT64_MAX / esz) {
        snprintf(msg, sizeof msg, "tensor \"%.200s\": shape product overflows 64 bits", name);
        return jerr(p, sh->off, msg);
    }
    e->numel = (int64_t)numel;
    if (of->type != J_ARR || of->n != 2 || !json_uint(&of->items[0], &e->begin) ||
        !json_uint(&of->items[1], &e->end)) {
        snprintf(msg, sizeof msg, "tensor \"%.200s\": data_offsets must be [begin, end] (non-negative integers)", name);
        return jerr(p, of->off, msg);
    }
    if (e->begin > e->end) {
        snprintf(msg, sizeof msg, "tensor \"%.200s\": data_offsets [%llu, %llu] end before begin", name,
                 (unsigned long long)e->begin, (unsigned long long)e->end);
        return jerr(p, of->off, msg);
    }
    if (e->end > datalen) {
        snprintf(msg, sizeof msg, "tensor \"%.200s\": data_offsets end %llu beyond the data section (%llu bytes; file truncated?)",
                 name, (unsigned long long)e->end, (unsigned long long)datalen);
        return jerr(p, of->off, msg);
    }
    if (e->end - e->begin != numel * esz) {
        char shp[200];
        size_t u = 0;
        shp[0] = '\0';
        for (int i = 0; i < e->ndim && u < sizeof shp; i++)
            u += (size_t)snprintf(shp + u, sizeof shp - u, i ? ",%lld" : "%lld", (long long)e->shape[i]);
        snprintf(msg, sizeof msg, "tensor \"%.200s\": %s [%s] needs %llu bytes, data_offsets span %llu", name,
                 dtypes[e->dtype].name, shp, (unsigned long long)(numel * esz),
                 (unsigned long long)(e->end - e->begin));
        return jerr(p, of->off, msg);
    }
    return FF_OK;
}

static ff_status parse_file(ff_safetensors_t *st) {
    const char *lab = st->label;
    size_t len = st->len;
    if (len == 0) return ff_errorf(FF_EIO, "%s: empty file (0 bytes); expected an 8-byte header length", lab);
    if (len < 8) return ff_errorf(FF_EIO, "%s: truncated: %zu bytes, expected at least the 8-byte header length", lab, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->buf[i];
    if (hlen > len - 8)
        return ff_errorf(FF_EIO, "%s: byte 0: header length %llu exceeds the file (%zu bytes after the length; truncated or not safetensors)",
                         lab, (unsigned long long)hlen, len - 8);
    if (hlen < 2) return ff_errorf(FF_EIO, "%s: byte 8: header of %llu bytes; expected a JSON object", lab, (unsigned long long)hlen);
    st->data0 = 8 + (size_t)hlen;
    uint64_t datalen = len - st->data0;

    jparser p = { .s = (const char *)st->buf + 8, .n = (size_t)hlen, .i = 0, .base = 8, .label = lab };
    jval root;
    memset(&root, 0, sizeof root);
    ff_status s;
    jskip_ws(&p);
    if (p.i >= p.n || p.s[p.i] != '{') {
        char msg[96];
        snprintf(msg, sizeof msg, "expected the header to be a JSON object '{', got %s", jdescribe(&p));
        return jerr(&p, p.i, msg);
    }
    if ((s = jparse_value(&p, &root)) != FF_OK) goto done;
    jskip_ws(&p);
    if (p.i != p.n) {
        char msg[96];
        snprintf(msg, sizeof msg, "unexpected %s after the header object", jdescribe(&p));
        s = jerr(&p, p.i, msg);
        goto done;
    }
    size_t ntensors = 0;
    for (size_t i = 0; i < root.n; i++) if (strcmp(root.keys[i], "__metadata__")) ntensors++;
    st->e = calloc(ntensors ? ntensors : 1, sizeof *st->e);
    if (!st->e) { s = ff_errorf(FF_ENOMEM, "%s: out of memory", lab); goto done; }
    for (size_t i = 0; i < root.n; i++) {
        const jval *v = &root.items[i];
        if (!strcmp(root.keys[i], "__metadata__")) {
            if (v->type != J_OBJ) { s = jerr(&p, v->off, "__metadata__ must be an object of strings"); goto done; }
            st->mkeys = calloc(v->n ? v->n : 1, sizeof *st->mkeys);
            st->mvals = calloc(v->n ? v->n : 1, sizeof *st->mvals);
            if (!st->mkeys || !st->mvals) { s = ff_errorf(FF_ENOMEM, "%s: out of memory", lab); goto done; }
            for (size_t j = 0; j < v->n; j++) {
                if (v->items[j].type != J_STR) {
                    char msg[300];
                    snprintf(msg, sizeof msg, "__metadata__ \"%.200s\": expected a string value", v->keys[j]);
                    s = jerr(&p, v->items[j].off, msg);
                    goto done;
                }
                st->mkeys[j] = v->keys[j]; v->keys[j] = NULL;          /* take ownership */
                st->mvals[j] = v->items[j].str; v->items[j].str = NULL;
                st->nmeta++;
            }
            continue;
        }
        if (root.keys[i][0] == '\0') { s = jerr(&p, root.keyoffs[i], "empty tensor name"); goto done; }
        st_entry *e = &st->e[st->n];
        if ((s = parse_tensor_entry(&p, root.keys[i], root.keyoffs[i], v, datalen, e)) != FF_OK) goto done;
        e->name = root.keys[i]; root.keys[i] = NULL;
        st->n++;
    }
    qsort(st->e, (size_t)st->n, sizeof *st->e, cmp_entry);
    uint64_t cursor = 0;
    for (int i = 0; i < st->n; i++) {
        const st_entry *e = &st->e[i];
        if (e->begin < cursor) {
            s = ff_errorf(FF_EIO, "%s: tensor \"%.200s\": data [%llu, %llu) overlaps \"%.200s\" (which ends at %llu)",
                          lab, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                          st->e[i - 1].name, (unsigned long long)cursor);
            goto done;
        }
        if (e->begin > cursor) {
            s = ff_errorf(FF_EIO, "%s: tensor \"%.200s\": data starts at %llu, expected %llu (a gap of %llu bytes%s%.200s%s)",
                          lab, e->name, (unsigned long long)e->begin, (unsigned long long)cursor,
                          (unsigned long long)(e->begin - cursor), i ? " after \"" : " at the start",
                          i ? st->e[i - 1].name : "", i ? "\"" : "");
            goto done;
        }
        cursor = e->end;
    }
    if (cursor != datalen) {
        s = ff_errorf(FF_EIO, "%s: byte %llu: %llu bytes after the last tensor's data (expected the file to end there)",
                      lab, (unsigned long long)(st->data0 + cursor), (unsigned long long)(datalen - cursor));
        goto done;
    }
    s = FF_OK;
done:
    jfree(&root);
    return s;
}

ff_status ff_safetensors_parse(ff_safetensors_t **out, const void *buf, size_t len, const char *label) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_safetensors_parse: out is NULL");
    *out = NULL;
    if (!buf && len) return ff_errorf(FF_EINVAL, "ff_safetensors_parse: buf is NULL");
    ff_safetensors_t *st = calloc(1, sizeof *st);
    if (!st) return ff_errorf(FF_ENOMEM, "ff_safetensors_parse: out of memory");
    st->label = strdup(label ? label : "(memory)");
    st->buf = malloc(len ? len : 1);
    if (!st->label || !st->buf) { ff_safetensors_free(st); return ff_errorf(FF_ENOMEM, "ff_safetensors_parse: out of memory"); }
    if (len) memcpy(st->buf, buf, len);
    st->len = len;
    ff_status s = parse_file(st);
    if (s != FF_OK) { ff_safetensors_free(st); return s; }
    *out = st;
    return FF_OK;
}

ff_status ff_safetensors_read(ff_safetensors_t **out, const char *path) {
    if (!out || !path) return ff_errorf(FF_EINVAL, "ff_safetensors_read: NULL argument");
    *out = NULL;
    ff_safetensors_t *st = calloc(1, sizeof *st);
    if (!st) return ff_errorf(FF_ENOMEM, "ff_safetensors_read: out of memory");
    st->label = strdup(path);
    if (!st->label) { free(st); return ff_errorf(FF_ENOMEM, "ff_safetensors_read: out of memory"); }
    ff_status s = ff_io_read_file(path, &st->buf, &st->len);
    if (s == FF_OK) s = parse_file(st);
    if (s != FF_OK) { ff_safetensors_free(st); return s; }
    *out = st;
    return FF_OK;
}

int ff_safetensors_count(const ff_safetensors_t *st) { return st ? st->n : 0; }

static void fill_info(const st_entry *e, ff_st_info *info) {
    memset(info, 0, sizeof *info);
    info->name = e->name; info->dtype = e->dtype; info->ndim = e->ndim; info->numel = e->numel;
    info->begin = e->begin; info->end = e->end;
    memcpy(info->shape, e->shape, sizeof info->shape);
}

ff_status ff_safetensors_info(const ff_safetensors_t *st, int i, ff_st_info *info) {
    if (!st || !info) return ff_errorf(FF_EINVAL, "ff_safetensors_info: NULL argument");
    if (i < 0 || i >= st->n)
        return ff_errorf(FF_EINVAL, "ff_safetensors_info: %s: index %d outside [0, %d)", st->label, i, st->n);
    fill_info(&st->e[i], info);
    return FF_OK;
}

static const st_entry *find(const ff_safetensors_t *st, const char *name) {
    for (int i = 0; i < st->n; i++) if (!strcmp(st->e[i].name, name)) return &st->e[i];
    return NULL;
}

ff_status ff_safetensors_find(const ff_safetensors_t *st, const char *name, ff_st_info *info) {
    if (!st || !name || !info) return ff_errorf(FF_EINVAL, "ff_safetensors_find: NULL argument");
    const st_entry *e = find(st, name);
    if (!e) return ff_errorf(FF_EINVAL, "%s: no tensor named \"%s\"", st->label, name);
    fill_info(e, info);
    return FF_OK;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) bits = sign | 0x7F800000u | (man << 13);            /* inf / nan */
    else if (exp == 0) {
        if (man == 0) bits = sign;                                        /* +-0        */
        else {                                                            /* subnormal  */
            float f = ldexpf((float)man, -24);
            return sign ? -f : f;
        }
    } else bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

ff_status ff_safetensors_get(const ff_safetensors_t *st, const char *name, ff_tensor_t **out) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_safetensors_get: out is NULL");
    *out = NULL;
    if (!st || !name) return ff_errorf(FF_EINVAL, "ff_safetensors_get: NULL argument");
    const st_entry *e = find(st, name);
    if (!e) return ff_errorf(FF_EINVAL, "%s: no tensor named \"%s\"", st->label, name);
    if (e->ndim > FF_MAX_DIMS)
        return ff_errorf(FF_ESHAPE, "%s: tensor \"%s\" has %d dims; fisherflow tensors have at most %d",
                         st->label, name, e->ndim, FF_MAX_DIMS);
    ff_tensor_t *t;
    FF_TRY(ff_tensor_new(&t, e->ndim, e->shape));
    const unsigned char *src = st->buf + st->data0 + e->begin;
    for (int64_t i = 0; i < e->numel; i++) {
        float f = 0;
        double dv;
        const unsigned char *q = src + (size_t)i * dtypes[e->dtype].size;
        int exact = 1;
        switch (e->dtype) {
        case FF_DTYPE_F32: memcpy(&f, q, 4); break;
        case FF_DTYPE_F16: { uint16_t h; memcpy(&h, q, 2); f = half_to_float(h); break; }
        case FF_DTYPE_BF16: { uint16_t h; memcpy(&h, q, 2); uint32_t b = (uint32_t)h << 16; memcpy(&f, &b, 4); break; }
        case FF_DTYPE_F64:
            memcpy(&dv, q, 8);
            if (isfinite(dv) && fabs(dv) > 3.4028234663852886e38) exact = 0;
            f = (float)dv;
            break;
        case FF_DTYPE_I64: { int64_t x; memcpy(&x, q, 8); f = (float)x; exact = (double)f == (double)x && x != INT64_MAX; break; }
        case FF_DTYPE_U64: { uint64_t x; memcpy(&x, q, 8); f = (float)x; exact = x < (1ull << 63) && (double)f == (double)x; break; }
        case FF_DTYPE_I32: { int32_t x; memcpy(&x, q, 4); f = (float)x; exact = (double)f == (double)x; break; }
        case FF_DTYPE_U32: { uint32_t x; memcpy(&x, q, 4); f = (float)x; exact = (double)f == (double)x; break; }
        case FF_DTYPE_I16: { int16_t x; memcpy(&x, q, 2); f = (float)x; break; }
        case FF_DTYPE_U16: { uint16_t x; memcpy(&x, q, 2); f = (float)x; break; }
        case FF_DTYPE_I8: f = (float)(int8_t)q[0]; break;
        case FF_DTYPE_U8: f = (float)q[0]; break;
        case FF_DTYPE_BOOL:
            if (q[0] > 1) exact = 0;
            f = (float)q[0];
            break;
        }
        if (!exact) {
            ff_tensor_free(t);
            return ff_errorf(FF_EIO, "%s: tensor \"%s\" (%s): element %lld is not representable as float32%s",
                             st->label, name, dtypes[e->dtype].name, (long long)i,
                             e->dtype == FF_DTYPE_BOOL ? " (BOOL byte not 0 or 1)" : "");
        }
        t->data[i] = f;
    }
    *out = t;
    return FF_OK;
}

ff_status ff_safetensors_get_raw(const ff_safetensors_t *st, const char *name, ff_dtype dtype,
                                 const void **data, size_t *bytes) {
    if (!st || !name || !data || !bytes) return ff_errorf(FF_EINVAL, "ff_safetensors_get_raw: NULL argument");
    const st_entry *e = find(st, name);
    if (!e) return ff_errorf(FF_EINVAL, "%s: no tensor named \"%s\"", st->label, name);
    if (e->dtype != dtype)
        return ff_errorf(FF_EIO, "%s: tensor \"%s\" is %s, expected %s", st->label, name,
                         dtypes[e->dtype].name, ff_dtype_name(dtype));
    *data = st->buf + st->data0 + e->begin;
    *bytes = (size_t)(e->end - e->begin);
    return FF_OK;
}

const char *ff_safetensors_meta(const ff_safetensors_t *st, const char *key) {
    if (!st || !key) return NULL;
    for (int i = 0; i < st->nmeta; i++) if (!strcmp(st->mkeys[i], key)) return st->mvals[i];
    return NULL;
}
int ff_safetensors_meta_count(const ff_safetensors_t *st) { return st ? st->nmeta : 0; }
const char *ff_safetensors_meta_key(const ff_safetensors_t *st, int i) {
    return (st && i >= 0 && i < st->nmeta) ? st->mkeys[i] : NULL;
}
const char *ff_safetensors_meta_value(const ff_safetensors_t *st, int i) {
    return (st && i >= 0 && i < st->nmeta) ? st->mvals[i] : NULL;
}

/* ---------------------------------------------------------------- atomic write */
static int crash_before_rename;
void ff_io_test_crash_before_rename(int on) { crash_before_rename = on; }

typedef struct { const void *p; size_t n; } seg;

static ff_status write_all(int fd, const void *p, size_t n, const char *tmp) {
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return ff_errorf(FF_EIO, "%s: write failed: %s", tmp, w < 0 ? strerror(errno) : "no progress");
        b += w; n -= (size_t)w;
    }
    return FF_OK;
}

static ff_status atomic_write_segs(const char *path, const seg *segs, int nseg) {
    static unsigned counter;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 64), *dir = malloc(plen + 2);
    if (!tmp || !dir) { free(tmp); free(dir); return ff_errorf(FF_ENOMEM, "%s: out of memory", path); }
    snprintf(tmp, plen + 64, "%s.tmp.%ld.%u", path, (long)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    const char *slash = strrchr(path, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else { memcpy(dir, path, (size_t)(slash - path)); dir[slash - path] = '\0'; }

    ff_status s = FF_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) { s = ff_errorf(FF_EIO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno)); goto out; }
    for (int i = 0; i < nseg && s == FF_OK; i++) s = write_all(fd, segs[i].p, segs[i].n, tmp);
    if (s == FF_OK && fsync(fd) != 0) s = ff_errorf(FF_EIO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == FF_OK) s = ff_errorf(FF_EIO, "%s: close failed: %s", tmp, strerror(errno));
    if (s != FF_OK) { unlink(tmp); goto out; }
    if (crash_before_rename) {   /* a crash here leaves the temp file and the old file untouched */
        s = ff_errorf(FF_EIO, "%s: simulated crash before rename (temporary file %s left behind)", path, tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        s = ff_errorf(FF_EIO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {   /* make the rename durable; some filesystems refuse fsync on a directory */
        if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
            s = ff_errorf(FF_EIO, "%s: fsync of directory %s failed: %s", path, dir, strerror(errno));
        close(dfd);
    }
out:
    free(tmp); free(dir);
    return s;
}

ff_status ff_io_write_atomic(const char *path, const void *data, size_t bytes) {
    if (!path || (!data && bytes)) return ff_errorf(FF_EINVAL, "ff_io_write_atomic: NULL argument");
    seg sg = { data, bytes };
    return atomic_write_segs(path, &sg, 1);
}

/* ---------------------------------------------------------------- writer */
typedef struct wr_entry {
    char    *name;
    ff_dtype dtype;
    int      ndim;
    int64_t  shape[FF_ST_MAX_DIMS];
    size_t   bytes;
    void    *data;
    int      owned;     /* 0: borrowed from the caller until the write */
} wr_entry;

struct ff_st_writer {
    wr_entry *e;
    int       n, cap;
    char    **mk, **mv;
    int       nm, mcap;
};

ff_status ff_st_writer_new(ff_st_writer_t **out) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_st_writer_new: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? FF_OK : ff_errorf(FF_ENOMEM, "ff_st_writer_new: out of memory");
}

void ff_st_writer_free(ff_st_writer_t *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) { free(w->e[i].name); if (w->e[i].owned) free(w->e[i].data); }
    for (int i = 0; i < w->nm; i++) { free(w->mk[i]); free(w->mv[i]); }
    free(w->e); free(w->mk); free(w->mv); free(w);
}

static ff_status check_name(const char *fn, const char *name) {
    if (!name || !name[0] || strlen(name) > 255)
        return ff_errorf(FF_EINVAL, "%s: tensor name must be 1..255 bytes, got %s", fn, name ? "a longer one" : "NULL");
    if (!ff_io_utf8_valid(name)) return ff_errorf(FF_EINVAL, "%s: tensor name is not valid UTF-8", fn);
    if (!strcmp(name, "__metadata__")) return ff_errorf(FF_EINVAL, "%s: \"__metadata__\" is reserved", fn);
    return FF_OK;
}

static ff_status add_entry(ff_st_writer_t *w, const char *fn, const char *name, ff_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, int copy) {
    if (!w) return ff_errorf(FF_EINVAL, "%s: writer is NULL", fn);
    FF_TRY(check_name(fn, name));
    if (!ff_dtype_size(dtype)) return ff_errorf(FF_EINVAL, "%s: \"%s\": unknown dtype %d", fn, name, (int)dtype);
    if (ndim < 0 || ndim > FF_ST_MAX_DIMS || (ndim && !shape))
        return ff_errorf(FF_EINVAL, "%s: \"%s\": ndim %d outside [0, %d]", fn, name, ndim, FF_ST_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->e[i].name, name)) return ff_errorf(FF_EINVAL, "%s: duplicate tensor name \"%s\"", fn, name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return ff_errorf(FF_EINVAL, "%s: \"%s\": negative size at dim %d", fn, name, i);
        if (shape[i] && numel > SIZE_MAX / 16 / (size_t)shape[i])
            return ff_errorf(FF_EINVAL, "%s: \"%s\": shape too large", fn, name);
        numel *= (size_t)shape[i];
    }
    size_t bytes = numel * ff_dtype_size(dtype);
    if (bytes && !data) return ff_errorf(FF_EINVAL, "%s: \"%s\": data is NULL", fn, name);
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        wr_entry *e = realloc(w->e, (size_t)nc * sizeof *e);
        if (!e) return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
        w->e = e; w->cap = nc;
    }
    wr_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->owned = copy;
    e->data = copy ? malloc(bytes ? bytes : 1) : (void *)data;
    if (!e->name || (copy && !e->data)) {
        free(e->name);
        if (copy) free(e->data);
        return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
    }
    if (copy && bytes) memcpy(e->data, data, bytes);
    e->dtype = dtype; e->ndim = ndim; e->bytes = bytes;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    w->n++;
    return FF_OK;
}

ff_status ff_st_writer_add_raw(ff_st_writer_t *w, const char *name, ff_dtype dtype, int ndim,
                               const int64_t *shape, const void *data) {
    return add_entry(w, "ff_st_writer_add_raw", name, dtype, ndim, shape, data, 1);
}

ff_status ff_st_writer_add_borrowed(ff_st_writer_t *w, const char *name, ff_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data) {
    return add_entry(w, "ff_st_writer_add_borrowed", name, dtype, ndim, shape, data, 0);
}

ff_status ff_st_writer_add(ff_st_writer_t *w, const char *name, const ff_tensor_t *t) {
    if (!t) return ff_errorf(FF_EINVAL, "ff_st_writer_add: \"%s\": tensor is NULL", name ? name : "?");
    if (ff_tensor_is_contiguous(t)) return ff_st_writer_add_raw(w, name, FF_DTYPE_F32, t->ndim, t->shape, t->data);
    ff_tensor_t *c;
    FF_TRY(ff_tensor_clone(&c, t));
    ff_status s = ff_st_writer_add_raw(w, name, FF_DTYPE_F32, c->ndim, c->shape, c->data);
    ff_tensor_free(c);
    return s;
}

ff_status ff_st_writer_meta(ff_st_writer_t *w, const char *key, const char *value) {
    if (!w || !key || !value) return ff_errorf(FF_EINVAL, "ff_st_writer_meta: NULL argument");
    if (!ff_io_utf8_valid(key) || !ff_io_utf8_valid(value))
        return ff_errorf(FF_EINVAL, "ff_st_writer_meta: key \"%.100s\" or its value is not valid UTF-8", key);
    for (int i = 0; i < w->nm; i++) {
        if (!strcmp(w->mk[i], key)) {
            char *v = strdup(value);
            if (!v) return ff_errorf(FF_ENOMEM, "ff_st_writer_meta: out of memory");
            free(w->mv[i]); w->mv[i] = v;
            return FF_OK;
        }
    }
    if (w->nm == w->mcap) {
        int nc = w->mcap ? 2 * w->mcap : 8;
        char **k = realloc(w->mk, (size_t)nc * sizeof *k);
        if (!k) return ff_errorf(FF_ENOMEM, "ff_st_writer_meta: out of memory");
        w->mk = k;
        char **v = realloc(w->mv, (size_t)nc * sizeof *v);
        if (!v) return ff_errorf(FF_ENOMEM, "ff_st_writer_meta: out of memory");
        w->mv = v;
        w->mcap = nc;
    }
    w->mk[w->nm] = strdup(key);
    w->mv[w->nm] = strdup(value);
    if (!w->mk[w->nm] || !w->mv[w->nm]) {
        free(w->mk[w->nm]); free(w->mv[w->nm]);
        return ff_errorf(FF_ENOMEM, "ff_st_writer_meta: out of memory");
    }
    w->nm++;
    return FF_OK;
}

/* A growing string buffer for the JSON header. */
typedef struct { char *p; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) { b->oom = 1; return; }
        b->p = q; b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_fmt(sbuf *b, const char *fmt, unsigned long long v) {
    char t[32];
    int k = snprintf(t, sizeof t, fmt, v);
    sb_put(b, t, (size_t)k);
}
static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') sb_put(b, "\\\"", 2);
        else if (c == '\\') sb_put(b, "\\\\", 2);
        else if (c < 0x20) sb_fmt(b, "\\u%04llx", c);
        else sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, "\"", 1);
}

ff_status ff_st_writer_write(ff_st_writer_t *w, const char *path) {
    if (!w || !path) return ff_errorf(FF_EINVAL, "ff_st_writer_write: NULL argument");
    sbuf h = { 0 };
    sb_str(&h, "{");
    int first = 1;
    if (w->nm) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nm; i++) {
            if (i) sb_str(&h, ",");
            sb_json_string(&h, w->mk[i]);
            sb_str(&h, ":");
            sb_json_string(&h, w->mv[i]);
        }
        sb_str(&h, "}");
        first = 0;
    }
    unsigned long long off = 0;
    for (int i = 0; i < w->n; i++) {
        const wr_entry *e = &w->e[i];
        if (!first) sb_str(&h, ",");
        first = 0;
        sb_json_string(&h, e->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, ff_dtype_name(e->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) sb_fmt(&h, d ? ",%llu" : "%llu", (unsigned long long)e->shape[d]);
        sb_str(&h, "],\"data_offsets\":[");
        sb_fmt(&h, "%llu", off);
        off += e->bytes;
        sb_fmt(&h, ",%llu]}", off);
    }
    sb_str(&h, "}");
    while (!h.oom && (8 + h.n) % 8) sb_put(&h, " ", 1);   /* data starts 8-byte aligned */
    if (h.oom) { free(h.p); return ff_errorf(FF_ENOMEM, "ff_st_writer_write: %s: out of memory", path); }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    seg *segs = malloc((size_t)(w->n + 2) * sizeof *segs);
    if (!segs) { free(h.p); return ff_errorf(FF_ENOMEM, "ff_st_writer_write: %s: out of memory", path); }
    segs[0] = (seg){ len8, 8 };
    segs[1] = (seg){ h.p, h.n };
    for (int i = 0; i < w->n; i++) segs[i + 2] = (seg){ w->e[i].data, w->e[i].bytes };
    ff_status s = atomic_write_segs(path, segs, w->n + 2);
    free(segs);
    free(h.p);
    return s;
}

ff_status ff_safetensors_save(const char *path, ff_tensor_t *const *t, int n) {
    ff_st_writer_t *w;
    if (n < 0 || (n && !t)) return ff_errorf(FF_EINVAL, "ff_safetensors_save: bad tensor list");
    FF_TRY(ff_st_writer_new(&w));
    ff_status s = FF_OK;
    for (int i = 0; i < n && s == FF_OK; i++) {
        if (!t[i]) s = ff_errorf(FF_EINVAL, "ff_safetensors_save: tensor %d is NULL", i);
        else s = ff_st_writer_add(w, t[i]->name, t[i]);
    }
    if (s == FF_OK) s = ff_st_writer_write(w, path);
    ff_st_writer_free(w);
    return s;
}
