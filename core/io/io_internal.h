/* io_internal.h (private) — shared by io_safetensors.c, io_sequences.c and io_json.c: UTF-8
 * validation, whole-file reading and a small strict RFC 8259 JSON parser (values keep their byte
 * offsets, so messages can name them). Not installed; hidden from the library's exports. */
#ifndef FF_IO_INTERNAL_H
#define FF_IO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "fisherflow/error.h"

#define FF_IO_INTERNAL __attribute__((visibility("hidden")))

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid (overlong, surrogate,
 * beyond U+10FFFF, truncated). RFC 3629. */
FF_IO_INTERNAL size_t ff_io_utf8_len(const unsigned char *s, size_t n);
FF_IO_INTERNAL int    ff_io_utf8_valid(const char *s);          /* NUL-terminated string */

/* Reads a whole regular file into a malloc'd buffer; FF_EIO "<path>: ..." otherwise. */
FF_IO_INTERNAL ff_status ff_io_read_file(const char *path, unsigned char **buf, size_t *len);

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype        type;
    size_t       off;       /* byte offset of the value in the text                   */
    char        *str;       /* J_STR: decoded, NUL-terminated (no embedded NUL)        */
    const char  *num;       /* J_NUM: the literal in the text                          */
    size_t       numlen;
    int          boolean;
    size_t       n;         /* J_ARR / J_OBJ: children                                  */
    struct jval *items;     /* [n]                                                      */
    char       **keys;      /* J_OBJ: [n] decoded keys (unique: duplicates are refused) */
    size_t      *keyoffs;   /* J_OBJ: [n] byte offsets of keys                          */
} jval;

typedef struct {
    const char *s;
    size_t      n, i;
    size_t      base;       /* added to offsets in messages (8: bytes before the header) */
    const char *label;
    int         depth;
} jparser;

/* Parses one value at p->i (leading whitespace skipped); nesting is limited to 32 levels.
 * FF_EIO "<label>: byte <base+offset>: <what was expected>" on failure; free with jfree either way. */
FF_IO_INTERNAL ff_status jparse_value(jparser *p, jval *v);
FF_IO_INTERNAL void      jskip_ws(jparser *p);
FF_IO_INTERNAL void      jfree(jval *v);
FF_IO_INTERNAL ff_status jerr(const jparser *p, size_t at, const char *what);
FF_IO_INTERNAL const char *jdescribe(const jparser *p);    /* the next character, for messages */
/* A non-negative integer literal (no sign, fraction or exponent) that fits uint64. */
FF_IO_INTERNAL int       json_uint(const jval *v, uint64_t *out);

#endif
