/* test_io.c — safetensors round trips, exact bytes of the writer, dtype conversions, a catalogue of
 * malformed files (each refusal checked by message), atomic writes; sequence files (FASTA/lines). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "fisherflow/fisherflow.h"
#include "fisherflow/io.h"
#include "ff_test.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[512];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "%s/test_io_tmp.XXXXXX", FF_TEST_BINARY_DIR);
        if (!mkdtemp(tmpdir)) { snprintf(tmpdir, sizeof tmpdir, "/tmp/test_io_tmp.XXXXXX"); mkdtemp(tmpdir); }
    }
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* A file from a header text and data bytes (header length computed, no padding). */
static size_t make_st(unsigned char *out, const char *header, const void *data, size_t dlen) {
    size_t h = strlen(header);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(out + 8, header, h);
    if (dlen) memcpy(out + 8 + h, data, dlen);
    return 8 + h + dlen;
}

static ff_status parse_text(const char *header, const void *data, size_t dlen, ff_safetensors_t **st) {
    static unsigned char buf[1 << 16];
    size_t n = make_st(buf, header, data, dlen);
    return ff_safetensors_parse(st, buf, n, "bad.safetensors");
}

FF_TEST(roundtrip_f32_and_metadata) {
    ff_tensor_t *a, *b, *bt;
    ff_tensor_new2(&a, 2, 3);
    ff_tensor_new3(&b, 2, 1, 4);
    for (int i = 0; i < 6; i++) a->data[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 8; i++) b->data[i] = 1.0f / (float)(i + 1);
    ff_tensor_t *a_t;
    FF_EXPECT(ff_tensor_transpose(&a_t, a, 0, 1) == FF_OK);   /* strided input is copied right */
    ff_st_writer_t *w;
    FF_EXPECT(ff_st_writer_new(&w) == FF_OK);
    FF_EXPECT(ff_st_writer_add(w, "net.a", a) == FF_OK);
    FF_EXPECT(ff_st_writer_add(w, "net.a_t", a_t) == FF_OK);
    FF_EXPECT(ff_st_writer_add(w, "b\"q\\uote\n", b) == FF_OK);
    FF_EXPECT(ff_st_writer_meta(w, "config", "{\"k\": 4, \"name\": \"é\\t\"}") == FF_OK);
    FF_EXPECT(ff_st_writer_meta(w, "version", "0") == FF_OK);
    FF_EXPECT(ff_st_writer_meta(w, "version", "1") == FF_OK);   /* last value wins */
    FF_EXPECT_ERROR(ff_st_writer_add(w, "net.a", a), FF_EINVAL, "duplicate tensor name \"net.a\"");
    FF_EXPECT_ERROR(ff_st_writer_add(w, "__metadata__", a), FF_EINVAL, "reserved");
    FF_EXPECT_ERROR(ff_st_writer_add(w, "", a), FF_EINVAL, "1..255 bytes");
    FF_EXPECT_ERROR(ff_st_writer_add(w, "bad\xff", a), FF_EINVAL, "not valid UTF-8");
    const char *path = tmp_path("rt.safetensors");
    FF_EXPECT(ff_st_writer_write(w, path) == FF_OK, "%s", ff_last_error());
    ff_st_writer_free(w);

    ff_safetensors_t *st;
    FF_EXPECT(ff_safetensors_read(&st, path) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_safetensors_count(st) == 3);
    FF_EXPECT(!strcmp(ff_safetensors_meta(st, "config"), "{\"k\": 4, \"name\": \"é\\t\"}"));
    FF_EXPECT(!strcmp(ff_safetensors_meta(st, "version"), "1"));
    FF_EXPECT(ff_safetensors_meta_count(st) == 2);
    FF_EXPECT(ff_safetensors_meta(st, "absent") == NULL);
    ff_st_info info;
    FF_EXPECT(ff_safetensors_find(st, "b\"q\\uote\n", &info) == FF_OK);
    FF_EXPECT(info.dtype == FF_DTYPE_F32 && info.ndim == 3 && info.shape[2] == 4 && info.numel == 8);
    FF_EXPECT(ff_safetensors_get(st, "net.a_t", &bt) == FF_OK);
    FF_EXPECT(bt->shape[0] == 3 && bt->shape[1] == 2);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) FF_EXPECT(bt->data[i * 2 + j] == a->data[j * 3 + i]);
    ff_tensor_free(bt);
    FF_EXPECT(ff_safetensors_get(st, "b\"q\\uote\n", &bt) == FF_OK);
    FF_EXPECT(!memcmp(bt->data, b->data, 8 * sizeof(float)));
    ff_tensor_free(bt);
    FF_EXPECT_ERROR(ff_safetensors_get(st, "nope", &bt), FF_EINVAL, "no tensor named \"nope\"");
    const void *raw; size_t bytes;
    FF_EXPECT_ERROR(ff_safetensors_get_raw(st, "net.a", FF_DTYPE_I64, &raw, &bytes), FF_EIO, "is F32, expected I64");
    ff_safetensors_free(st);

    /* header is padded so data starts 8-byte aligned, as the reference implementation does */
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    FF_EXPECT(f && fread(len8, 1, 8, f) == 8);
    if (f) fclose(f);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | len8[i];
    FF_EXPECT((8 + h) % 8 == 0, "header length %llu", (unsigned long long)h);
    ff_tensor_free(a_t); ff_tensor_free(a); ff_tensor_free(b);
}

