# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""Kernels of the sparse k-reciprocal encoding (OpenMP over rows, deterministic per row).

* ``topk_merge``: running k smallest entries of each row over blocks of columns, ordered
  by (value, column index); ``topk_merge_cols`` the same for the columns of a block.
* ``pair_dots``: x_i . x_j for every stored (i, j) of a CSR pattern (BLAS sdot).
* ``minsum_count`` / ``minsum_rows``: for rows of V, S_ir = sum_c min(V_ic, V_rc) over the
  columns they share, through the transposed pattern, emitted as d = 1 - S / (2 - S) (clipped
  at 0) into an exactly sized CSR (count first, then fill), optionally sorted by distance.
* ``minsum_rows_cut``: the same for all rows and columns, keeping only d <= cutoff, in one pass
  (per-thread growing buffers, then one exactly sized CSR).
"""
import numpy as np

from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint32_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport sdot


cdef inline int64_t _insert(float* vals, int64_t* ids, Py_ssize_t k, int64_t f, float v,
                            int64_t c) noexcept nogil:
    """Inserts (v, c) into an ascending list of f <= k entries (if full, the last one drops out:
    the caller has checked that (v, c) beats it). Returns the new fill."""
    cdef Py_ssize_t m
    if f == k:
        m = k - 1
    else:
        m = f
        f = f + 1
    while m > 0 and (v < vals[m - 1] or (v == vals[m - 1] and c < ids[m - 1])):
        vals[m] = vals[m - 1]
        ids[m] = ids[m - 1]
        m = m - 1
    vals[m] = v
    ids[m] = c
    return f


cdef inline int _count_below(const float* b, float scale, const float* add, Py_ssize_t n,
                             float thr) noexcept nogil:
    """How many of scale * b[j] (+ add[j] if add) are <= thr: a branch-free loop the compiler
    vectorises."""
    cdef int cnt = 0
    cdef Py_ssize_t j
    if add != NULL:
        for j in range(n):
            cnt += (scale * b[j] + add[j]) <= thr
    else:
        for j in range(n):
            cnt += scale * b[j] <= thr
    return cnt


cdef inline int _count_below_each(const float* b, float scale, float add, const float* thr,
                                  Py_ssize_t n) noexcept nogil:
    """How many of scale * b[j] + add are <= thr[j] (vectorised like _count_below)."""
    cdef int cnt = 0
    cdef Py_ssize_t j
    for j in range(n):
        cnt += (scale * b[j] + add) <= thr[j]
    return cnt


def topk_merge(const float[:, ::1] block, const float[::1] add, int64_t col_offset,
               int64_t[:, ::1] idx, float[:, ::1] val, int64_t[::1] filled, int num_threads,
               float scale=1.0):
    """Merges the columns of one block into running k-smallest lists, one list per row.

    Row i of the block holds the values of columns col_offset.., times ``scale`` (plus add[j]
    when add is non-empty); idx/val/filled hold each row's list so far, ascending by (value, column), so
    blocks may arrive in any column order and the result is still ordered with ties by index.
    Once a list is full, runs of 64 columns none of which can enter it are skipped after one
    vectorised count.
    """
    cdef Py_ssize_t B = block.shape[0], n = block.shape[1], k = idx.shape[1]
    cdef Py_ssize_t i, j, j0, j1
    cdef int64_t f, c
    cdef const float* a = &add[0] if add.shape[0] > 0 else NULL
    cdef float v, last
    with nogil:
        for i in prange(B, schedule="static", num_threads=num_threads):
            f = filled[i]
            last = val[i, k - 1] if f == k else INFINITY
            for j0 in range(0, n, 64):
                j1 = min(n, j0 + 64)
                if f == k and _count_below(&block[i, j0], scale, a + j0 if a != NULL else NULL, j1 - j0,
                                           last) == 0:
                    continue
                for j in range(j0, j1):
                    v = scale * block[i, j] + a[j] if a != NULL else scale * block[i, j]
                    if not v <= last:
                        continue
                    c = col_offset + j
                    if f == k and v == last and c > idx[i, k - 1]:
                        continue
                    f = _insert(&val[i, 0], &idx[i, 0], k, f, v, c)
                    if f == k:
                        last = val[i, k - 1]
            filled[i] = f


def topk_merge_cols(const float[:, ::1] block, const float[::1] add, int64_t row_offset,
                    int64_t[:, ::1] idx, float[:, ::1] val, int64_t[::1] filled, int num_threads,
                    float scale=1.0):
    """topk_merge of the transposed block without transposing it: column j of the block (values
    scale * block[i, j] + add[i] of indices row_offset + i) is merged into list j. Threads take groups of
    16 adjacent columns (one cache line per row) and walk down the rows; a row none of whose 16
    values can enter its column's list is skipped after one vectorised count."""
    cdef Py_ssize_t R = block.shape[0], n = block.shape[1], k = idx.shape[1]
    cdef Py_ssize_t g, i, j, j0, j1
    cdef int64_t f, c
    cdef float v, x
    cdef float* last = <float*>malloc((n + 1) * sizeof(float))
    if last == NULL:
        raise MemoryError()
    with nogil:
        for j in range(n):  # each list's entry threshold (+inf while it is not full)
            last[j] = val[j, k - 1] if filled[j] == k else INFINITY
        for g in prange((n + 15) // 16, schedule="static", num_threads=num_threads):
            j0 = g * 16
            j1 = min(n, j0 + 16)
            for i in range(R):
                x = add[i]
                if _count_below_each(&block[i, j0], scale, x, &last[j0], j1 - j0) == 0:
                    continue
                c = row_offset + i
                for j in range(j0, j1):
                    v = scale * block[i, j] + x
                    if not v <= last[j]:
                        continue
                    f = filled[j]
                    if f == k and v == last[j] and c > idx[j, k - 1]:
                        continue
                    f = _insert(&val[j, 0], &idx[j, 0], k, f, v, c)
                    filled[j] = f
                    if f == k:
                        last[j] = val[j, k - 1]
    free(last)


def pair_dots(const float[:, ::1] X, const int64_t[::1] indptr, const int64_t[::1] indices,
              double[::1] out, int num_threads):
    """out[p] = X[i] . X[indices[p]] for the entries p of row i of a CSR pattern."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, i, p
    cdef int d = X.shape[1], one = 1
    with nogil:
        for i in prange(n, schedule="dynamic", chunksize=64, num_threads=num_threads):
            for p in range(indptr[i], indptr[i + 1]):
                out[p] = sdot(&d, <float*>&X[i, 0], &one, <float*>&X[indices[p], 0], &one)


cdef void _radix_sort(uint32_t* key, int32_t* val, uint32_t* key_tmp, int32_t* val_tmp,
                      Py_ssize_t* count, Py_ssize_t n) noexcept nogil:
    """Stable LSD radix sort of n (key, val) pairs by key: three 11-bit digits, one counting pass
    for all three histograms (count: 3 x 2048 scratch), then one scatter pass per digit; a digit
    that every key shares is skipped (distances in [0, 1] share most of their top bits)."""
    cdef Py_ssize_t i, b, total, c, d
    cdef int shift
    cdef uint32_t x
    cdef uint32_t* ks = key
    cdef int32_t* vs = val
    cdef uint32_t* kd = key_tmp
    cdef int32_t* vd = val_tmp
    cdef uint32_t* kx
    cdef int32_t* vx
    cdef Py_ssize_t* h
    for b in range(3 * 2048):
        count[b] = 0
    for i in range(n):
        x = ks[i]
        count[x & 2047] += 1
        count[2048 + ((x >> 11) & 2047)] += 1
        count[4096 + (x >> 22)] += 1
    for d in range(3):
        shift = 11 * d
        h = &count[2048 * d]
        if h[(ks[0] >> shift) & 2047] == n:
            continue
        total = 0
        for b in range(2048):
            c = h[b]
            h[b] = total
            total += c
        for i in range(n):
            b = (ks[i] >> shift) & 2047
            kd[h[b]] = ks[i]
            vd[h[b]] = vs[i]
            h[b] += 1
        kx = ks; ks = kd; kd = kx
        vx = vs; vs = vd; vd = vx
    if ks != key:
        memcpy(key, ks, n * sizeof(uint32_t))
        memcpy(val, vs, n * sizeof(int32_t))


def minsum_count(const int64_t[::1] v_ptr, const int64_t[::1] v_idx,
                 const int64_t[::1] t_ptr, const int64_t[::1] t_idx,
                 const int64_t[::1] rows, int64_t col_begin, int64_t col_end,
                 int64_t[::1] out_len, int num_threads):
    """How many columns in [col_begin, col_end) each given row of V shares support with."""
    cdef Py_ssize_t nrows = rows.shape[0], N = t_ptr.shape[0] - 1, k, a, b
    cdef int64_t i, c, r, n_out
    cdef int32_t* mark
    with nogil, parallel(num_threads=num_threads):
        mark = <int32_t*>calloc(N, sizeof(int32_t))
        for k in prange(nrows, schedule="dynamic", chunksize=16):
            i = rows[k]
            n_out = 0
            for a in range(v_ptr[i], v_ptr[i + 1]):
                c = v_idx[a]
                for b in range(t_ptr[c], t_ptr[c + 1]):
                    r = t_idx[b]
                    if r >= col_begin and r < col_end:  # first visit counted without a branch
                        n_out = n_out + (mark[r] != k + 1)
                        mark[r] = k + 1
            out_len[k] = n_out
        free(mark)


ctypedef fused real:
    float
    double


def minsum_rows(const int64_t[::1] v_ptr, const int64_t[::1] v_idx, const real[::1] v_val,
                const int64_t[::1] t_ptr, const int64_t[::1] t_idx, const real[::1] t_val,
                const int64_t[::1] rows, int64_t col_begin, int64_t col_end,
                const int64_t[::1] out_ptr, int32_t[::1] out_col, float[::1] out_d,
                bint sort_rows, int num_threads):
    """Jaccard distances of the given rows of V against the columns [col_begin, col_end).

    V is given as CSR (v_*) and its transpose as CSR (t_*), both over N x N.  Row k of the
    output fills out[out_ptr[k] : out_ptr[k + 1]] (lengths from minsum_count): the columns it
    shares support with and d = 1 - S / (2 - S), clipped at 0, S = sum of minima; with
    sort_rows, ordered by distance (a stable radix sort on the float bits: non-negative floats
    order like their bit patterns; ties keep the deterministic accumulation order).
    The arithmetic is V's type: double (S accumulated and d computed in double, then rounded
    to float) or float (every addition, minimum and operation of d rounded to float, the
    minima of each (row, column) pair added in ascending order of V's columns, as a dense
    float32 numpy loop over the columns of a row does).
    """
    cdef Py_ssize_t nrows = rows.shape[0], N = t_ptr.shape[0] - 1, k, a, b
    cdef int64_t i, c, r, base, n_out, max_len = 0
    cdef real vi, vr, s
    cdef real one = 1.0, two = 2.0, zero = 0.0
    cdef float f
    cdef real* acc
    cdef uint32_t* keys
    cdef uint32_t* keys_tmp
    cdef int32_t* cols_tmp
    cdef int32_t* seen
    cdef Py_ssize_t* hist
    for k in range(nrows):
        if out_ptr[k + 1] - out_ptr[k] > max_len:
            max_len = out_ptr[k + 1] - out_ptr[k]
    with nogil, parallel(num_threads=num_threads):
        acc = <real*>calloc(N, sizeof(real))
        keys = <uint32_t*>malloc((max_len + 1) * sizeof(uint32_t))
        keys_tmp = <uint32_t*>malloc((max_len + 1) * sizeof(uint32_t))
        cols_tmp = <int32_t*>malloc((max_len + 1) * sizeof(int32_t))
        hist = <Py_ssize_t*>malloc(3 * 2048 * sizeof(Py_ssize_t))
        seen = <int32_t*>malloc((max_len + 1) * sizeof(int32_t))
        for k in prange(nrows, schedule="dynamic", chunksize=16):
            i = rows[k]
            base = out_ptr[k]
            n_out = 0
            for a in range(v_ptr[i], v_ptr[i + 1]):
                c = v_idx[a]
                vi = v_val[a]
                for b in range(t_ptr[c], t_ptr[c + 1]):
                    r = t_idx[b]
                    if r < col_begin or r >= col_end:
                        continue
                    vr = t_val[b]
                    # a first visit (V holds no zeros, so acc > 0 once seen) keeps r; branch-free:
                    # the slot is always written and kept only by the increment
                    seen[n_out] = <int32_t>r
                    n_out = n_out + (acc[r] == zero)
                    acc[r] = acc[r] + (vi if vi < vr else vr)
            memcpy(&out_col[base], seen, n_out * sizeof(int32_t))
            for a in range(n_out):
                r = out_col[base + a]
                s = acc[r]
                acc[r] = zero
                s = one - s / (two - s)
                f = <float>(s if s > zero else zero)
                if sort_rows:
                    memcpy(&keys[a], &f, 4)
                else:
                    out_d[base + a] = f
            if sort_rows and n_out > 1:
                _radix_sort(keys, &out_col[base], keys_tmp, cols_tmp, hist, n_out)
            if sort_rows:
                for a in range(n_out):
                    memcpy(&out_d[base + a], &keys[a], 4)
        free(acc)
        free(keys)
        free(keys_tmp)
        free(cols_tmp)
        free(hist)
        free(seen)


def minsum_rows_cut(const int64_t[::1] v_ptr, const int64_t[::1] v_idx, const real[::1] v_val,
                    const int64_t[::1] t_ptr, const int64_t[::1] t_idx, const real[::1] t_val,
                    const int64_t[::1] rows, float cutoff, bint sort_rows, int num_threads):
    """minsum_rows over all columns, keeping only the distances d <= cutoff (float32 compare).

    One pass: no counting pass first, since the kept lengths are known only once a row is
    computed. Each thread appends the kept entries of its rows to its own growing buffer
    (a row's entries are sorted there when sort_rows); the exactly sized CSR arrays are then
    filled from those buffers. Memory is the kept entries (twice, briefly) plus O(N) scratch per
    thread, instead of every pair that shares support.
    Returns (indptr int64, columns int32, distances float32).
    """
    cdef Py_ssize_t nrows = rows.shape[0], N = t_ptr.shape[0] - 1, k, a, b
    cdef int64_t i, c, r, n_out, n_keep, need, cap, total
    cdef int tid, nt = max(1, num_threads), failed = 0
    cdef real vi, vr, s
    cdef real one = 1.0, two = 2.0, zero = 0.0
    cdef float f
    cdef real* acc
    cdef uint32_t* keys
    cdef uint32_t* keys_tmp
    cdef int32_t* cols_tmp
    cdef int32_t* seen
    cdef Py_ssize_t* hist
    cdef int32_t* kcols
    cdef void* p
    cdef uint32_t** t_keys = <uint32_t**>calloc(nt, sizeof(uint32_t*))
    cdef int32_t** t_cols = <int32_t**>calloc(nt, sizeof(int32_t*))
    cdef int64_t* t_cap = <int64_t*>calloc(nt, sizeof(int64_t))
    cdef int64_t* t_used = <int64_t*>calloc(nt, sizeof(int64_t))
    if t_keys == NULL or t_cols == NULL or t_cap == NULL or t_used == NULL:
        free(t_keys); free(t_cols); free(t_cap); free(t_used)
        raise MemoryError()
    row_tid = np.empty(nrows, dtype=np.int32)
    row_off = np.empty(nrows, dtype=np.int64)
    indptr = np.zeros(nrows + 1, dtype=np.int64)
    cdef int32_t[::1] rtid = row_tid
    cdef int64_t[::1] roff = row_off
    cdef int64_t[::1] ptr = indptr
    try:
        with nogil, parallel(num_threads=nt):
            acc = <real*>calloc(N + 1, sizeof(real))
            keys = <uint32_t*>malloc((N + 1) * sizeof(uint32_t))
            keys_tmp = <uint32_t*>malloc((N + 1) * sizeof(uint32_t))
            cols_tmp = <int32_t*>malloc((N + 1) * sizeof(int32_t))
            seen = <int32_t*>malloc((N + 1) * sizeof(int32_t))
            hist = <Py_ssize_t*>malloc(3 * 2048 * sizeof(Py_ssize_t))
            kcols = <int32_t*>malloc((N + 1) * sizeof(int32_t))
            for k in prange(nrows, schedule="dynamic", chunksize=16):
                tid = threadid()
                if (acc == NULL or keys == NULL or keys_tmp == NULL or cols_tmp == NULL
                        or seen == NULL or hist == NULL or kcols == NULL):
                    failed += 1
                    continue
                i = rows[k]
                n_out = 0
                for a in range(v_ptr[i], v_ptr[i + 1]):
                    c = v_idx[a]
                    vi = v_val[a]
                    for b in range(t_ptr[c], t_ptr[c + 1]):
                        r = t_idx[b]
                        vr = t_val[b]
                        seen[n_out] = <int32_t>r
                        n_out = n_out + (acc[r] == zero)
                        acc[r] = acc[r] + (vi if vi < vr else vr)
                n_keep = 0
                for a in range(n_out):  # branch-free: every slot written, kept by the increment
                    r = seen[a]
                    s = acc[r]
                    acc[r] = zero
                    s = one - s / (two - s)
                    f = <float>(s if s > zero else zero)
                    memcpy(&keys[n_keep], &f, 4)
                    kcols[n_keep] = <int32_t>r
                    n_keep = n_keep + (f <= cutoff)
                if sort_rows and n_keep > 1:
                    _radix_sort(keys, kcols, keys_tmp, cols_tmp, hist, n_keep)
                need = t_used[tid] + n_keep
                if need > t_cap[tid]:
                    cap = max(need, 2 * t_cap[tid] + 1024)
                    p = realloc(t_keys[tid], cap * sizeof(uint32_t))
                    if p == NULL:
                        failed += 1
                        continue
                    t_keys[tid] = <uint32_t*>p
                    p = realloc(t_cols[tid], cap * sizeof(int32_t))
                    if p == NULL:
                        failed += 1
                        continue
                    t_cols[tid] = <int32_t*>p
                    t_cap[tid] = cap
                memcpy(&t_keys[tid][t_used[tid]], keys, n_keep * sizeof(uint32_t))
                memcpy(&t_cols[tid][t_used[tid]], kcols, n_keep * sizeof(int32_t))
                rtid[k] = tid
                roff[k] = t_used[tid]
                ptr[k + 1] = n_keep
                t_used[tid] = need
            free(acc)
            free(keys)
            free(keys_tmp)
            free(cols_tmp)
            free(seen)
            free(hist)
            free(kcols)
        if failed:
            raise MemoryError("out of memory in the Jaccard kernel")
        total = 0
        for k in range(nrows):
            total += ptr[k + 1]
            ptr[k + 1] = total
        cols = np.empty(total, dtype=np.int32)
        dists = np.empty(total, dtype=np.float32)
        _gather(cols, dists, ptr, rtid, roff, t_cols, t_keys, nt)
    finally:
        for tid in range(nt):
            free(t_keys[tid])
            free(t_cols[tid])
        free(t_keys); free(t_cols); free(t_cap); free(t_used)
    return indptr, cols, dists


cdef void _gather(int32_t[::1] cols, float[::1] dists, const int64_t[::1] ptr,
                  const int32_t[::1] rtid, const int64_t[::1] roff, int32_t** t_cols,
                  uint32_t** t_keys, int nt) noexcept:
    cdef Py_ssize_t k, n = rtid.shape[0]
    cdef int64_t length
    with nogil:
        for k in prange(n, schedule="static", num_threads=nt):
            length = ptr[k + 1] - ptr[k]
            if length > 0:
                memcpy(&cols[ptr[k]], &t_cols[rtid[k]][roff[k]], length * sizeof(int32_t))
                memcpy(&dists[ptr[k]], &t_keys[rtid[k]][roff[k]], length * sizeof(float))
