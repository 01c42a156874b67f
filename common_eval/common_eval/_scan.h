/* Vectorised scans used by the ranking kernel (_rank.pyx).
 *
 * collect_*(x, n, t, out) writes to out the indices g whose value is NOT in the open interval
 * (t, +inf) -- a gallery item that may rank before the last positive, or a NaN / inf that must
 * be reported -- and returns how many. For a good model almost every distance is above t, so
 * the row is read in 32-wide blocks that the compiler turns into SIMD compares, and only
 * blocks holding a candidate are looked at element by element. target_clones picks AVX-512,
 * AVX2 or the baseline at load time, so one binary runs everywhere.
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

#define COMMON_EVAL_COLLECT_BODY(T)                                           \
    int64_t g = 0, m = 0;                                                     \
    for (; g + 32 <= n; g += 32) {                                            \
        int hit = 0;                                                          \
        for (int k = 0; k < 32; k++)                                          \
            hit |= !(x[g + k] > t) | !(x[g + k] < (T)INFINITY);               \
        if (!hit) continue;                                                   \
        for (int k = 0; k < 32; k++)                                          \
            if (!(x[g + k] > t) || !(x[g + k] < (T)INFINITY)) out[m++] = g + k; \
    }                                                                         \
    for (; g < n; g++)                                                        \
        if (!(x[g] > t) || !(x[g] < (T)INFINITY)) out[m++] = g;               \
    return m;

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

__attribute__((target_clones("avx512f", "avx2", "default")))
static int64_t collect_f(const float *x, int64_t n, float t, int64_t *out)
{
    COMMON_EVAL_COLLECT_BODY(float)
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static int64_t collect_d(const double *x, int64_t n, double t, int64_t *out)
{
    COMMON_EVAL_COLLECT_BODY(double)
}
#endif
