"""The ``glance-store-ng`` command: add, get, inspect and delete images from a shell.

With no ``--config`` it uses an embedded default: a filesystem store under
``$XDG_DATA_HOME/glance-store-ng/images`` (``~/.local/share/...``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from . import native
from ._version import __version__
from .config import Stores, open_store
from .errors import ConfigError, ImageRejected, InvalidArgument, StoreError
from .locations import mask_uri
from .pipeline import ZERO_BLOCK_SIZE
from .registry import installed_drivers, load_driver
from .sparse import SparseWriter
from .store import Orphan, Store
from .units import parse_size
from .verify import Expected

PROG = "glance-store-ng"


def default_datadir() -> str:
    """Where the embedded default store keeps images."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "glance-store-ng", "images")


def _config_path(args: argparse.Namespace) -> str | None:
    """--config, else $GLANCE_STORE_NG_CONFIG, else None (the embedded store)."""
    return args.config or os.environ.get("GLANCE_STORE_NG_CONFIG") or None


def _open_stores(args: argparse.Namespace) -> Stores:
    config = _config_path(args)
    if config:
        return Stores.from_config(config)
    store = open_store("file", {"filesystem_store_datadir": default_datadir()}, backend="default")
    return Stores({"default": store}, "default")


# -- progress -------------------------------------------------------------------------------


class _Progress:
    """A one-line progress display on stderr, drawn at most every 0.2 s."""

    def __init__(self, total: int | None, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = total or None, label, enabled
        self.done = 0
        self.started = self._drawn = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.2:
            self._drawn = now
            rate = self.done / max(now - self.started, 1e-9) / 1e6
            if self.total:
                pct = 100 * self.done / self.total
                text = (
                    f"{self.label}: {pct:5.1f}% {self.done / 1e6:,.0f}/{self.total / 1e6:,.0f} MB"
                )
            else:
                text = f"{self.label}: {self.done / 1e6:,.0f} MB"
            sys.stderr.write(f"\r{text} {rate:,.0f} MB/s ")
            sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self._drawn != self.started:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


class _CountingReader:
    """A binary file that reports progress as it is read (keeps ``readinto``: no copies)."""

    def __init__(self, raw: BinaryIO, progress: _Progress) -> None:
        self._raw, self._progress = raw, progress

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer) or 0
        self._progress.advance(count)
        return count


# -- commands -------------------------------------------------------------------------------


