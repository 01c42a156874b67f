# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""Exact single-shot ranking of one block of distance rows, one pass per row, OpenMP over rows.

For each query the positives (same pid, other camera) are looked up through a pid-grouped
index of the gallery, sorted by (distance, gallery index), and every other valid gallery item
that ranks before the last positive is dropped into the bucket of the positive it precedes
(binary search).  The bucket counts give the compacted rank of every positive, from which
all AP flavours, INP, first-match CMC and Open-ReID's all-shots CMC follow.  Nothing of size
Q x G is allocated; the work per row is one read of the row plus O(m log n_pos) for the m
negatives that rank before the last positive.

Ties are broken by gallery index (as a stable sort would) in every quantity.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport fabs, INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, qsort

cdef extern from "_scan.h" nogil:
    int64_t scan_above_f(const float* x, int64_t start, int64_t n, float t)
    int64_t scan_above_d(const double* x, int64_t start, int64_t n, double t)

ctypedef fused real:
    float
    double

cdef struct Pos:
    double d
    int64_t g


cdef int _cmp_pos(const void* a, const void* b) noexcept nogil:
    cdef const Pos* x = <const Pos*>a
    cdef const Pos* y = <const Pos*>b
    if x.d < y.d:
        return -1
    if x.d > y.d:
        return 1
    if x.g < y.g:
        return -1
    if x.g > y.g:
        return 1
    return 0


cdef int _rank_one(const real* row, Py_ssize_t G, int64_t qpid, int64_t qcam,
                   const int64_t* g_pids, const int64_t* g_cams, const int64_t* grp,
                   int64_t start, int64_t stop, bint separate_cams,
                   Pos* pos, int64_t* cnt, double* out, double* allshots,
                   int allshots_len) noexcept nogil:
    """Ranks one query. Returns 1 if the row holds a NaN or an infinite value, else 0.

    out receives [n_pos, ap_stepwise, ap_trapezoid, inp, first_rank]."""
    cdef Py_ssize_t j, lo, hi, mid
    cdef int64_t g
    cdef int64_t n = 0, k, gg, p, running, r
    cdef double d, t, ap_s = 0.0, ap_t = 0.0, prev
    cdef int64_t glast
    for k in range(start, stop):
        gg = grp[k]
        if g_cams[gg] == qcam:
            continue
        pos[n].d = row[gg]
        pos[n].g = gg
        n += 1
    out[0] = n
    if n == 0:  # no true match: only look for values that are not finite
        if real is float:
            g = scan_above_f(row, 0, G, -INFINITY)
        else:
            g = scan_above_d(row, 0, G, -INFINITY)
        return 1 if g < G else 0
    qsort(pos, n, sizeof(Pos), _cmp_pos)
    t = pos[n - 1].d
    glast = pos[n - 1].g
    for j in range(n + 1):
        cnt[j] = 0
    g = 0
    while True:
        if real is float:
            g = scan_above_f(row, g, G, <float>t)
        else:
            g = scan_above_d(row, g, G, t)
        if g >= G:
            break
        d = row[g]
        g += 1
        if not (fabs(d) < INFINITY):
            return 1
        if d == t and g - 1 > glast:
            continue
        p = g_pids[g - 1]
        if p == qpid or p == -1:
            continue
        if separate_cams and g_cams[g - 1] == qcam:
            continue
        lo = 0
        hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            if pos[mid].d < d or (pos[mid].d == d and pos[mid].g < g - 1):
                lo = mid + 1
            else:
                hi = mid
        cnt[lo] += 1
    running = 0
    r = 0
    for j in range(n):
        running += cnt[j]
        r = j + 1 + running
        ap_s += (j + 1.0) / r
        prev = 1.0 if r == 1 else j / (r - 1.0)
        ap_t += 0.5 * (prev + (j + 1.0) / r)
        if allshots != NULL and running < allshots_len:
            allshots[running] += 1.0 / n
    out[1] = ap_s / n
    out[2] = ap_t / n
    out[3] = n / (<double>r)
    out[4] = 1 + cnt[0]
    return 0


def rank_block(const real[:, ::1] dist,
               const int64_t[::1] q_pids, const int64_t[::1] q_cams,
               const int64_t[::1] g_pids, const int64_t[::1] g_cams,
               const int64_t[::1] grp, const int64_t[::1] q_start, const int64_t[::1] q_stop,
               bint separate_cams, Py_ssize_t max_pos,
               double[:, ::1] out, double[:, ::1] allshots, int num_threads):
    """Ranks every row of ``dist`` in place of ``out``.

    out: (B, 5) float64 filled with [n_pos, ap_stepwise, ap_trapezoid, inp, first_rank];
    a row holding a NaN or an infinite distance gets n_pos = -1.
    allshots: (B, L) float64 accumulators of Open-ReID's all-shots CMC, or shape (B, 0).
    """
    cdef Py_ssize_t B = dist.shape[0], G = dist.shape[1], i
    cdef Py_ssize_t L = allshots.shape[1]
    cdef Pos* pos
    cdef int64_t* cnt
    if B == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        pos = <Pos*>malloc((max_pos + 1) * sizeof(Pos))
        cnt = <int64_t*>malloc((max_pos + 2) * sizeof(int64_t))
        for i in prange(B, schedule="dynamic", chunksize=4):
            if _rank_one(&dist[i, 0], G, q_pids[i], q_cams[i], &g_pids[0], &g_cams[0], &grp[0],
                         q_start[i], q_stop[i], separate_cams, pos, cnt, &out[i, 0],
                         &allshots[i, 0] if L > 0 else NULL, L):
                out[i, 0] = -1
        free(pos)
        free(cnt)
