"""Build script: metadata lives in setup.cfg; this file adds the optional C module.

``glance_store_ng._native`` is built by cffi from ``native/build_native.py``.
When it cannot be built (no C compiler, no libssl headers), the install still
succeeds with a warning, and ``glance_store_ng.native`` uses the
pure-Python fallback. ``pip install -v .`` shows that warning.
"""

import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

_BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)

_WARNING = """
**********************************************************************
glance_store_ng: the native module was not built ({reason});
the pure-Python fallback will be used.
Install gcc and libssl-dev to build it (libxxhash-dev too for native XXH3),
then: pip install --force-reinstall .
**********************************************************************
"""


class OptionalBuildExt(build_ext):
    """``build_ext`` that turns a failed C build into a warning."""

    def run(self):
        try:
            super().run()
        except _BUILD_ERRORS as exc:
            self._give_up(exc, list(self.extensions))

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except _BUILD_ERRORS as exc:
            self._give_up(exc, [ext])

    def _give_up(self, exc, extensions):
        # Dropped extensions are neither copied in place nor listed as outputs.
        for ext in extensions:
            if ext in self.extensions:
                self.extensions.remove(ext)
        sys.stderr.write(_WARNING.format(reason=f"{type(exc).__name__}: {exc}"))


setup(
    cffi_modules=["native/build_native.py:ffi"],
    cmdclass={"build_ext": OptionalBuildExt},
)
