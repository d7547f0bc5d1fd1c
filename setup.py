"""Build the compiled kernel `care_graph._matcher`.

Everything else about the package lives in pyproject.toml. Set ``CARE_GRAPH_CYTHON_DEBUG=1`` to
build with line tracing (for coverage and line profilers) and an annotated HTML report beside the
.pyx; leave it unset for the optimised build.
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CARE_GRAPH_CYTHON_DEBUG", "") not in ("", "0")

# The one place where compiler directives are set.
DIRECTIVES = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "embedsignature": True,
    "linetrace": DEBUG,
    "profile": DEBUG,
}

MACROS = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    MACROS += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

extensions = [
    Extension(
        "care_graph._matcher",
        ["src/care_graph/_matcher.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=MACROS,
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES, annotate=DEBUG))
