"""cffi builder for ``glance_store_ng._native`` (out-of-line API mode).

setup.py names this file in ``cffi_modules``; to build by hand, from the project root::

    python native/build_native.py [DIR]   # writes glance_store_ng/_native.*.so (or into DIR)

The cdef is the marked block of ``gsn_native.h``, so the C declarations live in
one place. The package version is compiled in (``gsn_version()``) so that
``glance_store_ng.native`` can refuse a module left over from another version.
Links the system's OpenSSL libcrypto (Debian: libssl-dev) and, when the compiler
finds it, libxxhash (Debian: libxxhash-dev); without libxxhash the module is
built all the same, and XXH3 goes through the ``xxhash`` package instead.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

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


_XXHASH_PROBE = """
#include <xxhash.h>
int main(void) { XXH3_state_t *s = XXH3_createState(); XXH3_freeState(s); return 0; }
"""


def _links(source, library):
    """True when the C compiler builds ``source`` linked with ``library`` (a probe)."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        try:
            done = subprocess.run(
                [*compiler, path, "-o", os.path.join(tmp, "probe"), f"-l{library}"],
                capture_output=True,
            )
        except OSError:
            return False
    return done.returncode == 0


# GSN_NATIVE_XXHASH=0 builds without libxxhash even where it is installed (to test that build).
HAVE_XXHASH = os.environ.get("GSN_NATIVE_XXHASH") != "0" and _links(_XXHASH_PROBE, "xxhash")
if not HAVE_XXHASH:
    sys.stderr.write(
        "glance_store_ng: building the C module without libxxhash (its header or library "
        "was not found, or GSN_NATIVE_XXHASH=0): XXH3 will go through the xxhash package; "
        "apt-get install libxxhash-dev, then pip install --force-reinstall ., for native XXH3\n"
    )

ffi = FFI()
ffi.cdef(_cdef())
ffi.set_source(
    "glance_store_ng._native",
    '#include "gsn_native.h"',
    sources=[
        _rel(os.path.join(_HERE, name))
        for name in ("gsn_native.c", "gsn_hashpipe.c", "gsn_crc32c.c")
    ],
    include_dirs=[_rel(_HERE)],
    depends=[
        _rel(os.path.join(_HERE, "gsn_native.h")),
        _rel(os.path.join(_ROOT, "glance_store_ng", "_version.py")),
    ],
    libraries=["crypto", "xxhash"] if HAVE_XXHASH else ["crypto"],
    define_macros=[("GSN_VERSION", f'"{_version()}"')]
    + ([("GSN_HAVE_XXHASH", "1")] if HAVE_XXHASH else []),
    extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wextra", "-pthread"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    # python native/build_native.py [DIR]: build, then copy the module into DIR
    # (default: the source tree's glance_store_ng/).
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(_ROOT, "glance_store_ng")
    built = ffi.compile(tmpdir=os.path.join(_ROOT, "build", "cffi"), verbose=True)
    print("copied to", shutil.copy(built, target))
