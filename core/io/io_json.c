/* io_json.c — helpers of the file readers (io_internal.h): UTF-8 validation (RFC 3629), whole-file
 * reading, and a strict RFC 8259 JSON parser whose messages name byte offsets. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io_internal.h"

/* ---------------------------------------------------------------- UTF-8 */
/* Length of the valid UTF-8 sequence at s (max n bytes), or 0 if invalid (overlong, surrogate,
 * beyond U+10FFFF, truncated). */
size_t ff_io_utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

int ff_io_utf8_valid(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = ff_io_utf8_len((const unsigned char *)s + i, n - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

/* ---------------------------------------------------------------- JSON */
#define JSON_MAX_DEPTH 32

void jfree(jval *v) {
    if (!v) return;
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->keyoffs);
}

const char *jdescribe(const jparser *p) {
    static _Thread_local char buf[32];
    if (p->i >= p->n) return "end of header";
    unsigned char c = (unsigned char)p->s[p->i];
    if (c >= 0x20 && c < 0x7f) snprintf(buf, sizeof buf, "'%c'", c);
    else snprintf(buf, sizeof buf, "byte 0x%02x", c);
    return buf;
}

ff_status jerr(const jparser *p, size_t at, const char *what) {
    return ff_errorf(FF_EIO, "%s: byte %zu: %s", p->label, p->base + at, what);
}

void jskip_ws(jparser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(jparser *p, unsigned *out) {
    if (p->n - p->i < 4) return 0;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + k]);
        if (h < 0) return 0;
        v = v * 16 + (unsigned)h;
    }
    p->i += 4;
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* At an opening quote: decodes the string into a malloc'd buffer. */
static ff_status parse_string(jparser *p, char **out) {
    size_t start = p->i++;
    /* The decoded form is never longer than the raw text. */
    size_t end = start + 1;
    while (end < p->n && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->n) return jerr(p, start, "unterminated string");
    char *o = malloc(end - start + 1);
    if (!o) return ff_errorf(FF_ENOMEM, "%s: out of memory parsing the header", p->label);
    size_t k = 0;
    for (;;) {
        if (p->i >= p->n) { free(o); return jerr(p, start, "unterminated string"); }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) { free(o); return jerr(p, p->i, "control character in string (must be escaped)"); }
        if (c == '\\') {
            size_t at = p->i++;
            if (p->i >= p->n) { free(o); return jerr(p, at, "unterminated escape"); }
            char e = p->s[p->i++];
            switch (e) {
            case '"': o[k++] = '"'; break;
            case '\\': o[k++] = '\\'; break;
            case '/': o[k++] = '/'; break;
            case 'b': o[k++] = '\b'; break;
            case 'f': o[k++] = '\f'; break;
            case 'n': o[k++] = '\n'; break;
            case 'r': o[k++] = '\r'; break;
            case 't': o[k++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (!read_hex4(p, &cp)) { free(o); return jerr(p, at, "expected 4 hex digits after \\u"); }
                if (cp >= 0xDC00 && cp <= 0xDFFF) { free(o); return jerr(p, at, "lone low surrogate in \\u escape"); }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                        free(o); return jerr(p, at, "high surrogate not followed by a \\u low surrogate");
                    }
                    p->i += 2;
                    if (!read_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        free(o); return jerr(p, at, "high surrogate not followed by a low surrogate");
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0) { free(o); return jerr(p, at, "\\u0000 (NUL) is not allowed in names or metadata"); }
                k += put_utf8(o + k, cp);
                break;
            }
            default: free(o); return jerr(p, at, "invalid escape (expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
            }
            continue;
        }
        size_t l = ff_io_utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
        if (!l) { free(o); return jerr(p, p->i, "invalid UTF-8 in string"); }
        memcpy(o + k, p->s + p->i, l);
        k += l;
        p->i += l;
    }
    o[k] = '\0';
    *out = o;
    return FF_OK;
}

static ff_status parse_number(jparser *p, jval *v) {
    size_t start = p->i;
    const char *s = p->s;
    if (p->i < p->n && s[p->i] == '-') p->i++;
    if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9') return jerr(p, start, "expected a digit in number");
    if (s[p->i] == '0') p->i++;
    else while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9') p->i++;
    if (p->i < p->n && s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9') return jerr(p, p->i, "expected a digit after '.'");
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (s[p->i] == 'e' || s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (s[p->i] == '+' || s[p->i] == '-')) p->i++;
        if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9') return jerr(p, p->i, "expected a digit in exponent");
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9') p->i++;
    }
    v->type = J_NUM;
    v->num = s + start;
    v->numlen = p->i - start;
    return FF_OK;
}


static ff_status push_child(jparser *p, jval *v, size_t *cap) {
    if (v->n < *cap) return FF_OK;
    size_t nc = *cap ? *cap * 2 : 4;
    jval *items = realloc(v->items, nc * sizeof *items);
    if (!items) return ff_errorf(FF_ENOMEM, "%s: out of memory parsing the header", p->label);
    v->items = items;
    if (v->type == J_OBJ) {
        char **keys = realloc(v->keys, nc * sizeof *keys);
        if (!keys) return ff_errorf(FF_ENOMEM, "%s: out of memory parsing the header", p->label);
        v->keys = keys;
        size_t *ko = realloc(v->keyoffs, nc * sizeof *ko);
        if (!ko) return ff_errorf(FF_ENOMEM, "%s: out of memory parsing the header", p->label);
        v->keyoffs = ko;
    }
    *cap = nc;
    return FF_OK;
}

