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
from libc.math cimport fabs, sqrtf, INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, qsort

cdef extern from "_scan.h" nogil:
    int64_t scan_above_f(const float* x, int64_t start, int64_t n, float t)
    int64_t scan_above_d(const double* x, int64_t start, int64_t n, double t)
    int64_t collect_f(const float* x, int64_t n, float t, int64_t* out)
    int64_t collect_d(const double* x, int64_t n, double t, int64_t* out)

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
                   Pos* pos, double* pd, int64_t* pg, int64_t* cnt, int64_t* cand,
                   double* out, double* allshots,
                   int allshots_len) noexcept nogil:
    """Ranks one query. Returns 1 if the row holds a NaN or an infinite value, else 0.

    out receives [n_pos, ap_stepwise, ap_trapezoid, inp, first_rank]."""
    cdef Py_ssize_t j, lo, hi, mid
    cdef int64_t g, c, m
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
    for j in range(n):  # split into two arrays (the counting loop below vectorises)
        pd[j] = pos[j].d
        pg[j] = pos[j].g
    t = pd[n - 1]
    glast = pg[n - 1]
    for j in range(n + 1):
        cnt[j] = 0
    if real is float:
        m = collect_f(row, G, <float>t, cand)
    else:
        m = collect_d(row, G, t, cand)
    for c in range(m):
        g = cand[c]
        d = row[g]
        if not (fabs(d) < INFINITY):
            return 1
        if d == t and g > glast:
            continue
        p = g_pids[g]
        if p == qpid or p == -1:
            continue
        if separate_cams and g_cams[g] == qcam:
            continue
        if n <= 32:  # count the positives ranked before it: a branch-free loop
            lo = 0
            for j in range(n):
                lo += (pd[j] < d) | ((pd[j] == d) & (pg[j] < g))
        else:
            lo = 0
            hi = n
            while lo < hi:
                mid = (lo + hi) >> 1
                if pd[mid] < d or (pd[mid] == d and pg[mid] < g):
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
    cdef int64_t* cand
    cdef double* pd
    cdef int64_t* pg
    if B == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        pos = <Pos*>malloc((max_pos + 1) * sizeof(Pos))
        cnt = <int64_t*>malloc((max_pos + 2) * sizeof(int64_t))
        cand = <int64_t*>malloc((G + 1) * sizeof(int64_t))
        pd = <double*>malloc((max_pos + 1) * sizeof(double))
        pg = <int64_t*>malloc((max_pos + 1) * sizeof(int64_t))
        for i in prange(B, schedule="dynamic", chunksize=4):
            if _rank_one(&dist[i, 0], G, q_pids[i], q_cams[i], &g_pids[0], &g_cams[0], &grp[0],
                         q_start[i], q_stop[i], separate_cams, pos, pd, pg, cnt, cand, &out[i, 0],
                         &allshots[i, 0] if L > 0 else NULL, L):
                out[i, 0] = -1
        free(pos)
        free(cnt)
        free(cand)
        free(pd)
        free(pg)


def finish_distances(float[:, ::1] block, const float[::1] q_norm, const float[::1] g_norm,
                     int metric, int num_threads):
    """Turns a Gram block into distances in place, one pass, OpenMP over rows.

    metric 0 / 1: block holds -2 q.g and q_norm / g_norm the squared norms; the result is the
    squared Euclidean distance clamped at 0 (1: its square root).
    metric 2: block holds q.g and q_norm / g_norm the norms; the result is 1 - cosine.
    """
    cdef Py_ssize_t B = block.shape[0], G = block.shape[1], i, j
    cdef float v, qn
    with nogil:
        for i in prange(B, schedule="static", num_threads=num_threads):
            qn = q_norm[i]
            if metric == 2:
                for j in range(G):
                    block[i, j] = 1.0 - block[i, j] / (max(qn, <float>1e-12) * max(g_norm[j], <float>1e-12))
            else:
                for j in range(G):
                    v = block[i, j] + qn + g_norm[j]
                    v = v if v > 0 else 0
                    block[i, j] = sqrtf(v) if metric == 1 else v
