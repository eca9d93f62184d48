/* vectorize.h (private) — per-file -O3 for the float kernels. Include it after the file's other
 * headers; it applies to every function defined after it in the translation unit.
 *
 * The build's -O2 (GCC 12) vectorises only loops without epilogues. The kernels of ops_*.c (through
 * tape_internal.h), optim.c and sphere.c are memory-bound loops of unknown length (n, d+1, the
 * parameter count), so those files ask for -O3. no-math-errno / no-trapping-math only let GCC
 * inline and vectorise sqrt and friends; neither changes a result. Sanitizer builds (FF_DEBUG_ASSERT)
 * keep the build's own flags. */
#ifndef FISHERFLOW_VECTORIZE_H
#define FISHERFLOW_VECTORIZE_H

#if defined(__GNUC__) && !defined(__clang__) && !defined(FF_DEBUG_ASSERT)
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")
#endif

#endif
