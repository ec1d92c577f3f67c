"""cffi builder for ``glance_store_ng._native`` (out-of-line API mode).

setup.py names this file in ``cffi_modules``; to build by hand, from the project root::

    python native/build_native.py      # writes glance_store_ng/_native.*.so

The cdef is the marked block of ``gsn_native.h``, so the C declarations live in
one place. The package version is compiled in (``gsn_version()``) so that
``glance_store_ng.native`` can refuse a module left over from another version.
Links the system's OpenSSL libcrypto and libxxhash (Debian: libssl-dev,
libxxhash-dev).
"""

import os
import re
import shutil

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)


def _read(*parts):
    with open(os.path.join(_ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _version():
    match = re.search(
        r"""^__version__\s*=\s*["']([^"']+)["']""", _read("glance_store_ng", "_version.py"), re.M
    )
    if match is None:
        raise RuntimeError("no __version__ in glance_store_ng/_version.py")
    return match.group(1)


def _cdef():
    header = _read("native", "gsn_native.h")
    match = re.search(r"/\* CDEF BEGIN \*/(.*)/\* CDEF END \*/", header, re.S)
    if match is None:
        raise RuntimeError("native/gsn_native.h lacks the CDEF BEGIN/END markers")
    return match.group(1)


def _rel(path):
    # setuptools runs from the project root and prefers relative sources;
    # ffi.compile() (the __main__ path) compiles from its tmpdir, so absolute.
    return os.path.abspath(path) if __name__ == "__main__" else os.path.relpath(path)


ffi = FFI()
ffi.cdef(_cdef())
ffi.set_source(
    "glance_store_ng._native",
    '#include "gsn_native.h"',
    sources=[_rel(os.path.join(_HERE, name)) for name in ("gsn_native.c", "gsn_hashpipe.c")],
    include_dirs=[_rel(_HERE)],
    depends=[
        _rel(os.path.join(_HERE, "gsn_native.h")),
        _rel(os.path.join(_ROOT, "glance_store_ng", "_version.py")),
    ],
    libraries=["crypto", "xxhash"],
    define_macros=[("GSN_VERSION", f'"{_version()}"')],
    extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wextra", "-pthread"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    built = ffi.compile(tmpdir=os.path.join(_ROOT, "build", "cffi"), verbose=True)
    print("copied to", shutil.copy(built, os.path.join(_ROOT, "glance_store_ng")))