def _print(args: argparse.Namespace, data: dict[str, Any], lines: Iterable[str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        for line in lines:
            print(line)


def cmd_add(args: argparse.Namespace, stores: Stores) -> int:
    image_id = str(uuid.uuid4()) if args.id is None else args.id
    if args.file == "-":
        source, size = sys.stdin.buffer, None
    else:
        try:
            source = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InvalidArgument(f"cannot read {args.file!r}: {exc.strerror}") from None
        size = os.fstat(source.fileno()).st_size or None
    progress = _Progress(size, f"adding {image_id}", args.progress)
    try:
        result = stores.add(
            image_id,
            _CountingReader(source, progress),
            size,
            args.hashing_algo,
            args.backend,
            checksum=args.checksum,
            disk_format=args.disk_format,
            inspect=args.inspect,
        )
    finally:
        progress.finish()
        if source is not sys.stdin.buffer:
            source.close()
    took = f"{result.seconds:.2f} s" if result.seconds >= 1 else f"{result.seconds * 1000:.1f} ms"
    if result.size >= 1_000_000 and result.seconds > 0:  # a rate says nothing of tiny images
        took += f"  ({result.size / result.seconds / 1e6:,.0f} MB/s)"
    _print(
        args,
        {"image_id": image_id, **dataclasses.asdict(result), "hashing": native.IMPLEMENTATION},
        [
            f"image id:   {image_id}",
            f"location:   {result.location}",
            f"size:       {result.size}",
            f"checksum:   {result.checksum}  (md5)"
            if result.checksum
            else "checksum:   not computed (--no-checksum)",
            f"multihash:  {result.multihash}  ({result.hash_algo})",
            f"zero bytes: {result.zero_bytes}  (left as holes, not written)",
            _verdict_line(result.metadata),
            f"time:       {took}",
            f"hashing:    {native.IMPLEMENTATION}",
        ],
    )
    _advise_if_fallback()
    return 0


def _verdict_line(metadata: dict[str, Any]) -> str:
    """What the add's format inspection found, in one line."""
    if "inspection_rejected" in metadata:
        return f"inspection: would be rejected (detect only): {metadata['inspection_rejected']}"
    if "disk_format_detected" in metadata:
        return (
            f"inspection: {metadata['disk_format_detected']}, virtual size "
            f"{metadata['virtual_size']}, safe"
        )
    return "inspection: off"


def _advise_if_fallback() -> None:
    """Say once, on stderr, what the pure-Python fallback costs and how to leave it."""
    if native.IMPLEMENTATION != "native":
        advice = native.FALLBACK_ADVICE.format(reason=native.NATIVE_UNAVAILABLE_REASON)
        print(f"{PROG}: note: {advice}", file=sys.stderr)


def _write_sparse(fd: int, chunks: Iterable[bytes], progress: _Progress) -> None:
    """Write ``chunks`` to a regular file, leaving long zero runs as holes (:mod:`.sparse`)."""
    sparse, position = SparseWriter(fd), 0
    for chunk in chunks:
        sparse.write(position, chunk, native.zero_extents(chunk, ZERO_BLOCK_SIZE))
        position += len(chunk)
        progress.advance(len(chunk))
    os.ftruncate(fd, position)
    sparse.finish()


def _write_plain(out: BinaryIO, chunks: Iterable[bytes], progress: _Progress) -> None:
    for chunk in chunks:
        out.write(chunk)
        progress.advance(len(chunk))
    out.flush()


def _write_new_file(path: str, chunks: Iterable[bytes], progress: _Progress) -> None:
    """Write ``path`` as a sparse file through a private temporary name, then rename it."""
    fd, temp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or "."
    )
    try:
        try:
            _write_sparse(fd, chunks, progress)
        finally:
            os.close(fd)
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cmd_get(args: argparse.Namespace, stores: Stores) -> int:
    if not args.output and sys.stdout.isatty():
        raise InvalidArgument(
            "refusing to write image bytes to a terminal: use -o FILE or redirect"
        )
    if args.output:
        _check_output(args.output)
    expected = _expected(args)
    with stores.get(args.location, args.offset, args.length, args.backend, expected) as reader:
        if args.length is not None and reader.size < args.length:
            print(
                f"{PROG}: note: the image holds {reader.size} bytes from offset {args.offset}, "
                f"fewer than --length {args.length}; reading those",
                file=sys.stderr,
            )
        progress = _Progress(reader.size, "reading", args.progress)
        try:
            if not args.output:
                _write_plain(sys.stdout.buffer, reader, progress)
            elif os.path.lexists(args.output) and not (
                os.path.isfile(args.output) and not os.path.islink(args.output)
            ):
                # A device, a pipe or a symlink: write through it, never replace it.
                with open(args.output, "wb") as out:
                    _write_plain(out, reader, progress)
            else:
                _write_new_file(args.output, reader, progress)
        finally:
            progress.finish()
    return 0


def _expected(args: argparse.Namespace) -> Expected | None:
    """What ``--checksum``, ``--multihash`` and ``--size`` say the image must be, if any."""
    if args.checksum is None and args.multihash is None and args.size is None:
        return None
    return Expected(args.checksum, args.multihash, args.hashing_algo, args.size)


def cmd_verify(args: argparse.Namespace, stores: Stores) -> int:
    expected = _expected(args)
    if expected is None:
        raise InvalidArgument("verify: give --checksum MD5, --multihash HEX or --size BYTES")
    started = time.monotonic()
    with stores.get(args.location, backend=args.backend, verify=expected) as reader:
        progress = _Progress(reader.size, "verifying", args.progress)
        try:
            for piece in reader:
                progress.advance(len(piece))
        finally:
            progress.finish()
    seconds = time.monotonic() - started
    checked = [
        name
        for name, value in (
            ("size", expected.size),
            ("checksum", expected.checksum),
            (f"multihash ({expected.hash_algo})", expected.multihash),
        )
        if value is not None
    ]
    _print(
        args,
        {"location": mask_uri(args.location), "size": reader.size, "verified": checked,
         "seconds": round(seconds, 3)},
        [f"{mask_uri(args.location)}: {reader.size} bytes, {', '.join(checked)} as expected "
         f"({seconds:.2f} s)"],
    )  # fmt: skip
    return 0


def _check_output(path: str) -> None:
    """Refuse an output path that cannot be written, before reading anything."""
    if os.path.isdir(path):
        raise InvalidArgument(f"-o {path} is a directory: give a file path such as {path}/image")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise InvalidArgument(f"cannot write {path}: there is no directory {folder}")


def cmd_inspect(args: argparse.Namespace, stores: Stores | None) -> int:
    """Inspect a file (or stdin) as an add would, storing nothing: 0 safe, 1 rejected."""
    from .inspection import Inspection

    name = "stdin" if args.file == "-" else args.file
    inspection = Inspection(args.disk_format, label=name)
    with contextlib.ExitStack() as stack:
        if args.file == "-":
            source: BinaryIO = sys.stdin.buffer
            size = None
        else:
            source = stack.enter_context(open(args.file, "rb"))
            size = os.fstat(source.fileno()).st_size
        try:
            while piece := source.read(1 << 20):
                inspection.feed(piece)
                if inspection.decided and size is not None:
                    break  # the rest cannot change the verdict, and the size is known
            verdict = inspection.finish(size)
        except ImageRejected as exc:
            _print(
                args,
                {"file": name, "safe": False, "reason": str(exc),
                 "bytes_read": inspection.consumed},
                [f"{exc}", "verdict: REJECTED"],
            )  # fmt: skip
            return 1
    _print(
        args,
        {"file": name, "safe": True, **verdict.as_metadata(), "bytes_read": inspection.consumed},
        [f"file:         {name}", f"format:       {verdict.format}",
         f"virtual size: {verdict.virtual_size}",
         f"checks:       {', '.join(verdict.checks) or 'none apply'} (passed)",
         "verdict:      safe"],
    )  # fmt: skip
    return 0


def cmd_info(args: argparse.Namespace, stores: Stores) -> int:
    store = stores.store_for(args.location, args.backend)
    size = store.get_size(args.location)
    _print(
        args,
        {"location": mask_uri(args.location), "size": size, "backend": store.backend},
        [f"location: {mask_uri(args.location)}", f"backend:  {store.backend}", f"size:     {size}"],
    )
    return 0


def cmd_delete(args: argparse.Namespace, stores: Stores) -> int:
    stores.delete(args.location, args.backend)
    _print(args, {"deleted": mask_uri(args.location)}, [f"deleted {mask_uri(args.location)}"])
    return 0


def cmd_gc(args: argparse.Namespace, stores: Stores) -> int:
    """Remove every orphan it can; one that cannot go (still in use, say) is reported with
    its reason and the others are still removed. Exit 1 if any could not be removed.
    Younger orphans are counted and left alone (a running add may own them)."""
    names = [args.backend] if args.backend else list(stores)
    found: list[tuple[str, Orphan]] = []
    younger = 0
    for name in names:
        try:  # every orphan, to count the younger ones too
            every = stores[name].find_orphans(0.0)
        except StoreError:  # a running add's upload that cannot be listed: not counted
            every = stores[name].find_orphans(args.older_than)
        old = [orphan for orphan in every if orphan.age >= args.older_than]
        younger += len(every) - len(old)
        found += [(name, orphan) for orphan in old]
    results: list[tuple[str, Orphan, str | None]] = []
    for name, orphan in found:
        error = None
        if not args.dry_run:
            try:
                stores[name].remove_orphan(orphan)
            except StoreError as exc:
                error = str(exc)
        results.append((name, orphan, error))
    failed = sum(1 for *_, error in results if error)
    verb = "would remove" if args.dry_run else "removed"
    done = len(results) - failed
    if not results:
        summary = "no orphans to remove"
    elif args.dry_run:
        summary = f"{_count(done, 'orphan')} would be removed"
    else:
        summary = f"{_count(done, 'orphan')} removed"
    if failed:
        summary += f"; {failed} could not be removed"
    if younger:
        summary += (
            f"; {_count(younger, 'younger orphan')} left alone (idle for less than "
            f"{args.older_than:g} s: an add may still be writing it; --older-than to change)"
        )
    _print(
        args,
        {
            "dry_run": args.dry_run,
            "orphans": [{"backend": n, **dataclasses.asdict(o), "error": e} for n, o, e in results],
            "younger_left_alone": younger,
        },
        [
            f"could not remove {o.name} from {n}: {e}"
            if e
            else f"{verb} {o.name} ({o.size} bytes, {o.age / 3600:.1f} h old) from {n}"
            for n, o, e in results
        ]
        + [summary],
    )
    return 1 if failed else 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _describe_driver(name: str) -> dict[str, Any]:
    try:
        driver: type[Store] = load_driver(name)
    except ConfigError as exc:
        return {"name": name, "error": str(exc)}
    return {
        "name": name,
        "class": f"{driver.__module__}.{driver.__qualname__}",
        "schemes": list(driver.schemes),
        "options": [
            {
                "name": o.name,
                "type": o.type,
                "default": o.default,
                "required": o.required,
                "secret": o.secret,
                "help": o.help,
            }
            for o in driver.all_options()
        ],
    }


def cmd_drivers(args: argparse.Namespace, stores: Stores | None) -> int:
    drivers = [_describe_driver(name) for name in installed_drivers()]
    lines = [f"hashing and zero detection: {native.IMPLEMENTATION}", ""]
    for info in drivers:
        if "error" in info:
            lines += [f"{info['name']}: NOT LOADABLE: {info['error']}", ""]
            continue
        lines.append(f"{info['name']}  ({info['class']}; schemes: {', '.join(info['schemes'])})")
        for o in info["options"]:
            default = "***" if o["secret"] and o["default"] else o["default"]
            flag = " (required)" if o["required"] else ""
            flag += " (secret)" if o["secret"] else ""
            lines.append(f"    {o['name']} [{o['type']}] = {default!r}{flag}: {o['help']}")
        lines.append("")
    if stores is not None:
        lines.append("configured backends:")
        for name, store in stores.items():
            caps = dataclasses.asdict(store.capabilities)
            shown = ", ".join(f"{k}={v}" for k, v in caps.items())
            mark = " (default)" if name == stores.default_backend else ""
            lines.append(f"    {name}{mark}: {type(store).__name__}; {shown}")
    data = {
        "implementation": native.IMPLEMENTATION,
        "drivers": drivers,
        "backends": {
            name: dataclasses.asdict(store.capabilities) for name, store in (stores or {}).items()
        },
    }
    _print(args, data, lines)
    return 0


def cmd_bench(args: argparse.Namespace, stores: Stores | None) -> int:
    from . import bench
    from .bench import machine

    def say(line: str) -> None:
        if not args.json:
            print(f"... {line}", file=sys.stderr)

    if args.plot:
        bench.check_plotting()  # before the long run, not after it
    if warning := machine.load_warning():
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    config = _config_path(args)
    results = bench.run_bench(
        size=bench.parse_size(args.size),
        files=args.file,
        config=config,
        backend=args.backend,
        workdir=args.workdir,
        compare=not args.no_compare,
        baselines=not args.no_baselines,
        rounds=args.rounds,
        progress=say,
    )
    if args.json:
        ratios = [
            {"case": case, "operation": op, "implementation": impl, "ratio": value}
            for (case, op, impl), value in bench.ratios(results).items()
        ]
        report = {
            "implementation": native.IMPLEMENTATION,
            "machine": {"cores": machine.cores(), "cpu_model": machine.cpu_model()},
            "rounds": args.rounds,
            "results": [m.as_json() for m in results],
            "ratios": ratios,
        }
        print(json.dumps(report, indent=2))
    else:
        print(f"hashing and zero detection: {native.IMPLEMENTATION}")
        print(bench.format_table(results))
    _advise_if_fallback()
    if args.plot:
        where = f"backend {args.backend or '(default)'} of {config}" if config else None
        bench.plot(results, args.plot, store=where)
    return 0


def _positive(text: str) -> int:
    """argparse type: an integer of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


# -- parser ---------------------------------------------------------------------------------


def _add_global_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """--config, --backend, --json and --no-progress (with ``suppress``: no defaults)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default(None),
        help="a glance-api.conf-style file declaring the backends "
        "(default: $GLANCE_STORE_NG_CONFIG, else the embedded filesystem store)",
    )
    parser.add_argument(
        "--backend",
        metavar="NAME",
        default=default(None),
        help="the backend to use (default: the default one)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print results as JSON"
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=default(True),
        help="no progress line (it is shown only when stderr is a terminal)",
    )


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Store, read and delete virtual-machine images in a filesystem, S3, Swift or RBD "
            "store. Without --config, images go to an embedded filesystem store under "
            f"{default_datadir()}."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser)
    # The same options after the command too (glance-store-ng add disk.raw --json): there
    # they default to SUPPRESS, so they only override what was given before the command.
    anywhere = argparse.ArgumentParser(add_help=False)
    _add_global_options(anywhere, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = sub.add_parser(
        "add", parents=[anywhere], help="store an image file; prints its location and checksums"
    )
    add.add_argument("file", metavar="FILE", help="the image file ('-' reads standard input)")
    add.add_argument("--id", help="the image id (default: a new UUID)")
    add.add_argument(
        "--disk-format", metavar="FORMAT",
        help="what the image is (raw, qcow2...): with inspection, other data is refused",
    )  # fmt: skip
    add.add_argument(
        "--inspect", choices=("enforce", "detect", "off"),
        help="format inspection (default: the store's image_inspection, auto: enforce when "
        "the inspect extra is installed)",
    )  # fmt: skip
    add.add_argument(
        "--hashing-algo",
        default="sha512",
        help="the multihash algorithm: any hashlib one, xxh3_64 or xxh3_128 (default: sha512)",
    )
    add.add_argument(
        "--no-checksum",
        dest="checksum",
        action="store_false",
        help="skip the md5 (Glance's legacy checksum), a core's worth of hashing; "
        "Swift still computes it to check its transfers",
    )
    add.set_defaults(func=cmd_add)

    expectations = argparse.ArgumentParser(add_help=False)
    expected = expectations.add_argument_group(
        "verify on read",
        "check the whole image as it is read; a mismatch exits 1 (get: "
        "after the bytes were written; -o FILE then leaves no file, unless FILE was a device "
        "or a link written through)",
    )
    expected.add_argument("--checksum", metavar="MD5", help="its md5 (Glance's checksum)")
    expected.add_argument(
        "--multihash", metavar="HEX", help="its multihash (Glance's os_hash_value)"
    )
    expected.add_argument(
        "--hashing-algo",
        default="sha512",
        metavar="ALGO",
        help="the multihash's algorithm (Glance's os_hash_algo; default: sha512)",
    )
    expected.add_argument("--size", type=int, metavar="BYTES", help="its size in bytes")

    get = sub.add_parser(
        "get",
        parents=[anywhere, expectations],
        help="read an image to a file or standard output",
    )
    get.add_argument("location", metavar="LOCATION")
    get.add_argument("-o", "--output", metavar="FILE", help="write here (sparse where zero)")
    get.add_argument(
        "--offset", type=_size, default=0, help="first byte to read: 4096, 1K, 2M... (default 0)"
    )
    get.add_argument(
        "--length", type=_size, default=None, help="bytes to read: 512, 1M... (default: to the end)"
    )
    get.set_defaults(func=cmd_get)

    verify = sub.add_parser(
        "verify",
        parents=[anywhere, expectations],
        help="read a whole image and check it against its recorded checksums; "
        "exits 1 on a mismatch",
    )
    verify.add_argument("location", metavar="LOCATION")
    verify.set_defaults(func=cmd_verify)

    inspect = sub.add_parser(
        "inspect",
        parents=[anywhere],
        help="tell an image file's format and virtual size and whether it is safe, storing "
        "nothing; exits 1 when it is rejected (needs the inspect extra)",
        description=(
            "Inspects FILE (- for standard input) with oslo.utils' format inspector, as Glance "
            "does: the format (raw, qcow2, vmdk, vhd, vhdx, vdi, qed, iso, gpt, luks), the "
            "virtual size, and the safety checks (backing file, data file, VMDK extents, "
            "the MBR's partition entries...). Exits 1 when the image fails a check, holds "
            "two formats at once, or is not --disk-format. Reads a file only as far as the "
            "verdict needs."
        ),
    )
    inspect.add_argument("file", metavar="FILE", help="the image file, or - for stdin")
    inspect.add_argument(
        "--disk-format", metavar="FORMAT",
        help="what the image is declared to be (raw accepts a partitioned disk too)",
    )  # fmt: skip
    inspect.set_defaults(func=cmd_inspect)

    info = sub.add_parser("info", parents=[anywhere], help="show an image's size and backend")
    info.add_argument("location", metavar="LOCATION")
    info.set_defaults(func=cmd_info)

    delete = sub.add_parser("delete", parents=[anywhere], help="delete an image")
    delete.add_argument("location", metavar="LOCATION")
    delete.set_defaults(func=cmd_delete)

    drivers = sub.add_parser(
        "drivers",
        parents=[anywhere],
        help="list installed drivers and their options (with --config: the backends too)",
    )
    drivers.set_defaults(func=cmd_drivers)

    gc = sub.add_parser(
        "gc",
        parents=[anywhere],
        help="remove what killed adds left behind (file temp files, S3 multipart uploads, "
        "Swift segments, unfinished RBD images)",
    )
    gc.add_argument(
        "--older-than", type=float, default=3600.0, metavar="SECONDS",
        help="only what made no progress for this long, so running adds are left alone "
        "(default 3600)",
    )  # fmt: skip
    gc.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    gc.set_defaults(func=cmd_gc)

    bench = sub.add_parser(
        "bench",
        parents=[anywhere],
        help="measure add and get against the store, beside baselines and glance_store",
        description=(
            "Adds generated images (random; 75% zero 4 KiB blocks in runs; 75% zero scattered "
            "one by one; plus any FILE you give) to the store and reads them back, each step in "
            "a fresh process; adds once more with xxh3_128 and no md5 (add --no-checksum), "
            "what a frontend without Glance's legacy checksum pays. Prints MB/s, CPU seconds, "
            "peak RSS growth and the storage allocated, beside hashlib md5+sha512 and a plain "
            "copy, and glance_store's driver for the same backend and options where "
            "glance_store is installed, with our ratio to it. Warns when the machine is "
            "busy (its load average over half its cores): figures swing then."
        ),
    )
    bench.add_argument("file", nargs="*", metavar="FILE", help="extra images to measure")
    bench.add_argument("--size", default="1G", help="size of the generated images (default 1G)")
    bench.add_argument("--workdir", metavar="DIR", help="where to put generated images (tmp)")
    bench.add_argument(
        "--plot", metavar="PNG",
        help="also draw a chart: MB/s per case, a panel per operation, ours beside "
        "glance_store and the baselines, our ratio written on each pair (needs matplotlib: "
        "the bench extra)",
    )  # fmt: skip
    bench.add_argument(
        "--rounds", type=_positive, default=1, metavar="N",
        help="measure every step N times; the table and chart show the median and the "
        "slowest and fastest round, --json every round (default 1)",
    )  # fmt: skip
    bench.add_argument("--no-compare", action="store_true", help="skip glance_store")
    bench.add_argument("--no-baselines", action="store_true", help="skip hashlib and copy")
    bench.set_defaults(func=cmd_bench)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: the command stops as on Ctrl-C, cleaning up on its way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum: int, frame: Any) -> None:
    for name in ("SIGTERM", "SIGHUP"):  # a second one stops at once, as a second Ctrl-C does
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    raise Terminated(signum)


@contextlib.contextmanager
def _stopping_cleanly() -> Iterator[None]:
    """SIGTERM and SIGHUP (kill, systemd, timeout, a closed terminal) act as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, _terminate)
        for sig in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(sig) is not signal.SIG_IGN  # nohup: a hangup stays ignored
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    with _stopping_cleanly():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The format inspector logs each failed check as a warning; our error says it once.
    logging.getLogger("oslo_utils.imageutils.format_inspector").setLevel(logging.ERROR)
    args.progress = args.progress and not args.json and sys.stderr.isatty()
    try:
        if args.func in (cmd_bench, cmd_inspect):  # no store
            return args.func(args, None)
        if args.func is cmd_drivers and not _config_path(args):
            return cmd_drivers(args, None)
        with _open_stores(args) as stores:
            return args.func(args, stores)
    except StoreError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:  # the local side: an output file, standard output
        where = f" {exc.filename}:" if exc.filename else ""
        print(f"{PROG}: error:{where} {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Terminated as exc:
        print(f"{PROG}: stopped by {exc}; nothing was left half-written", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
