"""Format inspection (glance_store_ng.inspection and ``glance-store-ng inspect``) on a
corpus made here with the real tools: qemu-img and qemu-io (Debian's qemu-utils),
sgdisk (gdisk), xorriso. ./tools/test installs them; a missing one fails the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glance_store_ng import errors
from glance_store_ng.cli import main
from glance_store_ng.inspection import Inspection
from glance_store_ng.units import MiB

TOOLS = {"qemu-img": "qemu-utils", "qemu-io": "qemu-utils", "sgdisk": "gdisk", "xorriso": "xorriso"}
SIZE = 8 * MiB


def run(*argv: str) -> None:
    if shutil.which(argv[0]) is None:
        pytest.fail(
            f"{argv[0]} is missing: apt-get install {TOOLS[argv[0]]} (./tools/test does)",
            pytrace=False,
        )
    subprocess.run(argv, check=True, capture_output=True)


def qemu_img(path: Path, fmt: str, *options: str, size: int = SIZE) -> Path:
    run("qemu-img", "create", "-q", "-f", fmt, *options, str(path), str(size))
    return path


def qemu_virtual_size(path: Path) -> int:
    """The virtual size qemu-img tells."""
    done = subprocess.run(
        ["qemu-img", "info", "--output", "json", str(path)], check=True, capture_output=True
    )
    return int(json.loads(done.stdout)["virtual-size"])


def make_corpus(root: Path) -> dict[str, tuple[Path, str, int | None, str | None]]:
    """name -> (file, expected format, expected virtual size, None if safe else a word of
    the reason)."""
    c: dict[str, tuple[Path, str, int | None, str | None]] = {}
    c["raw"] = (qemu_img(root / "raw.img", "raw"), "raw", SIZE, None)
    c["qcow2"] = (qemu_img(root / "v3.qcow2", "qcow2"), "qcow2", SIZE, None)
    c["qcow2 v2"] = (qemu_img(root / "v2.qcow2", "qcow2", "-o", "compat=0.10"), "qcow2", SIZE, None)
    vhd = qemu_img(root / "d.vhd", "vpc")  # dynamic: the engine reads the header copy
    c["vhd"] = (vhd, "vhd", qemu_virtual_size(vhd), None)  # rounded to a CHS geometry
    c["vhdx"] = (qemu_img(root / "d.vhdx", "vhdx"), "vhdx", SIZE, None)
    c["vmdk sparse"] = (qemu_img(root / "s.vmdk", "vmdk"), "vmdk", SIZE, None)
    stream = root / "so.vmdk"
    run("qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized",
        str(c["raw"][0]), str(stream))  # fmt: skip
    c["vmdk streamOptimized"] = (stream, "vmdk", SIZE, None)
    c["vdi"] = (qemu_img(root / "d.vdi", "vdi"), "vdi", SIZE, None)
    luks = qemu_img(
        root / "d.luks", "luks", "--object", "secret,id=s0,data=pw", "-o", "key-secret=s0"
    )
    c["luks"] = (luks, "luks", SIZE, None)
    gpt = qemu_img(root / "gpt.raw", "raw")
    run("sgdisk", "-o", "-n", "1:2048:0", str(gpt))
    c["gpt"] = (gpt, "gpt", SIZE, None)
    (root / "iso").mkdir()
    (root / "iso" / "hello.txt").write_text("hello\n")
    iso = root / "d.iso"
    run("xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), str(root / "iso"))
    c["iso"] = (iso, "iso", os.path.getsize(iso), None)
    # hostile
    backing = qemu_img(root / "backing.qcow2", "qcow2", "-b", "/etc/passwd", "-F", "raw")
    c["qcow2 backing file"] = (backing, "qcow2", None, "backing_file")
    data_file = qemu_img(root / "datafile.qcow2", "qcow2", "-o", f"data_file={root}/ext.raw")
    c["qcow2 data file"] = (data_file, "qcow2", None, "data_file")
    flat = root / "flat.vmdk"
    flat.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\nRW 16384 FLAT "/etc/hosts" 0\n'
    )
    c["vmdk extent on a host file"] = (flat, "vmdk", None, "descriptor")
    c["qed (banned)"] = (qemu_img(root / "d.qed", "qed"), "qed", None, "banned")
    bad_mbr = qemu_img(root / "badmbr.raw", "raw")
    with open(bad_mbr, "r+b") as f:  # one partition, a boot flag that is neither 0 nor 0x80
        f.seek(446)
        f.write(bytes([0x42, 0, 0, 0, 0x83]))
        f.seek(510)
        f.write(b"\x55\xaa")
    c["MBR with a bad boot flag"] = (bad_mbr, "gpt", None, "mbr")
    features = root / "features.qcow2"
    shutil.copy(c["qcow2"][0], features)
    with open(features, "r+b") as f:  # an incompatible feature bit qemu does not define
        f.seek(0x4E)
        bits = f.read(1)[0]
        f.seek(0x4E)
        f.write(bytes([bits | 0x04]))
    c["qcow2 unknown feature"] = (features, "qcow2", None, "unknown_features")
    both = root / "qcow2-and-iso.qcow2"
    shutil.copy(c["qcow2"][0], both)
    with open(both, "r+b") as f:  # an ISO volume descriptor in the qcow2's unused space
        f.seek(32768)
        f.write(iso.read_bytes()[32768:34816])
    c["two formats at once"] = (both, "qcow2", None, "several formats")
    boot = root / "bootable.iso"
    shutil.copy(iso, boot)
    run("sgdisk", "-o", "-n", "1:64:0", str(boot))  # a GPT in the ISO's system area
    c["ISO with a GPT in front"] = (boot, "iso", os.path.getsize(boot), None)
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, str, int | None, str | None]]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


CASES = [
    "raw", "qcow2", "qcow2 v2", "vhd", "vhdx", "vmdk sparse", "vmdk streamOptimized", "vdi",
    "luks", "gpt", "iso", "qcow2 backing file", "qcow2 data file",
    "vmdk extent on a host file", "qed (banned)", "MBR with a bad boot flag",
    "qcow2 unknown feature", "two formats at once", "ISO with a GPT in front",
]  # fmt: skip


def inspect_file(path: Path, disk_format: str | None = None, piece: int = 64 * 1024):
    """Feed the file to an Inspection in pieces; its verdict."""
    inspection = Inspection(disk_format, label=path.name)
    data = path.read_bytes()
    view = memoryview(data)
    for start in range(0, len(data), piece):
        inspection.feed(view[start : start + piece])
    return inspection.finish(len(data))


@pytest.mark.parametrize("case", CASES)
def test_each_image_gets_its_format_size_and_verdict(corpus, case) -> None:
    path, fmt, virtual, unsafe = corpus[case]
    if unsafe is None:
        verdict = inspect_file(path)
        assert (verdict.format, verdict.virtual_size) == (fmt, virtual)
    else:
        with pytest.raises(errors.ImageRejected, match=unsafe) as caught:
            inspect_file(path)
        assert fmt in str(caught.value)


@pytest.mark.parametrize("case", CASES)
def test_the_inspect_command(corpus, case, capsys) -> None:
    path, fmt, virtual, unsafe = corpus[case]
    code = main(["inspect", "--json", str(path)])
    shown = json.loads(capsys.readouterr().out)
    assert code == (0 if unsafe is None else 1)
    assert shown["safe"] is (unsafe is None)
    if unsafe is None:
        assert (shown["disk_format_detected"], shown["virtual_size"]) == (fmt, virtual)
    else:
        assert unsafe in shown["reason"]


@pytest.mark.parametrize(
    ("case", "declared", "accepted"),
    [
        ("raw", "raw", True),
        ("gpt", "raw", True),  # a raw disk may hold a partition table
        ("raw", "ami", True),  # not inspectable: anything no format matched
        ("qcow2", "qcow2", True),
        ("qcow2", "raw", False),
        ("raw", "qcow2", False),
        ("vmdk sparse", "qcow2", False),
        ("iso", "raw", False),
        ("qcow2", "ami", False),
    ],
)
def test_the_declared_disk_format_must_match(corpus, case, declared, accepted) -> None:
    path = corpus[case][0]
    if accepted:
        inspect_file(path, declared)
    else:
        with pytest.raises(errors.ImageRejected, match=f"not {declared}"):
            inspect_file(path, declared)


def test_inspect_reads_only_what_the_verdict_needs(corpus, tmp_path, capsys) -> None:
    """A raw image is decided within its first megabyte; so is a qcow2 with a backing file
    whose data runs for megabytes more; the command stops reading there."""
    big = tmp_path / "big-backing.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(big),
        str(64 * MiB))  # fmt: skip
    run("qemu-io", "-c", "write -P 0x55 0 16M", str(big))
    assert big.stat().st_size > 16 * MiB
    assert main(["inspect", "--json", str(big)]) == 1
    assert json.loads(capsys.readouterr().out)["bytes_read"] <= MiB
    assert main(["inspect", "--json", str(corpus["raw"][0])]) == 0
    assert json.loads(capsys.readouterr().out)["bytes_read"] <= MiB


def test_inspect_from_stdin(corpus) -> None:
    for case, code in (("qcow2", 0), ("qcow2 backing file", 1)):
        with open(corpus[case][0], "rb") as f:
            done = subprocess.run(
                [sys.executable, "-m", "glance_store_ng.cli", "inspect", "-", "--disk-format",
                 "qcow2"],
                stdin=f,
                capture_output=True,
                text=True,
            )  # fmt: skip
        assert done.returncode == code, done.stderr
        assert ("verdict:      safe" if code == 0 else "REJECTED") in done.stdout


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(CASES),
    cut=st.integers(min_value=0, max_value=1 << 20),
    flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=8),
    piece=st.sampled_from([1, 7, 512, 4096, 65536]),
)
def test_truncated_and_mutated_headers_give_a_verdict_or_our_error(
    corpus, case, cut, flips, piece
) -> None:
    """Whatever the bytes: a Verdict, or ImageRejected; never another exception, and the
    inspection's memory stays within a few megabytes whatever the headers claim."""
    if piece < 512:  # byte by byte: a shorter prefix, or each example takes seconds
        cut = min(cut, 8192)
    data = bytearray(corpus[case][0].read_bytes()[:cut])
    for offset, mask in flips:
        if offset < len(data):
            data[offset] ^= mask
    view = memoryview(bytes(data))
    tracemalloc.start()
    try:
        inspection = Inspection(label="mutated")
        for start in range(0, len(view), piece):
            inspection.feed(view[start : start + piece])
        inspection.finish()
    except errors.ImageRejected:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 8 * MiB


