"""Builds 3C's HDC kernels (Cython, OpenMP) at install time; importing ccc.hdc without them is
an error, never a silent slow path. The original compiled the same loops without OpenMP flags."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension("ccc.hdc._hdc", ["ccc/hdc/_hdc.pyx"], include_dirs=[np.get_include()],
              extra_compile_args=["-O3", "-fopenmp"], extra_link_args=["-fopenmp"]),
]
setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
