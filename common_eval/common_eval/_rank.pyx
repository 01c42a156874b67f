# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""Exact single-shot ranking of one block of distance rows, one pass per row, OpenMP over rows.

For each query the positives (same pid, other camera) are looked up through a pid-grouped
index of the gallery and sorted by (distance, gallery index). The number of valid negatives
ranked before each positive then comes from one of two paths, chosen per row by cost:

* candidates (a good model): every other valid gallery item that ranks before the last
  positive is dropped into the bucket of the positive it precedes; one SIMD read of the row
  plus O(m n_pos) for the m items before the last positive;
* counting (positives ranked anywhere, e.g. an untrained model): for every positive, a SIMD
  count over the whole row of the items ranked before it, minus the positives and the few
  excluded items (same pid and camera, pid -1) before it; O(n_pos G / width), whatever the
  ranking. The candidate scan stops and hands over as soon as it has found more items than
  this costs.

The bucket counts give the compacted rank of every positive, from which all AP flavours, INP,
first-match CMC and Open-ReID's all-shots CMC follow; both paths give identical numbers.
Nothing of size Q x G is allocated.

Ties are broken by gallery index (as a stable sort would) in every quantity.
"""
import numpy as np

from cython.parallel cimport parallel, prange
from libc.math cimport fabs, sqrtf, INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, qsort

cdef extern from "_scan.h" nogil:
    int64_t scan_above_f(const float* x, int64_t start, int64_t n, float t)
    int64_t scan_above_d(const double* x, int64_t start, int64_t n, double t)
    int64_t collect_f(const float* x, int64_t n, float t, int64_t* out, int64_t limit)
    int64_t collect_d(const double* x, int64_t n, double t, int64_t* out, int64_t limit)
    void count_before_f(const float* x, int64_t n, const float* thr, const int64_t* gi,
                        int64_t m, int64_t* out)
    void count_before_d(const double* x, int64_t n, const double* thr, const int64_t* gi,
                        int64_t m, int64_t* out)

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


cdef inline Py_ssize_t _bucket(const double* pd, const int64_t* pg, Py_ssize_t n, double d,
                               int64_t g) noexcept nogil:
    """How many of the sorted positives (pd, pg) rank before (d, g)."""
    cdef Py_ssize_t j, lo, hi, mid
    if n <= 32:  # a branch-free loop
        lo = 0
        for j in range(n):
            lo += (pd[j] < d) | ((pd[j] == d) & (pg[j] < g))
        return lo
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if pd[mid] < d or (pd[mid] == d and pg[mid] < g):
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef int _count_path(const real* row, Py_ssize_t G, int64_t qcam, const int64_t* g_cams,
                     const int64_t* grp, int64_t start, int64_t stop, const int64_t* junk,
                     Py_ssize_t n_junk, const double* pd, const int64_t* pg, Py_ssize_t n,
                     real* th, int64_t* before, int64_t* sub, int64_t* cnt) noexcept nogil:
    """cnt[j] = valid negatives between positives j-1 and j, from counts over the whole row.

    For every positive j, count_before_* counts the gallery items ranked before it (SIMD, no
    per-item work); from that are taken away the j positives before it and the excluded items
    before it (same pid and camera, pid -1), which are few and bucketed one by one. The cost
    does not depend on where the positives rank. Returns 1 if the row holds a non-finite value."""
    cdef Py_ssize_t j, k
    cdef int64_t gg, running, neg, prev
    if real is float:
        if scan_above_f(row, 0, G, -INFINITY) < G:
            return 1
    else:
        if scan_above_d(row, 0, G, -INFINITY) < G:
            return 1
    for j in range(n):
        th[j] = <real>pd[j]  # exact: pd holds values of the row
    if real is float:
        count_before_f(row, G, th, pg, n, before)
    else:
        count_before_d(row, G, th, pg, n, before)
    for j in range(n + 1):
        sub[j] = 0
    for k in range(start, stop):  # same pid and camera: junk for this query
        gg = grp[k]
        if g_cams[gg] == qcam:
            sub[_bucket(pd, pg, n, row[gg], gg)] += 1
    for k in range(n_junk):  # pid -1: junk for every query
        gg = junk[k]
        sub[_bucket(pd, pg, n, row[gg], gg)] += 1
    running = 0
    prev = 0
    for j in range(n):
        running += sub[j]
        neg = before[j] - j - running
        cnt[j] = neg - prev
        prev = neg
    return 0


cdef int _rank_one(const real* row, Py_ssize_t G, int64_t qpid, int64_t qcam,
                   const int64_t* g_pids, const int64_t* g_cams, const int64_t* grp,
                   int64_t start, int64_t stop, bint separate_cams, const int64_t* junk,
                   Py_ssize_t n_junk, int path,
                   Pos* pos, double* pd, int64_t* pg, int64_t* cnt, int64_t* cand,
                   real* th, int64_t* before, int64_t* sub,
                   double* out, double* allshots,
                   int allshots_len) noexcept nogil:
    """Ranks one query. Returns 1 if the row holds a NaN or an infinite value, else 0.

    out receives [n_pos, ap_stepwise, ap_trapezoid, inp, first_rank].
    path: 0 chooses, 1 always the candidate path, 2 always the counting path (tests)."""
    cdef Py_ssize_t j, lo
    cdef int64_t g, c, m, limit
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
    # The candidate path costs about (15 + n) per gallery item ranked before the last positive,
    # the counting path about n / 16 per gallery item: collect stops, and counting takes over,
    # once the candidates cost more. The same-camera exclusion of separate_cams stays here.
    if separate_cams or path == 1:
        limit = G
    elif path == 2:
        limit = -1
    else:
        limit = 32 + (n * G) // (16 * (15 + n))
    if limit < 0:
        m = -1
    elif real is float:
        m = collect_f(row, G, <float>t, cand, limit)
    else:
        m = collect_d(row, G, t, cand, limit)
    if m < 0:
        if _count_path(row, G, qcam, g_cams, grp, start, stop, junk, n_junk, pd, pg, n, th,
                       before, sub, cnt):
            return 1
        m = 0
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
        cnt[_bucket(pd, pg, n, d, g)] += 1
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
               double[:, ::1] out, double[:, ::1] allshots, int num_threads,
               const int64_t[::1] junk=None, int path=0):
    """Ranks every row of ``dist`` in place of ``out``.

    out: (B, 5) float64 filled with [n_pos, ap_stepwise, ap_trapezoid, inp, first_rank];
    a row holding a NaN or an infinite distance gets n_pos = -1.
    allshots: (B, L) float64 accumulators of Open-ReID's all-shots CMC, or shape (B, 0).
    junk: the gallery indices with pid -1 (needed by the counting path; None: computed here).
    path: 0 chooses per row, 1 / 2 force the candidate / counting path (for tests).
    """
    cdef Py_ssize_t B = dist.shape[0], G = dist.shape[1], i
    cdef Py_ssize_t L = allshots.shape[1]
    cdef Pos* pos
    cdef int64_t* cnt
    cdef int64_t* cand
    cdef double* pd
    cdef int64_t* pg
    cdef real* th
    cdef int64_t* before
    cdef int64_t* sub
    if B == 0:
        return
    if junk is None:
        junk = np.flatnonzero(np.asarray(g_pids) == -1).astype(np.int64)
    cdef Py_ssize_t n_junk = junk.shape[0]
    cdef const int64_t* jp = &junk[0] if n_junk > 0 else NULL
    with nogil, parallel(num_threads=num_threads):
        pos = <Pos*>malloc((max_pos + 1) * sizeof(Pos))
        cnt = <int64_t*>malloc((max_pos + 2) * sizeof(int64_t))
        cand = <int64_t*>malloc((G + 33) * sizeof(int64_t))
        pd = <double*>malloc((max_pos + 1) * sizeof(double))
        pg = <int64_t*>malloc((max_pos + 1) * sizeof(int64_t))
        th = <real*>malloc((max_pos + 1) * sizeof(real))
        before = <int64_t*>malloc((max_pos + 1) * sizeof(int64_t))
        sub = <int64_t*>malloc((max_pos + 2) * sizeof(int64_t))
        # chunks of one row: the cost of a row varies a lot (where its positives rank)
        for i in prange(B, schedule="dynamic", chunksize=1):
            if _rank_one(&dist[i, 0], G, q_pids[i], q_cams[i], &g_pids[0], &g_cams[0], &grp[0],
                         q_start[i], q_stop[i], separate_cams, jp, n_junk, path,
                         pos, pd, pg, cnt, cand, th, before, sub, &out[i, 0],
                         &allshots[i, 0] if L > 0 else NULL, L):
                out[i, 0] = -1
        free(pos)
        free(cnt)
        free(cand)
        free(pd)
        free(pg)
        free(th)
        free(before)
        free(sub)


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
