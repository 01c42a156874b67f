/* Vectorised scan used by the ranking kernel (_rank.pyx).
 *
 * scan_*(x, start, n, t) returns the first index g >= start whose value is NOT in the open
 * interval (t, +inf): a gallery item that may rank before the last positive, or a NaN / inf
 * that must be reported. For a good model almost every distance is above t, so the row is
 * read in 32-wide blocks that the compiler turns into SIMD compares; target_clones picks
 * AVX-512, AVX2 or the baseline at load time, so one binary runs everywhere.
 */
#ifndef COMMON_EVAL_SCAN_H
#define COMMON_EVAL_SCAN_H
#include <math.h>
#include <stdint.h>

#define COMMON_EVAL_SCAN_BODY(T)                                              \
    int64_t g = start;                                                        \
    for (; g + 32 <= n; g += 32) {                                            \
        int hit = 0;                                                          \
        for (int k = 0; k < 32; k++)                                          \
            hit |= !(x[g + k] > t) | !(x[g + k] < (T)INFINITY);               \
        if (hit) break;                                                       \
    }                                                                         \
    for (; g < n; g++)                                                        \
        if (!(x[g] > t) || !(x[g] < (T)INFINITY)) return g;                   \
    return n;

__attribute__((target_clones("avx512f", "avx2", "default")))
static int64_t scan_above_f(const float *x, int64_t start, int64_t n, float t)
{
    COMMON_EVAL_SCAN_BODY(float)
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static int64_t scan_above_d(const double *x, int64_t start, int64_t n, double t)
{
    COMMON_EVAL_SCAN_BODY(double)
}
#endif
