/* rng.h — the seeded random generator. xoshiro256** seeded through splitmix64; one seed
 * reproduces a whole run bit for bit on the same machine. Its state is four words, so a checkpoint
 * saves and restores it exactly. ff_rng_split derives an independent stream (for a plugin, a
 * worker, the sampler) without touching the parent's sequence beyond one draw.
 */
#ifndef FISHERFLOW_RNG_H
#define FISHERFLOW_RNG_H

#include <stdint.h>
#include "error.h"
#include "tensor.h"

typedef struct ff_rng { uint64_t s[4]; double spare_normal; int has_spare; } ff_rng_t;

void     ff_rng_seed   (ff_rng_t *r, uint64_t seed);
ff_rng_t ff_rng_split  (ff_rng_t *r);                 /* child stream; advances r by one draw  */
uint64_t ff_rng_u64    (ff_rng_t *r);
double   ff_rng_uniform(ff_rng_t *r);                 /* [0, 1), 53 random bits                */
double   ff_rng_normal (ff_rng_t *r);                 /* N(0, 1)                               */
/* n draws of N(0, 1): the same sequence, and the same generator state after, as n calls of
 * ff_rng_normal, computed in blocks with a vectorised log (values agree to ~1e-15 relative). */
void     ff_rng_normals(ff_rng_t *r, double *out, int64_t n);
double   ff_rng_gamma  (ff_rng_t *r, double shape);   /* Gamma(shape, 1), shape > 0            */
uint64_t ff_rng_below  (ff_rng_t *r, uint64_t n);     /* uniform integer in [0, n), unbiased   */

/* Fill a tensor (any shape, contiguous or not). */
ff_status ff_rng_fill_uniform(ff_rng_t *r, ff_tensor_t *t, float lo, float hi);
ff_status ff_rng_fill_normal (ff_rng_t *r, ff_tensor_t *t, float mean, float std);

#endif