def test_without_the_engine_asking_for_inspection_says_what_to_install(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_oslo(name, *args, **kwargs):
        if name.startswith("oslo_utils"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_oslo)
    with pytest.raises(errors.ConfigError, match=r"glance_store_ng\[inspect\]"):
        Inspection("raw")


@pytest.mark.parametrize("declared", [False, True], ids=["no disk_format", "disk_format"])
@pytest.mark.parametrize("case", CASES)
def test_add_gives_each_image_its_verdict(corpus, tmp_path, case, declared) -> None:
    """Through a store's add (the filesystem store, inspection on by default): the same
    format and virtual size in the result, or ImageRejected and nothing stored."""
    from glance_store_ng import open_store

    path, fmt, virtual, unsafe = corpus[case]
    # what Glance would call it: a partitioned disk is raw; it knows no qed
    disk_format = {"gpt": "raw", "qed": None}.get(fmt, fmt) if declared else None
    options = {"filesystem_store_datadir": str(tmp_path / "images")}
    with open_store("file", options) as store, open(path, "rb") as f:
        if unsafe is None:
            result = store.add("img", f, path.stat().st_size, disk_format=disk_format)
            assert result.metadata["disk_format_detected"] == fmt
            assert result.metadata["virtual_size"] == virtual
            return
        with pytest.raises(errors.ImageRejected, match=unsafe):
            store.add("img", f, path.stat().st_size, disk_format=disk_format)
    assert list((tmp_path / "images").iterdir()) == []


@pytest.mark.parametrize("case", CASES)
def test_the_verdict_does_not_depend_on_how_the_stream_is_cut(corpus, case) -> None:
    """The uploader chooses the pieces: tiny, odd, or larger than the engine's parsing
    windows; a short first piece then big ones. Same verdict every time."""
    path = corpus[case][0]
    outcomes = set()
    for cut in ([7], [4096], [65536], [MiB], [8 * MiB], [100, 8 * MiB]):
        inspection = Inspection(label="cut")
        data = memoryview(path.read_bytes())
        pieces, start, i = [], 0, 0
        while start < len(data):
            size = cut[min(i, len(cut) - 1)]
            pieces.append(data[start : start + size])
            start, i = start + size, i + 1
        if cut == [7]:  # tiny pieces up to just past the first megabyte, then the rest
            tiny = (MiB + 4096) // 7
            pieces = pieces[:tiny] + [data[tiny * 7 :]]
        try:
            for piece in pieces:
                inspection.feed(piece)
            verdict = inspection.finish(len(data))
            outcomes.add((verdict.format, verdict.virtual_size))
        except errors.ImageRejected as exc:
            outcomes.add(("rejected", str(exc).split(": ", 1)[1]))
    assert len(outcomes) == 1, outcomes


def test_a_second_format_in_the_headers_does_not_delay_the_refusal() -> None:
    """A hostile qcow2 that also carries a VHDX region table pointing far away (so that
    inspector never completes) is still refused once the qcow2 header was read."""
    from glance_store_ng.testing.conformance import hostile_qcow2

    image = bytearray(hostile_qcow2(8 * MiB))
    image[64 * 1024 : 64 * 1024 + 8] = b"vhdxfile"
    image[192 * 1024 : 192 * 1024 + 4] = b"regi"
    inspection = Inspection(label="decoy")
    with pytest.raises(errors.ImageRejected, match="backing_file"):
        for start in range(0, len(image), 256 * 1024):
            inspection.feed(memoryview(image)[start : start + 256 * 1024])
    assert inspection.consumed <= 2 * MiB


def test_detect_records_what_enforce_refuses(corpus, tmp_path) -> None:
    from glance_store_ng import open_store

    path = corpus["qcow2 backing file"][0]
    options = {"filesystem_store_datadir": str(tmp_path), "image_inspection": "detect"}
    with open_store("file", options) as store:
        result = store.add("img", path.read_bytes(), disk_format="qcow2")
        assert "backing_file" in result.metadata["inspection_rejected"]
        with pytest.raises(errors.ImageRejected):
            store.add("img2", path.read_bytes(), inspect="enforce")
        plain = store.add("img3", b"x" * 1000, inspect="off")
        assert "disk_format_detected" not in plain.metadata


def test_inspect_from_stdin_gives_a_raw_images_whole_size(corpus) -> None:
    with open(corpus["raw"][0], "rb") as f:
        done = subprocess.run(
            [sys.executable, "-m", "glance_store_ng.cli", "inspect", "--json", "-"],
            stdin=f, capture_output=True, text=True,
        )  # fmt: skip
    shown = json.loads(done.stdout)
    assert (shown["virtual_size"], shown["bytes_read"]) == (SIZE, SIZE)


def test_options_and_arguments_are_checked(tmp_path) -> None:
    from glance_store_ng import open_store

    with pytest.raises(errors.ConfigError, match="qcow"):
        open_store("file", {"filesystem_store_datadir": str(tmp_path),
                            "image_inspection_formats": "raw, qcow"})  # fmt: skip
    with open_store("file", {"filesystem_store_datadir": str(tmp_path)}) as store:
        with pytest.raises(errors.InvalidArgument, match="disk_format 'QCOW2'"):
            store.add("img", b"x", disk_format="QCOW2")
        with pytest.raises(errors.InvalidArgument, match="enforce, detect or off"):
            store.add("img", b"x", inspect="yes")


def test_opening_a_store_does_not_import_the_engine(tmp_path) -> None:
    code = (
        "import sys; from glance_store_ng import open_store; "
        f"s = open_store('file', {{'filesystem_store_datadir': {str(tmp_path)!r}}}); "
        "print(s.inspection_mode, any(m.startswith('oslo_utils') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["enforce", "False"], done.stderr
