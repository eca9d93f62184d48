/* fuzz_safetensors.c — libFuzzer harness for the safetensors reader (io.h): parse arbitrary bytes,
 * then read back every tensor, raw view and metadata entry of an accepted file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ff_safetensors_t *st = NULL;
    if (ff_safetensors_parse(&st, data, size, "fuzz") != FF_OK) {
        if (st != NULL || !ff_last_error()[0]) abort();   /* a refusal leaves no object and a message */
        return 0;
    }
    for (int i = 0; i < ff_safetensors_count(st); i++) {
        ff_st_info info;
        if (ff_safetensors_info(st, i, &info) != FF_OK) abort();
        ff_tensor_t *t = NULL;
        if (ff_safetensors_get(st, info.name, &t) == FF_OK) {
            if (ff_tensor_numel(t) != info.numel) abort();
            volatile float sink = 0;
            for (int64_t k = 0; k < info.numel; k++) sink += t->data[k];
            (void)sink;
        }
        ff_tensor_free(t);
        const void *raw;
        size_t bytes;
        if (ff_safetensors_get_raw(st, info.name, info.dtype, &raw, &bytes) != FF_OK) abort();
        if (bytes != (size_t)(info.end - info.begin)) abort();
        if (bytes) { volatile uint8_t b = ((const uint8_t *)raw)[bytes - 1]; (void)b; }
    }
    for (int i = 0; i < ff_safetensors_meta_count(st); i++) {
        const char *k = ff_safetensors_meta_key(st, i), *v = ff_safetensors_meta_value(st, i);
        if (!k || !v || ff_safetensors_meta(st, k) == NULL) abort();
    }
    ff_safetensors_free(st);
    return 0;
}
