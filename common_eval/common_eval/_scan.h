/* Vectorised scans used by the ranking kernel (_rank.pyx).
 *
 * collect_*(x, n, t, out, limit) writes to out the indices g whose value is NOT in the open
 * interval (t, +inf) -- a gallery item that may rank before the last positive, or a NaN / inf
 * that must be reported -- and returns how many, or -1 as soon as more than `limit` are found
 * (out must hold limit + 32 entries). For a good model almost every distance is above t, so
 * the row is read in 32-wide blocks that the compiler turns into SIMD compares, and only
 * blocks holding a candidate are looked at element by element. target_clones picks AVX-512,
 * AVX2 or the baseline at load time, so one binary runs everywhere.
 *
 * count_before_*(x, n, thr, gi, m, out): for each of m thresholds, out[j] = how many items g
 * rank before (thr[j], gi[j]) in the order (distance, index): x[g] <= thr[j] for g < gi[j],
 * x[g] < thr[j] for g >= gi[j]. The row is taken in blocks of 4,096 (L1/L2) and every
 * threshold counts a block in branch-free loops (SIMD compares), so the cost is m * n / width:
 * about one cycle per 16 items and threshold with AVX-512 (4 thresholds fused per loop, tried,
 * ran slower).
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
        if (m > limit) return -1;                                             \
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
static int64_t collect_f(const float *x, int64_t n, float t, int64_t *out, int64_t limit)
{
    COMMON_EVAL_COLLECT_BODY(float)
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static int64_t collect_d(const double *x, int64_t n, double t, int64_t *out, int64_t limit)
{
    COMMON_EVAL_COLLECT_BODY(double)
}
#define COMMON_EVAL_COUNT_BODY(T)                                             \
    for (int64_t j = 0; j < m; j++) out[j] = 0;                               \
    for (int64_t b0 = 0; b0 < n; b0 += 4096) {                                \
        int64_t b1 = b0 + 4096 < n ? b0 + 4096 : n;                           \
        for (int64_t j = 0; j < m; j++) {                                     \
            const T t = thr[j];                                               \
            int64_t split = gi[j] < b0 ? b0 : (gi[j] > b1 ? b1 : gi[j]);      \
            int32_t c = 0;                                                    \
            for (int64_t g = b0; g < split; g++) c += x[g] <= t;              \
            for (int64_t g = split; g < b1; g++) c += x[g] < t;               \
            out[j] += c;                                                      \
        }                                                                     \
    }

__attribute__((target_clones("avx512f", "avx2", "default")))
static void count_before_f(const float *x, int64_t n, const float *thr, const int64_t *gi,
                           int64_t m, int64_t *out)
{
    COMMON_EVAL_COUNT_BODY(float)
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void count_before_d(const double *x, int64_t n, const double *thr, const int64_t *gi,
                           int64_t m, int64_t *out)
{
    COMMON_EVAL_COUNT_BODY(double)
}
#endif
