"""Builds the OpenMP Cython kernels of common_eval at install time (never lazily at import)."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

openmp = {"extra_compile_args": ["-O3", "-fopenmp"], "extra_link_args": ["-fopenmp"]}
extensions = [
    Extension("common_eval._rank", ["common_eval/_rank.pyx"],
              include_dirs=[np.get_include(), "common_eval"], **openmp),
    Extension("common_eval._knn", ["common_eval/_knn.pyx"], include_dirs=[np.get_include()],
              **openmp),
]
setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
