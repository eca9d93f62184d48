/* vectorize.h (private) — per-file -O3 for the float kernels. Include it after the file's other
 * headers; it applies to every function defined after it in the translation unit.
 *
 * The build's -O2 (GCC 12) vectorises only loops without epilogues. The kernels of ops_*.c (through
 * tape_internal.h), optim.c, sphere.c, geometry.c, rng.c and tensor.c are loops of unknown length (n, d+1,
 * the parameter count), so those files ask for -O3. no-trapping-math lets GCC if-convert float
 * compares; sqrt inlines through the build's -fno-math-errno (this pragma's no-math-errno does not
 * reach that decision). Neither changes a result. Sanitizer builds (FF_DEBUG_ASSERT) keep the
 * build's own flags. */
#ifndef FISHERFLOW_VECTORIZE_H
#define FISHERFLOW_VECTORIZE_H

#if defined(__GNUC__) && !defined(__clang__) && !defined(FF_DEBUG_ASSERT)
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")
#endif

/* The build targets baseline x86-64 (SSE2, 4 floats a vector); kernels marked FF_CLONES are also
 * compiled for AVX2 (8 floats) and picked at load time on CPUs that have it. The clone is named by
 * feature, not "arch=haswell": GCC dispatches arch= clones by CPU model (__builtin_cpu_is), so an
 * AMD EPYC with AVX2 and AVX-512 ran the SSE2 default (seen in perf as "<kernel>.default"). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FF_DEBUG_ASSERT)
#define FF_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FF_CLONES
#endif

#endif
