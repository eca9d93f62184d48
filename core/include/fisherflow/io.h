/* io.h — files in and out: safetensors (tensors + string metadata) and sequence files (FASTA or one
 * sequence per line) decoded to one-hot tensors.
 *
 * safetensors (https://huggingface.co/docs/safetensors): 8-byte little-endian header length N, a
 * JSON object of N bytes {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {string: string}}, then the raw little-endian data; offsets are relative to the byte after the
 * header. The reader is strict: it parses the header with its own RFC 8259 JSON parser and refuses,
 * with a message naming the file, the byte offset or tensor and what was expected: empty or
 * truncated files, a header length beyond the file, invalid JSON or UTF-8, duplicate names, unknown
 * dtypes, shapes whose product overflows, byte sizes that disagree with dtype x shape, and data
 * ranges that overlap, leave gaps or do not end at the end of the file. Files are read whole into
 * memory. The writer writes F32 (and the raw I64/F64 entries a checkpoint needs) atomically: a
 * temporary file in the same directory, fsync, rename, fsync of the directory, so a reader sees the
 * old file or the new one, never a mixture.
 */
#ifndef FISHERFLOW_IO_H
#define FISHERFLOW_IO_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "tensor.h"

typedef enum ff_dtype {
    FF_DTYPE_F32 = 1, FF_DTYPE_F16, FF_DTYPE_BF16, FF_DTYPE_F64,
    FF_DTYPE_I64, FF_DTYPE_I32, FF_DTYPE_I16, FF_DTYPE_I8,
    FF_DTYPE_U64, FF_DTYPE_U32, FF_DTYPE_U16, FF_DTYPE_U8, FF_DTYPE_BOOL,
} ff_dtype;

const char *ff_dtype_name(ff_dtype t);   /* "F32"; "?" for an unknown value */
size_t      ff_dtype_size(ff_dtype t);   /* bytes per element; 0 for an unknown value */

#define FF_ST_MAX_DIMS 8                 /* shapes with more dims are refused by the reader */

typedef struct ff_st_info {
    const char *name;                    /* borrowed from the file object                    */
    ff_dtype    dtype;
    int         ndim;
    int64_t     shape[FF_ST_MAX_DIMS];
    int64_t     numel;
    uint64_t    begin, end;              /* data_offsets                                      */
} ff_st_info;

/* ---- reading ------------------------------------------------------------------------------- */
typedef struct ff_safetensors ff_safetensors_t;

/* Reads and validates a whole file. FF_EIO with "<path>: ..." on any defect listed above. */
ff_status ff_safetensors_read (ff_safetensors_t **out, const char *path);
/* Same from memory (copied); `label` names the source in messages (fuzzing, tests). */
ff_status ff_safetensors_parse(ff_safetensors_t **out, const void *buf, size_t len, const char *label);
void      ff_safetensors_free (ff_safetensors_t *st);   /* NULL-safe */

int         ff_safetensors_count(const ff_safetensors_t *st);   /* tensors, in file-offset order */
/* Info of tensor i (file-offset order) or of a name; FF_EINVAL naming the tensor if absent. */
ff_status   ff_safetensors_info   (const ff_safetensors_t *st, int i, ff_st_info *info);
ff_status   ff_safetensors_find   (const ff_safetensors_t *st, const char *name, ff_st_info *info);
/* A new float32 tensor (caller frees) converted from F32/F16/BF16/F64 (F64 rounds to nearest),
 * or from integer dtypes when every value is exactly representable in float32 (else FF_EIO naming
 * the element). More than FF_MAX_DIMS dims: FF_ESHAPE. */
ff_status   ff_safetensors_get    (const ff_safetensors_t *st, const char *name, ff_tensor_t **out);
/* Raw little-endian bytes of a tensor (borrowed while st lives); fails unless dtype matches. */
ff_status   ff_safetensors_get_raw(const ff_safetensors_t *st, const char *name, ff_dtype dtype,
                                   const void **data, size_t *bytes);
