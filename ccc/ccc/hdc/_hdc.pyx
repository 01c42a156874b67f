# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""The two inner loops of HDC (spec 3.3, steps 2.2 and 2.4), compiled with OpenMP.

* ``harmonic_discrepancy``: for every sample i and cluster j, the member k of j that maximises
  h(i, k) = A[i, k] * m[k] / (A[i, k] + m[k]) (the first maximum in k order wins: strict ``>``
  against an initial -1, so a NaN never wins; an empty cluster falls back to k = 0), and
  HD[i, j] = A[i, k*]. Rows are split over threads; each row is computed by one thread in a
  fixed order with its own scratch buffers, so the result does not depend on the thread count.
* ``harmonic_discrepancy_sparse``: the same result from a sparse A (the pairs a sparse Jaccard
  distance does not store all have one value), in O(K + stored pairs) per row instead of O(N).
* ``relocate_pass``: one pass of the empty-cluster relocation (serial, as in the original).
"""
from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

import numpy as np


def harmonic_discrepancy(const float[:, ::1] A, const float[::1] m, const int32_t[::1] labels,
                         float[:, ::1] hd, int32_t[:, ::1] arg, int num_threads):
    """Fills hd (N x K) and arg (N x K, the chosen member k*) from A (N x N), the membership
    m[k] of every sample in its own cluster and the current labels (-1 = not a member of any
    cluster; labels must be < K). An ``arg`` with no rows is not written (HDC.fit does not read
    it: an N x K array less)."""
    cdef Py_ssize_t N = A.shape[0], K = hd.shape[1], i, j, k
    cdef bint with_arg = arg.shape[0] > 0
    cdef int32_t y
    cdef float a, t
    cdef float* best
    cdef int32_t* who
    with nogil, parallel(num_threads=num_threads):
        best = <float*>malloc(K * sizeof(float))
        who = <int32_t*>malloc(K * sizeof(int32_t))
        for i in prange(N, schedule="static"):
            for j in range(K):
                best[j] = -1.0
                who[j] = 0
            for k in range(N):
                y = labels[k]
                if y < 0:
                    continue
                a = A[i, k]
                t = a * m[k] / (a + m[k])
                if t > best[y]:
                    best[y] = t
                    who[y] = <int32_t>k
            for j in range(K):
                hd[i, j] = A[i, who[j]]
                if with_arg:
                    arg[i, j] = who[j]
        free(best)
        free(who)


def relocate_pass(const float[:, ::1] hd, const float[::1] labels_mem, int32_t[::1] labels,
                  float[::1] labels_hd, int64_t[::1] counts, int small):
    """One relocation pass (the original's ``_relocate_empty_clusters``); returns the number of
    samples moved, and leaves the cluster sizes after the moves in ``counts``.

    With E empty clusters (ascending ids), the E samples of lowest confidence ``labels_mem``
    move into them, the e-th sample into the e-th empty cluster, and take HD to their new
    cluster as their hd. Members of clusters with fewer than ``small`` (5) members count as
    confidence 1 (protected). The original takes the E lowest with ``np.argpartition``, whose
    order inside the E is unspecified; here they are taken in (confidence, index) order.
    """
    cdef Py_ssize_t N = hd.shape[0], K = hd.shape[1], i, e, E = 0
    cdef int32_t j, s
    for j in range(K):
        counts[j] = 0
    for i in range(N):
        counts[labels[i]] += 1
    empty = np.flatnonzero(np.asarray(counts) == 0).astype(np.int32)
    E = empty.shape[0]
    if E == 0:
        return 0
    memberships = np.array(labels_mem, dtype=np.float32, copy=True)
    cdef float[::1] mem = memberships
    for i in range(N):
        if counts[labels[i]] < small:
            mem[i] = 1.0
    cdef int64_t[::1] order = np.argsort(memberships, kind="stable")[:E].astype(np.int64)
    cdef int32_t[::1] empty_v = empty
    for e in range(E):
        j = empty_v[e]
        s = <int32_t>order[e]
        counts[labels[s]] -= 1
        counts[j] += 1
        labels[s] = j
        labels_hd[s] = hd[s, j]
    return E


def absent_harmonic(float absent, const float[::1] m):
    """h(absent, m[k]) = absent * m[k] / (absent + m[k]) for every k, in float32 exactly as
    ``harmonic_discrepancy`` computes h (the value of a pair the sparse distance does not store)."""
    cdef Py_ssize_t N = m.shape[0], k
    out = np.empty(N, dtype=np.float32)
    cdef float[::1] o = out
    for k in range(N):
        o[k] = absent * m[k] / (absent + m[k])
    return out


def harmonic_discrepancy_sparse(const int64_t[::1] indptr, const int32_t[::1] indices,
                                const float[::1] data, float absent, const float[::1] m,
                                const int32_t[::1] labels, const float[::1] h_absent,
                                const int32_t[::1] order, const int64_t[::1] bounds,
                                float[:, ::1] hd, int32_t[:, ::1] arg, int num_threads):
    """``harmonic_discrepancy`` of a sparse A (CSR rows, column indices unique; every pair not
    stored has the value ``absent``), with the same result as on the dense matrix.

    ``order[bounds[j]:bounds[j + 1]]`` lists the members k of cluster j by decreasing
    h_absent[k] = h(absent, m[k]), ties by increasing k, leaving out the members whose h_absent
    is not > -1 (NaN): its first entry not stored in row i is the best member of j among the
    pairs that row does not store. The stored members of j in row i then compete with it by
    (largest h, smallest k), which is what the dense scan in k order with a strict ``>`` picks.
    Each row costs O(K + stored entries) instead of O(N). An ``arg`` with no rows is not written.
    """
    cdef Py_ssize_t N = hd.shape[0], K = hd.shape[1], i, j, p, q, p0, p1, s
    cdef bint with_arg = arg.shape[0] > 0
    cdef int32_t y, k, w
    cdef float a, t
    cdef float* best
    cdef int32_t* who
    cdef int32_t* stamp
    cdef int32_t* seen
    cdef float* value
    with nogil, parallel(num_threads=num_threads):
        best = <float*>malloc(K * sizeof(float))
        who = <int32_t*>malloc(K * sizeof(int32_t))
        seen = <int32_t*>malloc(K * sizeof(int32_t))
        stamp = <int32_t*>malloc(N * sizeof(int32_t))
        value = <float*>malloc(N * sizeof(float))
        for s in range(K):
            seen[s] = -1
        for s in range(N):
            stamp[s] = -1
        for i in prange(N, schedule="dynamic", chunksize=64):
            # the best member of every cluster if row i stored nothing
            for j in range(K):
                if bounds[j] < bounds[j + 1]:
                    w = order[bounds[j]]
                    best[j] = h_absent[w]
                    who[j] = w
                else:
                    best[j] = -1.0
                    who[j] = 0
            p0 = indptr[i]
            p1 = indptr[i + 1]
            for p in range(p0, p1):
                k = indices[p]
                stamp[k] = <int32_t>i
                value[k] = data[p]
            # clusters with a stored member: their best absent member is the first one not stored
            for p in range(p0, p1):
                y = labels[indices[p]]
                if y < 0 or seen[y] == i:
                    continue
                seen[y] = <int32_t>i
                best[y] = -1.0
                who[y] = 0
                for q in range(bounds[y], bounds[y + 1]):
                    w = order[q]
                    if stamp[w] != i:
                        best[y] = h_absent[w]
                        who[y] = w
                        break
            for p in range(p0, p1):
                k = indices[p]
                y = labels[k]
                if y < 0:
                    continue
                a = data[p]
                t = a * m[k] / (a + m[k])
                if t > best[y] or (t == best[y] and k < who[y]):
                    best[y] = t
                    who[y] = k
            for j in range(K):
                w = who[j]
                hd[i, j] = value[w] if stamp[w] == i else absent
                if with_arg:
                    arg[i, j] = w
        free(best)
        free(who)
        free(seen)
        free(stamp)
        free(value)