/* The writer's bytes equal an independently written expectation (the format spelled out by hand). */
FF_TEST(writer_exact_bytes) {
    float v[2] = { 1.0f, -2.0f };
    ff_tensor_t *t;
    ff_tensor_wrap(&t, v, 1, (int64_t[]){ 2 });
    ff_st_writer_t *w;
    ff_st_writer_new(&w);
    FF_EXPECT(ff_st_writer_add_borrowed(w, "x", FF_DTYPE_F32, 1, (int64_t[]){ 2 }, v) == FF_OK);   /* no copy */
    FF_EXPECT_ERROR(ff_st_writer_add_borrowed(w, "x", FF_DTYPE_F32, 1, (int64_t[]){ 2 }, v), FF_EINVAL, "duplicate");
    ff_st_writer_meta(w, "m", "v");
    const char *path = tmp_path("exact.safetensors");
    FF_EXPECT(ff_st_writer_write(w, path) == FF_OK, "%s", ff_last_error());
    ff_st_writer_free(w);
    ff_tensor_free(t);
    const char *hdr = "{\"__metadata__\":{\"m\":\"v\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t hl = strlen(hdr), pad = (8 - (8 + hl) % 8) % 8;
    unsigned char want[256];
    size_t n = 0;
    uint64_t H = hl + pad;
    for (int i = 0; i < 8; i++) want[n++] = (unsigned char)(H >> (8 * i));
    memcpy(want + n, hdr, hl); n += hl;
    memset(want + n, ' ', pad); n += pad;
    const unsigned char f32[8] = { 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0 };   /* 1.0f, -2.0f LE */
    memcpy(want + n, f32, 8); n += 8;
    unsigned char got[256];
    FILE *f = fopen(path, "rb");
    size_t gn = f ? fread(got, 1, sizeof got, f) : 0;
    if (f) fclose(f);
    FF_EXPECT(gn == n && !memcmp(got, want, n), "got %zu bytes, want %zu", gn, n);
}