/* "__metadata__" entries: value of a key or NULL; count and i-th key/value (borrowed). */
const char *ff_safetensors_meta      (const ff_safetensors_t *st, const char *key);
int         ff_safetensors_meta_count(const ff_safetensors_t *st);
const char *ff_safetensors_meta_key  (const ff_safetensors_t *st, int i);
const char *ff_safetensors_meta_value(const ff_safetensors_t *st, int i);

/* ---- writing ------------------------------------------------------------------------------- */
typedef struct ff_st_writer ff_st_writer_t;

ff_status ff_st_writer_new (ff_st_writer_t **out);
void      ff_st_writer_free(ff_st_writer_t *w);                 /* NULL-safe */
/* Adds a float32 tensor (any strides; copied now). Names are unique, 1..255 bytes of UTF-8. */
ff_status ff_st_writer_add (ff_st_writer_t *w, const char *name, const ff_tensor_t *t);
/* Adds raw little-endian data of a dtype and shape (copied now). */
ff_status ff_st_writer_add_raw(ff_st_writer_t *w, const char *name, ff_dtype dtype, int ndim,
                               const int64_t *shape, const void *data);
/* Same without the copy: data must stay unchanged and alive until ff_st_writer_write returns
 * (checkpoints of large models use it to avoid doubling memory). */
ff_status ff_st_writer_add_borrowed(ff_st_writer_t *w, const char *name, ff_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data);
/* Sets a "__metadata__" string (both copied; a key set twice keeps the last value). */
ff_status ff_st_writer_meta(ff_st_writer_t *w, const char *key, const char *value);
/* Writes atomically (tensors in the order added, data 8-byte aligned after the header). */
ff_status ff_st_writer_write(ff_st_writer_t *w, const char *path);

/* Convenience: writes n named float32 tensors (names from t[i]->name) and no metadata. */
ff_status ff_safetensors_save(const char *path, ff_tensor_t *const *t, int n);

/* Atomic whole-file write of bytes (temp in the same directory, fsync, rename, fsync dir). */
ff_status ff_io_write_atomic(const char *path, const void *data, size_t bytes);
/* For crash tests only: when set, the next atomic writes stop after the temporary file is written
 * and synced (before the rename), remove nothing, and return FF_EIO "simulated crash". */
void      ff_io_test_crash_before_rename(int on);

/* ---- sequence files ------------------------------------------------------------------------ */
typedef enum ff_seq_format { FF_SEQ_AUTO = 0, FF_SEQ_FASTA, FF_SEQ_LINES } ff_seq_format;
typedef enum ff_seq_case {
    FF_SEQ_CASE_FOLD = 0,     /* lowercase letters are read as their uppercase (alphabet "ACGT") */
    FF_SEQ_CASE_EXACT,        /* case matters: a symbol not in the alphabet as written is unknown */
} ff_seq_case;

typedef struct ff_seq_opts {
    const char   *alphabet;   /* distinct printable ASCII symbols, e.g. "ACGT" (required)         */
    ff_seq_format format;     /* AUTO: FASTA if the first non-blank line starts with '>'          */
    ff_seq_case   case_policy;
    int64_t       length;     /* required length L; 0 = the first sequence's length               */
} ff_seq_opts;

ff_seq_opts ff_seq_default_opts(const char *alphabet);   /* AUTO, FOLD, length 0 */

/* Reads sequences into a new one-hot tensor [n, L, |alphabet|] (caller frees). Line endings LF or
 * CRLF; a UTF-8 BOM is skipped; blank lines and trailing spaces/tabs are ignored; FASTA records are
 * '>' header lines followed by sequence lines (concatenated), ';' lines are comments. Errors
 * (FF_EIO) name the file, line and column (in characters): unknown symbol (quoted), invalid UTF-8,
 * length different from L (the line, or the FASTA record's header line), empty file/record. */
ff_status ff_seq_read (const char *path, const ff_seq_opts *o, ff_tensor_t **out);
ff_status ff_seq_parse(const void *buf, size_t len, const char *label, const ff_seq_opts *o,
                       ff_tensor_t **out);

#endif
