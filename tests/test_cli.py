"""The glance-store-ng command, run as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xxhash

from glance_store_ng.testing.conformance import mostly_zero

HOSTNAME = Path("/etc/hostname").read_bytes()
EXE = shutil.which("glance-store-ng", path=os.path.dirname(sys.executable)) or "glance-store-ng"


@pytest.fixture
def run(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("GLANCE_STORE_NG_CONFIG", None)

    def run(*args: str, ok: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [EXE, *args], env=env, input=stdin, capture_output=True, cwd=tmp_path, timeout=120
        )
        if ok:
            assert done.returncode == 0, done.stderr.decode()
        return done

    return run


def test_add_get_info_delete_on_the_embedded_default_store(run, tmp_path):
    image = tmp_path / "disk.raw"
    data = mostly_zero(8 << 20, block=64 << 10, seed=1)  # runs long enough for holes
    image.write_bytes(data)
    out = json.loads(run("--json", "add", str(image), "--id", "cli-image").stdout)
    assert out["checksum"] == hashlib.md5(data).hexdigest()
    assert out["multihash"] == hashlib.sha512(data).hexdigest()
    assert out["size"] == len(data) and out["zero_bytes"] > len(data) // 2
    location = out["location"]
    assert location == f"file://{tmp_path}/xdg/glance-store-ng/images/cli-image"
    stored = location.removeprefix("file://")
    assert os.stat(stored).st_blocks * 512 < 0.3 * len(data)

    text = run("add", str(image)).stdout.decode()
    assert f"checksum:   {hashlib.md5(data).hexdigest()}" in text
    assert "zero bytes:" in text and "location:   file://" in text

    assert json.loads(run("--json", "info", location).stdout)["size"] == len(data)
    copy = tmp_path / "copy.raw"
    run("get", location, "-o", str(copy))
    assert copy.read_bytes() == data
    assert os.stat(copy).st_blocks * 512 < 0.3 * len(data)  # written sparse
    assert run("get", location, "--offset", "5", "--length", "7").stdout == data[5:12]

    assert "deleted" in run("delete", location).stdout.decode()

    fast = json.loads(
        run("--json", "add", str(image), "--no-checksum", "--hashing-algo", "xxh3_128").stdout
    )
    assert fast["checksum"] is None and fast["multihash"] == xxhash.xxh3_128(data).hexdigest()
    assert "checksum:   not computed" in run("add", str(image), "--no-checksum").stdout.decode()
    gone = run("info", location, ok=False)
    assert gone.returncode == 1
    assert gone.stderr.decode().startswith("glance-store-ng: error: ")
    assert b"Traceback" not in gone.stderr and len(gone.stderr.splitlines()) == 1


def test_add_from_stdin(run):
    data = os.urandom(300_000)
    out = json.loads(run("--json", "add", "-", stdin=data).stdout)
    assert out["size"] == len(data) and out["checksum"] == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "/no/such/file"], "cannot read '/no/such/file'"),
        (["get", "file:///etc/passwd"], "outside the data directories"),
        (["add", "--hashing-algo", "md42", "/etc/hostname"], "unsupported hashing_algo"),
        (["--config", "/no/such.conf", "drivers"], "cannot read config file"),
        (["add", "--id", "../up", "/etc/hostname"], "image id '../up' is not valid"),
    ],
)
def test_errors_are_one_clear_line(run, args, message):
    done = run(*args, ok=False)
    err = done.stderr.decode()
    assert done.returncode == 1 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_drivers_lists_file_with_options_and_implementation(run):
    info = json.loads(run("--json", "drivers").stdout)
    assert info["implementation"] in ("native", "python")
    file_driver = next(d for d in info["drivers"] if d["name"] == "file")
    names = {o["name"] for o in file_driver["options"]}
    assert {"filesystem_store_datadir", "filesystem_thin_provisioning"} <= names
    assert "hashing and zero detection:" in run("drivers").stdout.decode()


def test_config_file_and_backend_choice(run, tmp_path):
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        "[DEFAULT]\nenabled_backends = fast:file, cold:file\n"
        "[glance_store]\ndefault_backend = fast\n"
        f"[fast]\nfilesystem_store_datadir = {tmp_path}/fast\n"
        f"[cold]\nfilesystem_store_datadir = {tmp_path}/cold\n"
    )
    out = json.loads(
        run("--config", str(conf), "--backend", "cold", "--json", "add", "/etc/hostname").stdout
    )
    assert out["location"].startswith(f"file://{tmp_path}/cold/")
    assert out["metadata"]["store"] == "cold"
    assert out["metadata"]["disk_format_detected"] == "raw"  # inspected by default
    listing = run("--config", str(conf), "drivers").stdout.decode()
    assert "fast (default)" in listing and "cold" in listing


def test_bench_runs_every_case_beside_glance_store_and_reports_json(run, tmp_path):
    extra = tmp_path / "mine.raw"
    extra.write_bytes(os.urandom(100_000))
    report = json.loads(
        run("--json", "bench", "--size", "1M", "--workdir", str(tmp_path), str(extra)).stdout
    )
    rows = {(r["case"], r["operation"], r["implementation"]) for r in report["results"]}
    for case in ("random", "75% zero, runs", "75% zero, scattered", "mine.raw"):
        for impl in ("glance_store_ng", "glance_store_ng, no fsync", "glance_store"):
            assert {(case, "add", impl), (case, "get", impl)} <= rows
        assert (case, "add", "glance_store_ng, xxh3_128, no md5") in rows
        assert (case, "hash md5+sha512", "hashlib") in rows
    scattered = next(
        r for r in report["results"]
        if r["case"] == "75% zero, scattered" and r["operation"] == "add"
    )  # fmt: skip
    # Single 4 KiB zero blocks are written (shorter than filesystem_thin_min_hole);
    # long runs are left as holes.
    assert scattered["allocated"] > 0.9 * scattered["size"]
    runs = next(
        r for r in report["results"]
        if r["case"] == "75% zero, runs" and r["operation"] == "add"
    )  # fmt: skip
    assert runs["allocated"] < 0.6 * runs["size"]  # (1 MiB: a few runs, some short)
    assert all(r["mb_per_s"] > 0 for r in report["results"])
    compared = {(r["case"], r["operation"], r["implementation"]) for r in report["ratios"]}
    assert ("mine.raw", "add", "glance_store_ng") in compared
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("gsn-bench-")]  # cleaned up


def test_gc_dry_run_then_remove(run, tmp_path):
    datadir = tmp_path / "xdg" / "glance-store-ng" / "images"
    run("add", "/etc/hostname")  # creates the store
    orphan = datadir / ".dead.0123456789ab.partial"
    orphan.write_bytes(b"x" * 10)
    os.utime(orphan, (1, 1))
    listed = json.loads(run("--json", "gc", "--dry-run").stdout)
    assert [o["name"] for o in listed["orphans"]] == [str(orphan)] and orphan.exists()
    assert "removed" in run("gc").stdout.decode() and not orphan.exists()


def test_get_writes_through_devices_and_symlinks_without_replacing_them(run, tmp_path):
    location = json.loads(run("--json", "add", "/etc/hostname").stdout)["location"]
    target = tmp_path / "target"
    target.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(target)
    run("get", location, "-o", str(link))
    assert link.is_symlink() and target.read_bytes() == HOSTNAME
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    run("get", location, "-o", str(fifo))
    assert reader.communicate(timeout=30)[0] == HOSTNAME
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # written through, not replaced


def test_local_file_errors_are_one_line(run, tmp_path):
    location = json.loads(run("--json", "add", "/etc/hostname").stdout)["location"]
    done = run("get", location, "-o", str(tmp_path / "no" / "such" / "dir" / "x"), ok=False)
    err = done.stderr.decode()
    assert done.returncode == 1 and f"there is no directory {tmp_path / 'no'}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert ".x." not in err  # never the private temporary name


def test_bench_names_an_unknown_backend_before_measuring(run, tmp_path):
    config = tmp_path / "glance-api.conf"
    config.write_text(
        "[DEFAULT]\nenabled_backends = fast:file\n[glance_store]\ndefault_backend = fast\n"
        f"[fast]\nfilesystem_store_datadir = {tmp_path / 'images'}\n"
    )
    done = run("--config", str(config), "--backend", "cold", "bench", "--size", "1M",
               "--no-compare", "--workdir", str(tmp_path), ok=False)  # fmt: skip
    assert done.returncode == 1
    assert "no backend 'cold'; enabled backends: fast" in done.stderr.decode()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("gsn-bench-")]


def test_global_options_are_taken_after_the_command_too(run, tmp_path):
    added = json.loads(run("add", "/etc/hostname", "--json").stdout)
    assert added["size"] == len(HOSTNAME)
    listed = json.loads(run("drivers", "--json").stdout)
    assert any(driver["name"] == "file" for driver in listed["drivers"])
    config = tmp_path / "glance-api.conf"
    config.write_text(
        "[DEFAULT]\nenabled_backends = a:file\n[glance_store]\ndefault_backend = a\n"
        f"[a]\nfilesystem_store_datadir = {tmp_path / 'a'}\n"
    )
    both = json.loads(run("--no-progress", "add", "/etc/hostname", "--config", str(config),
                          "--backend", "a", "--json").stdout)  # fmt: skip
    assert both["location"].startswith(f"file://{tmp_path / 'a'}/")


def test_get_options_and_output_checks_say_what_is_wrong(run, tmp_path):
    image = tmp_path / "small.raw"
    image.write_bytes(b"abc" * 1000)
    location = json.loads(run("--json", "add", str(image)).stdout)["location"]
    out = tmp_path / "out.raw"
    run("get", location, "--offset", "1K", "--length", "1K", "-o", str(out))
    assert out.read_bytes() == (b"abc" * 1000)[1024:2048]
    short = run("get", location, "--offset", "2K", "--length", "100M", "-o", str(out))
    assert out.read_bytes() == (b"abc" * 1000)[2048:]
    assert (
        "holds 952 bytes from offset 2048, fewer than --length 104857600" in short.stderr.decode()
    )
    for args, message in (
        (("--length", "-1"), "'-1' is not a size such as 1G"),
        (("-o", str(tmp_path)), f"-o {tmp_path} is a directory: give a file path"),
    ):
        done = run("get", location, *args, ok=False)
        assert done.returncode != 0 and message in done.stderr.decode()
    assert "is not valid" in run("add", str(image), "--id", "", ok=False).stderr.decode()


def test_small_adds_report_milliseconds_and_no_rate(run):
    out = run("add", "/etc/hostname").stdout.decode()  # well under a second, whatever the load
    line = [text for text in out.splitlines() if "time:" in text]
    assert line and line[0].rstrip().endswith(" ms") and "MB/s" not in line[0]


def test_gc_says_how_many_younger_orphans_it_left_alone(run, tmp_path):
    datadir = tmp_path / "xdg" / "glance-store-ng" / "images"
    run("add", "/etc/hostname")
    (datadir / ".young.c0ffee012345.partial").write_bytes(b"x")  # an add may still write it
    said = run("gc").stdout.decode()
    assert "no orphans to remove; 1 younger orphan left alone (idle for less than 3600 s" in said
    assert (datadir / ".young.c0ffee012345.partial").exists()
    listed = json.loads(run("gc", "--json", "--dry-run").stdout)
    assert listed["younger_left_alone"] == 1 and listed["orphans"] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_add_leaves_nothing(tmp_path, signum):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("GLANCE_STORE_NG_CONFIG", None)
    datadir = tmp_path / "xdg" / "glance-store-ng" / "images"
    add = subprocess.Popen(
        [EXE, "add", "-", "--id", "terminated"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
        # the default disposition, even under nohup (an ignored SIGHUP is respected)
        preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
    )  # fmt: skip
    add.stdin.write(os.urandom(4 << 20))
    add.stdin.flush()
    deadline = time.monotonic() + 30
    while not list(datadir.glob(".terminated.*.partial")):
        assert time.monotonic() < deadline, "the add never started writing"
        time.sleep(0.02)
    add.send_signal(signum)
    _, err = add.communicate(timeout=30)
    assert add.returncode == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}" in err.decode()
    assert list(datadir.iterdir()) == []


def test_a_terminated_get_leaves_no_temporary_file(run, tmp_path):
    image = tmp_path / "big.raw"
    image.write_bytes(os.urandom(64 << 20))
    location = json.loads(run("--json", "add", str(image)).stdout)["location"]
    image.unlink()
    out = tmp_path / "out" / "copy.raw"
    out.parent.mkdir()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("GLANCE_STORE_NG_CONFIG", None)
    get = subprocess.Popen(
        [EXE, "get", location, "-o", str(out)], stderr=subprocess.PIPE, cwd=tmp_path, env=env
    )
    deadline = time.monotonic() + 30
    while not list(out.parent.iterdir()) and get.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    get.send_signal(signal.SIGSTOP)  # hold it mid-copy (or just after it finished)
    get.send_signal(signal.SIGTERM)
    get.send_signal(signal.SIGCONT)
    get.communicate(timeout=30)
    if get.returncode == 0:  # it finished before the signal: the copy is whole, nothing else
        assert [p.name for p in out.parent.iterdir()] == ["copy.raw"]
    else:
        assert get.returncode == 128 + signal.SIGTERM
        assert list(out.parent.iterdir()) == []


def test_a_reader_that_goes_away_ends_the_command_quietly(run, tmp_path):
    image = tmp_path / "big.raw"
    image.write_bytes(os.urandom(8 << 20))
    location = json.loads(run("--json", "add", str(image)).stdout)["location"]
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("GLANCE_STORE_NG_CONFIG", None)
    get = subprocess.Popen(
        [EXE, "get", location], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert get.stdout.read(10)  # then the reader goes away, as `| head -c 10` does
    get.stdout.close()
    err = get.stderr.read().decode()
    assert get.wait(timeout=30) == 1
    assert err == ""  # no "error: Broken pipe", no traceback


@pytest.mark.parametrize("pure_python", [False, True])
def test_add_shows_the_hashing_implementation_and_advises_once_on_the_fallback(
    tmp_path, pure_python
):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("GLANCE_STORE_NG_CONFIG", None)
    env["GLANCE_STORE_NG_PURE_PYTHON"] = "1" if pure_python else "0"
    done = subprocess.run(
        [EXE, "add", "/etc/hostname"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"hashing:    {'python' if pure_python else 'native'}" in done.stdout
    if pure_python:
        assert done.stderr.count("run in pure Python") == 1
        assert "--force-reinstall ." in done.stderr
    else:
        assert done.stderr == ""


def test_verify_and_get_check_an_image_against_its_recorded_checksums(run, tmp_path):
    image = tmp_path / "disk.raw"
    data = os.urandom(3 << 20)
    image.write_bytes(data)
    added = json.loads(run("--json", "add", str(image)).stdout)
    location, md5, sha512 = added["location"], added["checksum"], added["multihash"]
    expect = ["--checksum", md5, "--multihash", sha512, "--size", str(len(data))]
    out = json.loads(run("--json", "verify", location, *expect).stdout)
    assert out["size"] == len(data)
    assert out["verified"] == ["size", "checksum", "multihash (sha512)"]
    assert "as expected" in run("verify", location, "--checksum", md5).stdout.decode()
    run("get", location, "-o", str(tmp_path / "good.raw"), *expect)
    assert (tmp_path / "good.raw").read_bytes() == data

    stored = location.removeprefix("file://")
    with open(stored, "r+b") as f:  # a flipped bit on the disk
        f.seek(len(data) // 2)
        byte = f.read(1)[0]
        f.seek(len(data) // 2)
        f.write(bytes([byte ^ 1]))
    done = run("verify", location, "--checksum", md5, ok=False)
    assert done.returncode == 1
    assert b"the bytes read differ from the image recorded: checksum (md5)" in done.stderr
    done = run("get", location, "-o", str(tmp_path / "bad.raw"), *expect, ok=False)
    assert done.returncode == 1 and b"differ" in done.stderr
    assert not (tmp_path / "bad.raw").exists()  # no damaged copy, no temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.raw", "good.raw", "xdg"]
    assert run("get", location).stdout != data  # without verify: served as it is

    os.truncate(stored, 1000)  # a truncated file: refused before a byte is read
    done = run("verify", location, "--size", str(len(data)), ok=False)
    assert done.returncode == 1 and b"holds 1000 bytes, not the 3145728 expected" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["verify", "file:///x/y"], "give --checksum MD5, --multihash HEX or --size BYTES"),
        (["verify", "LOC", "--checksum", "abc"], "checksum (md5) must be 32 hex digits"),
        (["verify", "LOC", "--multihash", "ab", "--hashing-algo", "md4x"], "unsupported hashing"),
        (["get", "LOC", "--offset", "1", "--size", "5"], "verify needs the whole image"),
    ],
)
def test_verify_options_say_what_is_wrong(run, tmp_path, args, message):
    location = json.loads(run("--json", "add", "-", stdin=b"tiny image").stdout)["location"]
    args = [location if a == "LOC" else a for a in args]
    done = run(*args, ok=False)
    assert done.returncode != 0 and message in done.stderr.decode(), done.stderr
