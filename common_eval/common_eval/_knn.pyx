# distutils: language = c++
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""Kernels of the sparse k-reciprocal encoding (OpenMP over rows, deterministic per row).

* ``topk_merge``: running k smallest entries of each row over blocks of columns, ordered
  by (value, column index).
* ``pair_dots``: x_i . x_j for every stored (i, j) of a CSR pattern (BLAS sdot).
* ``minsum_rows``: for rows of V, S_ir = sum_c min(V_ic, V_rc) over the columns they share,
  through the transposed pattern, emitted as d = 1 - S / (2 - S) (clipped at 0), one CSR
  segment per row, optionally sorted by (d, column).
"""
from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memmove
from libcpp.algorithm cimport sort
from scipy.linalg.cython_blas cimport sdot

cdef uint64_t LOW32 = 0xFFFFFFFF


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


def minsum_rows(const int64_t[::1] v_ptr, const int64_t[::1] v_idx, const double[::1] v_val,
                const int64_t[::1] t_ptr, const int64_t[::1] t_idx, const double[::1] t_val,
                const int64_t[::1] rows, int64_t col_begin, int64_t col_end,
                const int64_t[::1] seg_ptr, int32_t[::1] out_col, float[::1] out_d,
                int64_t[::1] out_len, bint sort_rows, int num_threads):
    """Jaccard distances of the given rows of V against the columns [col_begin, col_end).

    V is given as CSR (v_*) and its transpose as CSR (t_*), both over N x N.  Row k of the
    output is written at out[seg_ptr[k] : seg_ptr[k] + out_len[k]]; seg_ptr must leave room
    for every column the row can reach (the sum of the column counts of its support).
    Sorting packs (distance bits, column) into one 64-bit key: non-negative floats order
    like their bit patterns.
    """
    cdef Py_ssize_t nrows = rows.shape[0], N = t_ptr.shape[0] - 1, k, a, b
    cdef int64_t i, c, r, base, n_out
    cdef double vi, vr, s
    cdef float f
    cdef uint32_t bits
    cdef double* acc
    cdef uint64_t* keys
    cdef int64_t max_seg = 0
    for k in range(nrows):
        if seg_ptr[k + 1] - seg_ptr[k] > max_seg:
            max_seg = seg_ptr[k + 1] - seg_ptr[k]
    with nogil, parallel(num_threads=num_threads):
        acc = <double*>calloc(N, sizeof(double))
        keys = <uint64_t*>malloc((max_seg + 1) * sizeof(uint64_t))
        for k in prange(nrows, schedule="dynamic", chunksize=16):
            i = rows[k]
            base = seg_ptr[k]
            n_out = 0
            for a in range(v_ptr[i], v_ptr[i + 1]):
                c = v_idx[a]
                vi = v_val[a]
                for b in range(t_ptr[c], t_ptr[c + 1]):
                    r = t_idx[b]
                    if r < col_begin or r >= col_end:
                        continue
                    vr = t_val[b]
                    # branch-free first-touch bookkeeping (V holds no zeros, so acc > 0 once seen)
                    out_col[base + n_out] = <int32_t>r
                    n_out = n_out + (acc[r] == 0.0)
                    acc[r] = acc[r] + (vi if vi < vr else vr)
            for a in range(n_out):
                r = out_col[base + a]
                s = acc[r]
                acc[r] = 0.0
                s = 1.0 - s / (2.0 - s)
                f = <float>(s if s > 0.0 else 0.0)
                if sort_rows:
                    memcpy(&bits, &f, 4)
                    keys[a] = ((<uint64_t>bits) << 32) | <uint64_t>r
                else:
                    out_d[base + a] = f
            if sort_rows:
                sort(keys, keys + n_out)
                for a in range(n_out):
                    out_col[base + a] = <int32_t>(keys[a] & LOW32)
                    bits = <uint32_t>(keys[a] >> 32)
                    memcpy(&out_d[base + a], &bits, 4)
            out_len[k] = n_out
        free(acc)
        free(keys)


def compact(const int64_t[::1] seg_ptr, const int64_t[::1] out_len, int32_t[::1] out_col,
            float[::1] out_d):
    """Moves the row segments of minsum_rows together; returns the number of entries."""
    cdef Py_ssize_t k, n = out_len.shape[0]
    cdef int64_t w = 0
    with nogil:
        for k in range(n):
            if w != seg_ptr[k] and out_len[k] > 0:
                memmove(&out_col[w], &out_col[seg_ptr[k]], out_len[k] * sizeof(int32_t))
                memmove(&out_d[w], &out_d[seg_ptr[k]], out_len[k] * sizeof(float))
            w += out_len[k]
    return w
