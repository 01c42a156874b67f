# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""Kernels of the sparse k-reciprocal encoding (OpenMP over rows, deterministic per row).

* ``topk_merge``: running k smallest entries of each row over blocks of columns, ordered
  by (value, column index).
* ``pair_dots``: x_i . x_j for every stored (i, j) of a CSR pattern (BLAS sdot).
* ``minsum_count`` / ``minsum_rows``: for rows of V, S_ir = sum_c min(V_ic, V_rc) over the
  columns they share, through the transposed pattern, emitted as d = 1 - S / (2 - S) (clipped
  at 0) into an exactly sized CSR (count first, then fill), optionally sorted by distance.
"""
from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, int64_t, uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport sdot


def topk_merge(const float[:, ::1] block, const float[::1] add, int64_t col_offset,
               int64_t[:, ::1] idx, float[:, ::1] val, int64_t[::1] filled, int num_threads):
    """Merges the columns of one block into running k-smallest lists, one list per row.

    Row i of the block holds the values of columns col_offset.. (plus add[j] when add is
    non-empty); idx/val/filled hold each row's list so far, ascending by (value, column), so
    blocks may arrive in any column order and the result is still ordered with ties by index.
    """
    cdef Py_ssize_t B = block.shape[0], n = block.shape[1], k = idx.shape[1]
    cdef Py_ssize_t i, j, m
    cdef int64_t f, c
    cdef bint has_add = add.shape[0] > 0
    cdef float v
    with nogil:
        for i in prange(B, schedule="static", num_threads=num_threads):
            f = filled[i]
            for j in range(n):
                v = block[i, j] + add[j] if has_add else block[i, j]
                c = col_offset + j
                if f == k:
                    if not (v < val[i, k - 1] or (v == val[i, k - 1] and c < idx[i, k - 1])):
                        continue
                    m = k - 1
                else:
                    m = f
                    f = f + 1
                while m > 0 and (v < val[i, m - 1] or (v == val[i, m - 1] and c < idx[i, m - 1])):
                    val[i, m] = val[i, m - 1]
                    idx[i, m] = idx[i, m - 1]
                    m = m - 1
                val[i, m] = v
                idx[i, m] = c
            filled[i] = f


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
                      Py_ssize_t n) noexcept nogil:
    """Stable LSD radix sort of n (key, val) pairs by key, 8 bits a pass; passes in which every
    key has the same byte are skipped (distances in [0, 1] share their top byte)."""
    cdef Py_ssize_t count[256]
    cdef Py_ssize_t i, b, total, c
    cdef int shift
    cdef uint32_t* ks = key
    cdef int32_t* vs = val
    cdef uint32_t* kd = key_tmp
    cdef int32_t* vd = val_tmp
    cdef uint32_t* kx
    cdef int32_t* vx
    for shift in range(0, 32, 8):
        for b in range(256):
            count[b] = 0
        for i in range(n):
            count[(ks[i] >> shift) & 255] += 1
        if count[(ks[0] >> shift) & 255] == n:
            continue
        total = 0
        for b in range(256):
            c = count[b]
            count[b] = total
            total += c
        for i in range(n):
            b = (ks[i] >> shift) & 255
            kd[count[b]] = ks[i]
            vd[count[b]] = vs[i]
            count[b] += 1
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
                    if r >= col_begin and r < col_end and mark[r] != k + 1:
                        mark[r] = k + 1
                        n_out = n_out + 1
            out_len[k] = n_out
        free(mark)


def minsum_rows(const int64_t[::1] v_ptr, const int64_t[::1] v_idx, const double[::1] v_val,
                const int64_t[::1] t_ptr, const int64_t[::1] t_idx, const double[::1] t_val,
                const int64_t[::1] rows, int64_t col_begin, int64_t col_end,
                const int64_t[::1] out_ptr, int32_t[::1] out_col, float[::1] out_d,
                bint sort_rows, int num_threads):
    """Jaccard distances of the given rows of V against the columns [col_begin, col_end).

    V is given as CSR (v_*) and its transpose as CSR (t_*), both over N x N.  Row k of the
    output fills out[out_ptr[k] : out_ptr[k + 1]] (lengths from minsum_count): the columns it
    shares support with and d = 1 - S / (2 - S), clipped at 0, S = sum of minima; with
    sort_rows, ordered by distance (a stable radix sort on the float bits: non-negative floats
    order like their bit patterns; ties keep the deterministic accumulation order).
    """
    cdef Py_ssize_t nrows = rows.shape[0], N = t_ptr.shape[0] - 1, k, a, b
    cdef int64_t i, c, r, base, n_out, max_len = 0
    cdef double vi, vr, s
    cdef float f
    cdef double* acc
    cdef uint32_t* keys
    cdef uint32_t* keys_tmp
    cdef int32_t* cols_tmp
    for k in range(nrows):
        if out_ptr[k + 1] - out_ptr[k] > max_len:
            max_len = out_ptr[k + 1] - out_ptr[k]
    with nogil, parallel(num_threads=num_threads):
        acc = <double*>calloc(N, sizeof(double))
        keys = <uint32_t*>malloc((max_len + 1) * sizeof(uint32_t))
        keys_tmp = <uint32_t*>malloc((max_len + 1) * sizeof(uint32_t))
        cols_tmp = <int32_t*>malloc((max_len + 1) * sizeof(int32_t))
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
                    if acc[r] == 0.0:  # V holds no zeros, so acc > 0 once seen
                        out_col[base + n_out] = <int32_t>r
                        n_out = n_out + 1
                    acc[r] = acc[r] + (vi if vi < vr else vr)
            for a in range(n_out):
                r = out_col[base + a]
                s = acc[r]
                acc[r] = 0.0
                s = 1.0 - s / (2.0 - s)
                f = <float>(s if s > 0.0 else 0.0)
                if sort_rows:
                    memcpy(&keys[a], &f, 4)
                else:
                    out_d[base + a] = f
            if sort_rows and n_out > 1:
                _radix_sort(keys, &out_col[base], keys_tmp, cols_tmp, n_out)
            if sort_rows:
                for a in range(n_out):
                    memcpy(&out_d[base + a], &keys[a], 4)
        free(acc)
        free(keys)
        free(keys_tmp)
        free(cols_tmp)
