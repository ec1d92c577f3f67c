"""The benchmark run: every case through every implementation, each step in a fresh process.

:func:`run_bench` generates the images (:mod:`.cases`), then for each one runs
the baselines and, per implementation, an add, a get and a delete, each in its
own child process (``python -m glance_store_ng.bench SPEC``, see :mod:`.steps`)
so that its peak RSS is its own, as many rounds as asked (each measurement is
the median of its rounds, see :class:`.report.Measurement`). glance_store is
looked for only when asked to compare; then its driver for the measured backend
runs beside ours.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

from .._child import module_command
from ..config import configured_backends
from ..errors import ConfigError, InvalidArgument
from ..units import MiB
from .cases import CASES, GLANCE_STORE, NO_FSYNC, NO_MD5, OURS, make_image
from .report import Measurement

__all__ = ["run_bench", "run_child"]

BASELINES = (("hashlib", "hash md5"), ("hashlib", "hash md5+sha512"), ("read/write", "copy+fsync"))


def run_bench(
    *,
    size: int,
    files: list[str] = (),  # type: ignore[assignment]
    config: str | None = None,
    backend: str | None = None,
    workdir: str | None = None,
    compare: bool = True,
    baselines: bool = True,
    rounds: int = 1,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Measurement]:
    """Every case (``size`` bytes each, plus ``files``) through every implementation: the
    embedded file store in a temporary directory, or ``backend`` of the glance-api.conf
    ``config``; beside the bare baselines unless ``baselines`` is false, and glance_store's
    driver for the same backend where ``compare`` and glance_store is installed. Each step
    runs ``rounds`` times (round after round, so that a passing load weighs on every
    implementation alike); a measurement is the median of its rounds and keeps them all."""
    if rounds < 1:
        raise InvalidArgument(f"rounds must be 1 or more, not {rounds}")
    driver = _measured_driver(config, backend)
    impls = [OURS] + ([NO_FSYNC] if not config else []) + [NO_MD5]
    if compare and _comparable(driver, progress):
        impls.append(GLANCE_STORE)
    work = tempfile.mkdtemp(prefix="gsn-bench-", dir=workdir)
    try:
        datadir = os.path.join(work, "store")
        os.makedirs(datadir)
        cases: list[tuple[str, str]] = []
        for name, (zeros, run) in CASES.items():
            path = os.path.join(work, f"image-{len(cases)}")
            progress(f"generating the {name} image ({size / MiB:.0f} MiB)")
            make_image(path, size, zeros, run)
            cases.append((name, path))
        cases += [(os.path.basename(f), f) for f in files]
        base = {"datadir": datadir, "config": config, "backend": backend}
        figures: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        sizes = {name: os.path.getsize(path) for name, path in cases}
        for n in range(rounds):
            prefix = f"round {n + 1}/{rounds}: " if rounds > 1 else ""
            for name, path in cases:
                for impl, op in BASELINES if baselines else ():
                    progress(f"{prefix}{name}: {op} ({impl})")
                    spec = {**base, "operation": op, "implementation": impl, "path": path}
                    figures.setdefault((name, op, impl), []).append(run_child(spec))
                for impl in impls:
                    progress(f"{prefix}{name}: add ({impl})")
                    added = run_child(
                        {**base, "operation": "add", "implementation": impl, "path": path}
                    )
                    figures.setdefault((name, "add", impl), []).append(added)
                    spec = {**base, "implementation": impl, "location": added["location"]}
                    try:
                        if impl != NO_MD5:  # the same bytes as ours: the same get
                            progress(f"{prefix}{name}: get ({impl})")
                            got = run_child({**spec, "operation": "get"})
                            figures.setdefault((name, "get", impl), []).append(got)
                    finally:  # a configured backend must not keep benchmark images
                        run_child({**spec, "operation": "delete"})
        return [
            Measurement.of_rounds(name, op, impl, sizes[name], each)
            for (name, op, impl), each in figures.items()
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the step ``spec`` in a fresh Python process; return its figures (JSON).

    Stopped meanwhile (Ctrl-C, SIGTERM), it interrupts the step as Ctrl-C would, so an add
    in progress cleans up, and waits for it before going on."""
    child = subprocess.Popen(
        module_command("glance_store_ng.bench", json.dumps(spec)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = child.communicate()
    except BaseException as exc:
        if type(exc) is not KeyboardInterrupt:  # a terminal's Ctrl-C reached the child too
            child.send_signal(signal.SIGINT)
        try:
            child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
        raise
    if child.returncode != 0:
        raise RuntimeError(
            f"benchmark step {spec['implementation']} {spec['operation']} failed:\n{err}"
        )
    return json.loads(out)


def _comparable(driver: str, progress: Callable[[str], None]) -> bool:
    """Whether glance_store is installed and has a driver like ``driver`` (say so if not)."""
    from .reference import DRIVERS, glance_store_available

    if not glance_store_available():
        return False
    if driver not in DRIVERS:
        progress("glance_store has no driver like this backend's: not compared")
        return False
    return True


def _measured_driver(config: str | None, backend: str | None) -> str:
    """The driver of the backend measured (the embedded store is a file store); a
    ConfigError names an unknown backend before anything runs."""
    if not config:
        return "file"
    backends, default = configured_backends(config)
    name = backend or default
    if name not in backends:
        raise ConfigError(f"no backend {name!r}; enabled backends: {', '.join(backends)}")
    return backends[name].driver