static _Thread_local const char *const *sort_keys_ctx;   /* qsort has no context argument in C11 */
static int cmp_key_index_q(const void *a, const void *b) {
    return strcmp(sort_keys_ctx[*(const size_t *)a], sort_keys_ctx[*(const size_t *)b]);
}

/* Duplicate keys are refused: sort indices by key and compare neighbours. */
static ff_status check_duplicates(jparser *p, const jval *v) {
    if (v->n < 2) return FF_OK;
    size_t *idx = malloc(v->n * sizeof *idx);
    if (!idx) return ff_errorf(FF_ENOMEM, "%s: out of memory parsing the header", p->label);
    for (size_t i = 0; i < v->n; i++) idx[i] = i;
    sort_keys_ctx = (const char *const *)v->keys;
    qsort(idx, v->n, sizeof *idx, cmp_key_index_q);
    for (size_t i = 1; i < v->n; i++) {
        if (!strcmp(v->keys[idx[i - 1]], v->keys[idx[i]])) {
            size_t later = idx[i] > idx[i - 1] ? idx[i] : idx[i - 1];
            char msg[400];
            snprintf(msg, sizeof msg, "duplicate key \"%.200s\"", v->keys[later]);
            ff_status s = jerr(p, v->keyoffs[later], msg);
            free(idx);
            return s;
        }
    }
    free(idx);
    return FF_OK;
}

static ff_status parse_container(jparser *p, jval *v, int obj) {
    size_t cap = 0;
    ff_status s;
    v->type = obj ? J_OBJ : J_ARR;
    if (++p->depth > JSON_MAX_DEPTH) return jerr(p, p->i, "nesting deeper than 32 levels");
    p->i++;   /* '{' or '[' */
    jskip_ws(p);
    if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; p->depth--; return FF_OK; }
    for (;;) {
        if ((s = push_child(p, v, &cap)) != FF_OK) return s;
        jval *child = &v->items[v->n];
        memset(child, 0, sizeof *child);
        if (obj) {
            v->keys[v->n] = NULL;
            jskip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') {
                char msg[96];
                snprintf(msg, sizeof msg, "expected a string key, got %s", jdescribe(p));
                return jerr(p, p->i, msg);
            }
            v->keyoffs[v->n] = p->i;
            v->n++;   /* counted now so that jfree releases the key on a later failure */
            if ((s = parse_string(p, &v->keys[v->n - 1])) != FF_OK) return s;
            jskip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                char msg[96];
                snprintf(msg, sizeof msg, "expected ':' after key, got %s", jdescribe(p));
                return jerr(p, p->i, msg);
            }
            p->i++;
        } else {
            v->n++;
        }
        if ((s = jparse_value(p, child)) != FF_OK) return s;
        jskip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; break; }
        char msg[96];
        snprintf(msg, sizeof msg, "expected ',' or '%c', got %s", obj ? '}' : ']', jdescribe(p));
        return jerr(p, p->i, msg);
    }
    p->depth--;
    return obj ? check_duplicates(p, v) : FF_OK;
}

ff_status jparse_value(jparser *p, jval *v) {
    jskip_ws(p);
    v->off = p->i;
    if (p->i >= p->n) return jerr(p, p->i, "expected a value, got end of header");
    char c = p->s[p->i];
    if (c == '{') return parse_container(p, v, 1);
    if (c == '[') return parse_container(p, v, 0);
    if (c == '"') { v->type = J_STR; return parse_string(p, &v->str); }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
    static const struct { const char *lit; jtype t; int b; } lits[] = {
        { "true", J_BOOL, 1 }, { "false", J_BOOL, 0 }, { "null", J_NULL, 0 } };
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k].lit);
        if (p->n - p->i >= l && !memcmp(p->s + p->i, lits[k].lit, l)) {
            v->type = lits[k].t; v->boolean = lits[k].b; p->i += l;
            return FF_OK;
        }
    }
    char msg[96];
    snprintf(msg, sizeof msg, "expected a JSON value, got %s", jdescribe(p));
    return jerr(p, p->i, msg);
}

int json_uint(const jval *v, uint64_t *out) {
    if (v->type != J_NUM || v->numlen == 0 || v->num[0] == '-') return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < v->numlen; i++) {
        char c = v->num[i];
        if (c < '0' || c > '9') return 0;
        unsigned d = (unsigned)(c - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *out = x;
    return 1;
}

/* ---------------------------------------------------------------- files */
ff_status ff_io_read_file(const char *path, unsigned char **buf, size_t *len) {
    *buf = NULL; *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ff_errorf(FF_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ff_errorf(FF_EIO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size, got = 0;
    unsigned char *b = malloc(n ? n : 1);
    if (!b) { close(fd); return ff_errorf(FF_ENOMEM, "%s: cannot allocate %zu bytes", path, n); }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(b); close(fd);
            return ff_errorf(FF_EIO, "%s: short read at byte %zu of %zu: %s", path, got, n, r < 0 ? strerror(e) : "end of file");
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b; *len = n;
    return FF_OK;
}

