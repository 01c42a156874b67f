"""MATLAB files: savemat_v5 (scipy, with a fixed header) and a minimal MATLAB v7.3 (HDF5) writer
for cell arrays of numeric arrays, as in CUHK03's cuhk-03.mat.

MATLAB stores arrays column-major: an array of MATLAB shape (a, b, c) is an HDF5 dataset of shape
(c, b, a), which is why readers do `mat[ref][:].T`. Cells are datasets of object references into the
`#refs#` group; empty cells are the MATLAB_empty marker (a uint64 vector of the zero dimensions).
The file starts with the 512-byte MATLAB user block, so scipy.io.loadmat recognises it as v7.3
(and refuses it, as with the real file) while h5py reads it.
"""
from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
from scipy.io import savemat

HEADER_TEXT = ("MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015 "
               "HDF5 schema 1.00 .")
CLASSES = {np.dtype(np.uint8): "uint8", np.dtype(np.float64): "double", np.dtype(np.int32): "int32"}


V5_HEADER_TEXT = "MATLAB 5.0 MAT-file, Platform: posix, Created on: Thu Jan  1 00:00:00 2015"


def savemat_v5(path, variables: dict):
    """scipy.io.savemat with a fixed header text (scipy writes the current time there)."""
    buf = io.BytesIO()
    savemat(buf, variables)
    data = buf.getvalue()
    Path(path).write_bytes(V5_HEADER_TEXT.ljust(116).encode("ascii") + data[116:])


def _mat_header() -> bytes:
    head = HEADER_TEXT.ljust(116).encode("ascii") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    return head.ljust(512, b"\x00")


class MatV73Writer:
    """Usage: w = MatV73Writer(path); ref = w.array(x); w.cell('name', [[ref, ...], ...]); w.close()."""

    def __init__(self, path):
        self.path = Path(path)
        self.f = h5py.File(self.path, "w", userblock_size=512, libver="earliest", track_order=False)
        self.refs = self.f.create_group("#refs#")
        self.count = 0

    def _next_name(self) -> str:
        n, name = self.count, ""
        self.count += 1
        while True:
            name = chr(ord("a") + n % 26) + name
            n = n // 26 - 1
            if n < 0:
                return name

    def _dataset(self, group, name, data, mclass, **kw):
        ds = group.create_dataset(name, data=data, track_times=False, **kw)
        ds.attrs.create("MATLAB_class", np.bytes_(mclass))
        return ds

    def array(self, arr: np.ndarray, compress: bool = False):
        """Store a numeric array given in MATLAB's shape; returns its object reference."""
        arr = np.asarray(arr)
        if arr.size == 0:
            return self.empty()
        kw = {"compression": "gzip", "compression_opts": 4} if compress else {}
        data = np.ascontiguousarray(arr.T)
        ds = self._dataset(self.refs, self._next_name(), data, CLASSES[arr.dtype], **kw)
        return ds.ref

    def empty(self):
        ds = self._dataset(self.refs, self._next_name(), np.zeros(2, np.uint64), "double")
        ds.attrs.create("MATLAB_empty", np.uint8(1))
        return ds.ref

    def _cell_data(self, refs) -> np.ndarray:
        rows = len(refs)
        cols = len(refs[0]) if rows else 0
        data = np.empty((cols, rows), dtype=h5py.ref_dtype)  # HDF5 shape = MATLAB shape reversed
        for i, row in enumerate(refs):
            for j, r in enumerate(row):
                data[j, i] = r
        return data

    def cell_ref(self, refs):
        """A cell (MATLAB shape len(refs) x len(refs[0])) stored in #refs#; returns its reference."""
        return self._dataset(self.refs, self._next_name(), self._cell_data(refs), "cell").ref

    def cell(self, name: str, refs):
        """A top-level cell variable."""
        self._dataset(self.f, name, self._cell_data(refs), "cell")

    def close(self):
        self.f.close()
        with open(self.path, "r+b") as fh:
            fh.write(_mat_header())