FF_TEST(read_other_dtypes) {
    /* F16: 1.5 = 0x3E00, -2 = 0xC000, 2^-24 = 0x0001 (subnormal), 65504 = 0x7BFF, inf = 0x7C00.
     * BF16: 1.5 = 0x3FC0, -0.5 = 0xBF00. F64: 0.1, -3. I64: -7, 2^24. I32: 123. U8: 255. BOOL: 1, 0. */
    unsigned char d[128];
    size_t o = 0;
    uint16_t f16[5] = { 0x3E00, 0xC000, 0x0001, 0x7BFF, 0x7C00 };
    memcpy(d + o, f16, 10); o += 10;
    uint16_t bf[2] = { 0x3FC0, 0xBF00 };
    memcpy(d + o, bf, 4); o += 4;
    double f64[2] = { 0.1, -3.0 };
    memcpy(d + o, f64, 16); o += 16;
    int64_t i64[2] = { -7, 1 << 24 };
    memcpy(d + o, i64, 16); o += 16;
    int32_t i32 = 123;
    memcpy(d + o, &i32, 4); o += 4;
    d[o++] = 255;
    d[o++] = 1; d[o++] = 0;
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[10,14]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[14,30]},"
                      "\"l\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[30,46]},"
                      "\"i\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[46,50]},"
                      "\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[50,51]},"
                      "\"z\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[51,53]},"
                      "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[53,53]}}";
    ff_safetensors_t *st;
    FF_EXPECT(parse_text(hdr, d, o, &st) == FF_OK, "%s", ff_last_error());
    if (!st) return;
    ff_tensor_t *t;
    FF_EXPECT(ff_safetensors_get(st, "h", &t) == FF_OK);
    FF_EXPECT(t->data[0] == 1.5f && t->data[1] == -2.0f && t->data[2] == ldexpf(1.0f, -24) &&
              t->data[3] == 65504.0f && isinf(t->data[4]));
    ff_tensor_free(t);
    FF_EXPECT(ff_safetensors_get(st, "b", &t) == FF_OK);
    FF_EXPECT(t->ndim == 2 && t->data[0] == 1.5f && t->data[1] == -0.5f);
    ff_tensor_free(t);
    FF_EXPECT(ff_safetensors_get(st, "d", &t) == FF_OK);
    FF_EXPECT(t->data[0] == 0.1f && t->data[1] == -3.0f);
    ff_tensor_free(t);
    FF_EXPECT(ff_safetensors_get(st, "l", &t) == FF_OK);
    FF_EXPECT(t->data[0] == -7.0f && t->data[1] == 16777216.0f);
    ff_tensor_free(t);
    FF_EXPECT(ff_safetensors_get(st, "i", &t) == FF_OK);
    FF_EXPECT(t->ndim == 0 && t->data[0] == 123.0f);
    ff_tensor_free(t);
    FF_EXPECT(ff_safetensors_get(st, "u", &t) == FF_OK && t->data[0] == 255.0f);
    ff_tensor_free(t);
    FF_EXPECT(ff_safetensors_get(st, "z", &t) == FF_OK && t->data[0] == 1.0f && t->data[1] == 0.0f);
    ff_tensor_free(t);
    FF_EXPECT(ff_safetensors_get(st, "e", &t) == FF_OK && ff_tensor_numel(t) == 0);
    ff_tensor_free(t);
    const void *raw; size_t bytes;
    FF_EXPECT(ff_safetensors_get_raw(st, "l", FF_DTYPE_I64, &raw, &bytes) == FF_OK && bytes == 16);
    int64_t back[2];
    memcpy(back, raw, 16);
    FF_EXPECT(back[0] == -7 && back[1] == 1 << 24);
    ff_st_info info;
    FF_EXPECT(ff_safetensors_info(st, 0, &info) == FF_OK && !strcmp(info.name, "h"));   /* offset order */
    FF_EXPECT(ff_safetensors_info(st, 7, &info) == FF_OK && !strcmp(info.name, "e"));
    FF_EXPECT_ERROR(ff_safetensors_info(st, 8, &info), FF_EINVAL, "index 8 outside [0, 8)");
    ff_safetensors_free(st);

    /* values that float32 cannot hold exactly are refused, naming the element */
    int64_t big[2] = { 1, (1 << 24) + 1 };
    FF_EXPECT(parse_text("{\"l\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", big, 16, &st) == FF_OK);
    FF_EXPECT_ERROR(ff_safetensors_get(st, "l", &t), FF_EIO, "element 1 is not representable");
    ff_safetensors_free(st);
    double huge = 1e300;
    FF_EXPECT(parse_text("{\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", &huge, 8, &st) == FF_OK);
    FF_EXPECT_ERROR(ff_safetensors_get(st, "d", &t), FF_EIO, "element 0 is not representable");
    ff_safetensors_free(st);
    unsigned char five[5] = { 0 };
    FF_EXPECT(parse_text("{\"x\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", five, 1, &st) == FF_OK);
    FF_EXPECT_ERROR(ff_safetensors_get(st, "x", &t), FF_ESHAPE, "has 5 dims");
    ff_safetensors_free(st);
}

