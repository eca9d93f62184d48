/* fuzz_sequences.c — libFuzzer harness for the sequence parser (io.h). The first byte picks the
 * options (format, case policy, alphabet, fixed length); the rest is the file. An accepted file
 * must give an exact one-hot tensor. */
#include <stdint.h>
#include <stdlib.h>
#include "fisherflow/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *alphabets[4] = { "ACGT", "ACGTN", "aA", "ARNDCQEGHILKMFPSTWYV" };
    uint8_t o8 = size ? data[0] : 0;
    ff_seq_opts o = ff_seq_default_opts(alphabets[(o8 >> 3) & 3]);
    o.format = (ff_seq_format)((o8 & 3) % 3);
    o.case_policy = (o8 & 4) ? FF_SEQ_CASE_EXACT : FF_SEQ_CASE_FOLD;
    o.length = (o8 & 32) ? 4 : 0;
    if (((o8 >> 3) & 3) == 2 && o.case_policy == FF_SEQ_CASE_FOLD) o.case_policy = FF_SEQ_CASE_EXACT;
    ff_tensor_t *t = NULL;
    ff_status s = ff_seq_parse(size ? data + 1 : data, size ? size - 1 : 0, "fuzz", &o, &t);
    if (s != FF_OK) {
        if (t != NULL || !ff_last_error()[0]) abort();
        return 0;
    }
    if (t->ndim != 3 || t->shape[0] < 1 || t->shape[1] < 1) abort();
    if (o.length && t->shape[1] != o.length) abort();
    int64_t rows = t->shape[0] * t->shape[1], A = t->shape[2];
    for (int64_t r = 0; r < rows; r++) {
        float sum = 0;
        for (int64_t a = 0; a < A; a++) {
            float v = t->data[r * A + a];
            if (v != 0.0f && v != 1.0f) abort();
            sum += v;
        }
        if (sum != 1.0f) abort();
    }
    ff_tensor_free(t);
    return 0;
}
