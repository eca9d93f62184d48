/* space.h — the shape of the data a flow models: k positions, each a token over d+1 symbols,
 * optionally with a condition. Plugins receive it at create() to size themselves.
 */
#ifndef FISHERFLOW_SPACE_H
#define FISHERFLOW_SPACE_H

#include <stdint.h>

typedef struct ff_space {
    int64_t k;               /* positions (sequence length)                                   */
    int64_t d;               /* simplex dimension: d+1 symbols per position                   */
    int64_t cond_classes;    /* > 0: one class label per sequence, cond tensor [n] (ids)      */
    int64_t cond_channels;   /* > 0: a per-position signal, cond tensor [n, k, cond_channels] */
} ff_space;

#endif