typedef struct { const char *what, *header; size_t dlen; const char *expect; } bad_case;

FF_TEST(malformed_catalogue) {
    static unsigned char zeros[64];
    const bad_case cases[] = {
        { "not an object", "[1]", 0, "byte 8: expected the header to be a JSON object" },
        { "trailing comma", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4, "expected a string key" },
        { "unterminated", "{\"a\":{\"dtype\":\"F32\"", 0, "expected ',' or '}', got end of header" },
        { "garbage after", "{} x", 0, "unexpected 'x' after the header object" },
        { "bad utf8 name", "{\"a\xc3\x28\":{}}", 0, "byte 11: invalid UTF-8 in string" },
        { "overlong utf8", "{\"\xc0\xaf\":{}}", 0, "invalid UTF-8" },
        { "utf8 surrogate", "{\"\xed\xa0\x80\":{}}", 0, "invalid UTF-8" },
        { "lone surrogate escape", "{\"\\udc00\":{}}", 0, "lone low surrogate" },
        { "bad escape", "{\"\\x\":{}}", 0, "invalid escape" },
        { "nul escape", "{\"a\\u0000\":{}}", 0, "NUL" },
        { "control char", "{\"a\tb\":{}}", 0, "control character" },
        { "duplicate", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate key \"a\"" },
        { "unknown dtype", "{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "unknown dtype \"F8\"" },
        { "dtype not string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "unknown dtype (not a string)" },
        { "missing field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, "missing field \"data_offsets\"" },
        { "unknown field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown field \"x\"" },
        { "negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0] is not a non-negative integer" },
        { "fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "shape[0] is not" },
        { "leading zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "expected ',' or ']'" },
        { "dim > int64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4, "shape[0] is not" },
        { "product overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
          "shape product overflows" },
        { "bytes overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8,
          "shape product overflows" },
        { "too many dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "9 dims" },
        { "size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, "F32 [2,3] needs 24 bytes, data_offsets span 20" },
        { "end before begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "end before begin" },
        { "beyond file", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12, "beyond the data section (12 bytes" },
        { "offsets arity", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets must be [begin, end]" },
        { "overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "tensor \"b\": data [4, 12) overlaps \"a\"" },
        { "gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "data starts at 8, expected 4 (a gap of 4 bytes after \"a\")" },
        { "gap at start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "a gap of 4 bytes at the start" },
        { "trailing bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, "2 bytes after the last tensor" },
        { "metadata not strings", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ \"k\": expected a string value" },
        { "metadata not object", "{\"__metadata__\":[]}", 0, "__metadata__ must be an object" },
        { "empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty tensor name" },
        { "entry not object", "{\"a\":3}", 0, "tensor \"a\": expected an object" },
        { "deep nesting", "{\"__metadata__\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 0,
          "nesting deeper than 32" },
        { "bad literal", "{\"__metadata__\":nul}", 0, "expected a JSON value, got 'n'" },
        { "bad number", "{\"__metadata__\":-}", 0, "expected a digit" },
        { "bad exponent", "{\"__metadata__\":1e}", 0, "expected a digit in exponent" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ff_safetensors_t *st = (ff_safetensors_t *)1;
        ff_status s = parse_text(cases[c].header, zeros, cases[c].dlen, &st);
        FF_EXPECT(s == FF_EIO && st == NULL, "case \"%s\": status %s", cases[c].what, ff_status_name(s));
        FF_EXPECT(strstr(ff_last_error(), cases[c].expect) && strstr(ff_last_error(), "bad.safetensors"),
                  "case \"%s\": message \"%s\" lacks \"%s\"", cases[c].what, ff_last_error(), cases[c].expect);
    }
    /* Framing errors, built by hand. */
    ff_safetensors_t *st;
    unsigned char b[32] = { 0 };
    FF_EXPECT_ERROR(ff_safetensors_parse(&st, b, 0, "e.st"), FF_EIO, "e.st: empty file (0 bytes)");
    FF_EXPECT_ERROR(ff_safetensors_parse(&st, b, 7, "t.st"), FF_EIO, "t.st: truncated: 7 bytes");
    b[7] = 0x7f;   /* header length ~ 9e18 */
    FF_EXPECT_ERROR(ff_safetensors_parse(&st, b, 16, "h.st"), FF_EIO, "header length 9151314442816847872 exceeds the file (8 bytes");
    memset(b, 0, 8);
    b[0] = 1;
    FF_EXPECT_ERROR(ff_safetensors_parse(&st, b, 9, "s.st"), FF_EIO, "header of 1 bytes");
    /* A truncated real file: every prefix is refused, none crashes. */
    float v[3] = { 1, 2, 3 };
    ff_tensor_t *t;
    ff_tensor_wrap(&t, v, 1, (int64_t[]){ 3 });
    snprintf(t->name, sizeof t->name, "v");
    const char *path = tmp_path("trunc.safetensors");
    FF_EXPECT(ff_safetensors_save(path, &t, 1) == FF_OK);
    ff_tensor_free(t);
    FILE *f = fopen(path, "rb");
    unsigned char full[256];
    size_t n = f ? fread(full, 1, sizeof full, f) : 0;
    if (f) fclose(f);
    for (size_t k = 0; k < n; k++) {
        ff_status s = ff_safetensors_parse(&st, full, k, "prefix");
        FF_EXPECT(s == FF_EIO, "prefix of %zu bytes accepted", k);
    }
    FF_EXPECT(ff_safetensors_parse(&st, full, n, "full") == FF_OK);
    ff_safetensors_free(st);
    FF_EXPECT_ERROR(ff_safetensors_read(&st, tmp_path("missing.safetensors")), FF_EIO, "missing.safetensors: cannot open");
    FF_EXPECT_ERROR(ff_safetensors_read(&st, tmpdir), FF_EIO, "not a regular file");
}

FF_TEST(valid_json_variants) {
    /* Whitespace, escapes, unicode and key order other writers may produce are accepted. */
    float v[2] = { 3, 4 };
    const char *hdr = " \n{ \"b\" : { \"shape\" : [ 1 ] , \"data_offsets\" : [ 4 , 8 ] , \"dtype\" : \"F32\" } ,"
                      "\"__metadata__\":{\"k\\u00e9\\ud83d\\ude00\\/\":\"v\\n\"},"
                      "\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}   ";
    ff_safetensors_t *st;
    FF_EXPECT(parse_text(hdr, v, 8, &st) == FF_OK, "%s", ff_last_error());
    if (!st) return;
    FF_EXPECT(!strcmp(ff_safetensors_meta(st, "k\xc3\xa9\xf0\x9f\x98\x80/"), "v\n"));
    ff_tensor_t *t;
    FF_EXPECT(ff_safetensors_get(st, "a", &t) == FF_OK && t->data[0] == 3.0f);
    ff_tensor_free(t);
    FF_EXPECT(ff_safetensors_get(st, "b", &t) == FF_OK && t->data[0] == 4.0f);
    ff_tensor_free(t);
    ff_safetensors_free(st);
    FF_EXPECT(parse_text("{}", NULL, 0, &st) == FF_OK);
    FF_EXPECT(ff_safetensors_count(st) == 0);
    ff_safetensors_free(st);
}

FF_TEST(atomic_write_survives_crash) {
    const char *path = tmp_path("atomic.bin");
    FF_EXPECT(ff_io_write_atomic(path, "old", 3) == FF_OK);
    ff_io_test_crash_before_rename(1);
    FF_EXPECT_ERROR(ff_io_write_atomic(path, "new!", 4), FF_EIO, "simulated crash");
    ff_io_test_crash_before_rename(0);
    char buf[8] = { 0 };
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    FF_EXPECT(n == 3 && !memcmp(buf, "old", 3), "file changed by a crashed write: %zu bytes", n);
    FF_EXPECT(ff_io_write_atomic(path, "new!", 4) == FF_OK);
    f = fopen(path, "rb");
    n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    FF_EXPECT(n == 4 && !memcmp(buf, "new!", 4));
    FF_EXPECT_ERROR(ff_io_write_atomic("/nonexistent-dir/x.bin", "a", 1), FF_EIO, "cannot create temporary file");
}

/* ---------------------------------------------------------------- sequences */
static ff_status seq(const char *text, const char *alphabet, ff_seq_case cp, int64_t L, ff_tensor_t **out) {
    ff_seq_opts o = ff_seq_default_opts(alphabet);
    o.case_policy = cp;
    o.length = L;
    return ff_seq_parse(text, strlen(text), "s.txt", &o, out);
}

static int onehot_is(const ff_tensor_t *t, int64_t i, int64_t l, int sym) {
    int64_t A = t->shape[2];
    for (int64_t a = 0; a < A; a++)
        if (t->data[(i * t->shape[1] + l) * A + a] != (a == sym ? 1.0f : 0.0f)) return 0;
    return 1;
}

FF_TEST(sequences_lines_and_fasta) {
    ff_tensor_t *t = NULL;
    FF_EXPECT(seq("ACGT\r\nacgt\n\nTTTT  \n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t) == FF_OK, "%s", ff_last_error());
    if (t) {
        FF_EXPECT(t->ndim == 3 && t->shape[0] == 3 && t->shape[1] == 4 && t->shape[2] == 4);
        for (int l = 0; l < 4; l++) FF_EXPECT(onehot_is(t, 0, l, l) && onehot_is(t, 1, l, l) && onehot_is(t, 2, l, 3));
        ff_tensor_free(t);
    }
    const char *fa = "\xEF\xBB\xBF>seq1 first\nAC\nGT\n;comment\n>seq2\r\nTTGA\r\n";
    FF_EXPECT(seq(fa, "ACGT", FF_SEQ_CASE_FOLD, 4, &t) == FF_OK, "%s", ff_last_error());
    if (t) {
        FF_EXPECT(t->shape[0] == 2 && t->shape[1] == 4);
        FF_EXPECT(onehot_is(t, 0, 0, 0) && onehot_is(t, 0, 3, 3) && onehot_is(t, 1, 0, 3) && onehot_is(t, 1, 3, 0));
        ff_tensor_free(t);
    }
    /* case policy: exact treats lowercase as unknown, and an alphabet may be mixed-case */
    FF_EXPECT_ERROR(seq("ACGT\nACgT\n", "ACGT", FF_SEQ_CASE_EXACT, 0, &t), FF_EIO, "s.txt:2:3: unknown symbol 'g'");
    FF_EXPECT(seq("aA\n", "aA", FF_SEQ_CASE_EXACT, 0, &t) == FF_OK && onehot_is(t, 0, 0, 0) && onehot_is(t, 0, 1, 1));
    ff_tensor_free(t);
    FF_EXPECT_ERROR(seq("aA\n", "aA", FF_SEQ_CASE_FOLD, 0, &t), FF_EINVAL, "differ only in case");
}

FF_TEST(sequences_errors) {
    ff_tensor_t *t = NULL;
    FF_EXPECT_ERROR(seq("ACGT\nACG\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt:2: sequence of length 3, expected 4 (set by line 1)");
    FF_EXPECT_ERROR(seq("ACGT\n", "ACGT", FF_SEQ_CASE_FOLD, 5, &t), FF_EIO, "s.txt:1: sequence of length 4, expected 5");
    FF_EXPECT_ERROR(seq(">a\nACGT\n>b\nAC\nG\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO,
                    "s.txt:3: FASTA record \"b\": sequence of length 3, expected 4");
    FF_EXPECT_ERROR(seq("ACGN\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt:1:4: unknown symbol 'N' (alphabet \"ACGT\")");
    FF_EXPECT_ERROR(seq("AC\xc3\xa9G\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt:1:3: unknown symbol '\xc3\xa9'");
    FF_EXPECT_ERROR(seq("AC\xff\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt:1:3: invalid UTF-8 (byte 0xff)");
    FF_EXPECT_ERROR(seq("AC GT\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt:1:3: unknown symbol ' '");
    FF_EXPECT_ERROR(seq(">\xc3\xa9x\xff\nACGT\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO,
                    "s.txt:1:4: invalid UTF-8 in FASTA header (byte 0xff)");
    FF_EXPECT_ERROR(seq("ACGT\nAC\xe2\x82\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO,
                    "s.txt:2:3: invalid UTF-8 (byte 0xe2)");   /* truncated 3-byte sequence */
    FF_EXPECT_ERROR(seq("ACGT\nAC\rGT\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt:2:3: unknown symbol '\\x0d'");
    FF_EXPECT_ERROR(seq("AC\nGT\n", "ACGT", FF_SEQ_CASE_FOLD, 3, &t), FF_EIO, "s.txt:1: sequence of length 2, expected 3;");
    FF_EXPECT(seq("GT\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t) == FF_OK && t->shape[0] == 1 && t->shape[1] == 2);
    ff_tensor_free(t);
    FF_EXPECT_ERROR(seq("", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt: empty file");
    FF_EXPECT_ERROR(seq("\n\r\n  \n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "no sequences");
    FF_EXPECT_ERROR(seq(">a\n>b\nACGT\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt:1: FASTA record \"a\" is empty");
    FF_EXPECT_ERROR(seq("ACGT\n>b\n", "ACGT", FF_SEQ_CASE_FOLD, 0, &t), FF_EIO, "s.txt:2:1: unknown symbol '>'");
    ff_seq_opts o = ff_seq_default_opts("ACGT");
    FF_EXPECT_ERROR(ff_seq_parse("AC\0T\n", 5, "z.txt", &o, &t), FF_EIO, "z.txt:1:3: unknown symbol '\\x00'");
    FF_EXPECT_ERROR(seq("ACGT\n", "ACCT", FF_SEQ_CASE_FOLD, 0, &t), FF_EINVAL, "alphabet \"ACCT\": symbol 'C' repeated");
    FF_EXPECT_ERROR(seq("ACGT\n", "", FF_SEQ_CASE_FOLD, 0, &t), FF_EINVAL, "alphabet is empty");
    FF_EXPECT_ERROR(seq("ACGT\n", "A\xc3\xa9", FF_SEQ_CASE_FOLD, 0, &t), FF_EINVAL, "printable ASCII");
    FF_EXPECT_ERROR(ff_seq_read(tmp_path("none.fa"), &o, &t), FF_EIO, "none.fa: cannot open");
    /* read from a file */
    const char *p = tmp_path("x.fa");
    FILE *f = fopen(p, "wb");
    fputs(">x\nGATTACA\n", f);
    fclose(f);
    FF_EXPECT(ff_seq_read(p, &o, &t) == FF_OK && t->shape[0] == 1 && t->shape[1] == 7 && onehot_is(t, 0, 0, 2));
    ff_tensor_free(t);
}

FF_MAIN()
