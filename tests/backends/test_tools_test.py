"""What ./tools/test does around pytest: its own option, both stages, the servers it started.

No real server is touched: GSN_BACKENDS_DIR points at a temporary folder where the
"servers" are `sleep` processes recorded in a state.json as the scripts record
theirs, and the scripts' real `stop` stops them. tools/test itself runs with a fake
venv (VENV) whose python fakes pip and pytest and runs everything else for real.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import real_backends

REPO = Path(__file__).resolve().parents[2]
backends = real_backends.backends_module()
common = backends.common
#: The snapshot when no server runs.
NOTHING = {"swift": None, "swift-keystone": None, "keystone": None, "ceph": None}


def start_fake_server(base: Path, name: str, procs=("proxy-server",)) -> list[dict]:
    """`sleep` processes recorded in <base>/<name>/state.json as the scripts record theirs."""
    recs = [
        common.spawn(proc, ["sleep", "600"], base / name / "log" / f"{proc}.log", base)
        for proc in procs
    ]
    common.write_atomic(base / name / "state.json", json.dumps({"procs": recs}))
    return recs


def running(recs: list[dict]) -> bool:
    for rec in recs:
        with_reap(rec["pid"])
    return any(common.alive(rec) for rec in recs)


def with_reap(pid: int) -> None:
    # A sleep started by this process is our child: reap it once it is stopped.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@pytest.fixture
def base(tmp_path, monkeypatch):
    """An empty GSN_BACKENDS_DIR; whatever fake server is left is killed at the end."""
    folder = tmp_path / "backends"
    folder.mkdir()
    monkeypatch.setenv("GSN_BACKENDS_DIR", str(folder))
    yield folder
    for state in folder.glob("*/state.json"):
        for rec in json.loads(state.read_text())["procs"]:
            if common.alive(rec):
                os.kill(rec["pid"], 9)
            with_reap(rec["pid"])


# --------------------------------------------------------------------------- finish_run


def test_nothing_running_says_so(base):
    before = backends.snapshot()
    assert before == NOTHING
    assert backends.finish_run(before) == (["no test server is running"], True)


def test_servers_started_by_the_run_are_stopped_by_their_scripts(base):
    before = backends.snapshot()
    swift = start_fake_server(base, "swift", ("memcached", "proxy-server"))
    ceph = start_fake_server(base, "ceph", ("mon.a", "osd.0"))
    lines, ok = backends.finish_run(before)
    assert ok
    assert lines == [
        "stopped swift: started by this run (--keep-servers keeps it)",
        "stopped ceph: started by this run (--keep-servers keeps it)",
    ]
    assert not running(swift) and not running(ceph)
    assert not (base / "swift" / "state.json").exists()
    assert backends.snapshot() == NOTHING


def test_keystone_and_its_swift_are_stopped_with_the_arguments_that_name_them(base):
    """`swift stop --auth keystone` stops the Swift behind Keystone, not the tempauth one."""
    tempauth = start_fake_server(base, "swift")
    before = backends.snapshot()
    swift = start_fake_server(base, "swift-keystone", ("memcached", "proxy-server"))
    keystone = start_fake_server(base, "keystone", ("gunicorn",))
    lines, ok = backends.finish_run(before)
    assert ok
    assert lines[:2] == [
        "stopped swift-keystone: started by this run (--keep-servers keeps it)",
        "stopped keystone: started by this run (--keep-servers keeps it)",
    ]
    assert lines[2].endswith("stop it with: tools/backends/swift stop")
    assert not running(swift) and not running(keystone) and running(tempauth)


def test_servers_running_before_the_run_stay_and_the_user_is_told_how_to_stop_them(base):
    swift = start_fake_server(base, "swift")
    before = backends.snapshot()
    assert before["swift"] == [["proxy-server", swift[0]["pid"], swift[0]["start"]]]
    ceph = start_fake_server(base, "ceph")  # this one is the run's
    lines, ok = backends.finish_run(before)
    assert ok and running(swift) and not running(ceph)
    assert lines[0] == "stopped ceph: started by this run (--keep-servers keeps it)"
    assert lines[1].startswith("still running: swift (1 process, ")
    assert lines[1].endswith(
        "it was running before this run); stop it with: tools/backends/swift stop"
    )


def test_a_server_that_ran_before_stays_even_if_the_run_restarted_it(base):
    """Someone may have started it before the run (by hand, another checkout): it stays."""
    old = start_fake_server(base, "swift")
    before = backends.snapshot()
    os.kill(old[0]["pid"], 9)
    with_reap(old[0]["pid"])
    new = start_fake_server(base, "swift")
    lines, _ = backends.finish_run(before)
    assert len(lines) == 1 and "it was running before this run" in lines[0]
    assert running(new)
    backends.finish_run({})  # as if nothing ran before: stops it


def test_keep_stops_nothing_and_says_how_to_stop(base):
    before = backends.snapshot()
    swift = start_fake_server(base, "swift")
    lines, ok = backends.finish_run(before, keep=True)
    assert ok and running(swift)
    assert len(lines) == 1 and "started by this run, kept as asked" in lines[0]
    assert lines[0].endswith("stop it with: tools/backends/swift stop")


def test_a_server_another_live_process_uses_is_left_to_the_last_run(base):
    before = backends.snapshot()
    swift = start_fake_server(base, "swift")
    # Another session's pytest, which called ensure_swift meanwhile.
    other = subprocess.Popen(["sleep", "600"])
    try:
        while b"sleep" not in Path(f"/proc/{other.pid}/cmdline").read_bytes():
            time.sleep(0.01)  # until it runs sleep
        backends.register_user("swift", other.pid)
        backends.register_user("swift", 999_999_999)  # long gone: forgotten
        assert backends.users("swift") == [other.pid]
        lines, ok = backends.finish_run(before)
        assert ok and running(swift)
        assert f"started by this run, still used by pid {other.pid} (sleep 600)" in lines[0]
        assert (base / "users" / "swift.left").exists()
        # That session's run began while this one's server ran; it ends once the user is gone.
        later_before = backends.snapshot()
    finally:
        other.kill()
        other.wait()
    lines, ok = backends.finish_run(later_before)
    assert lines == [
        "stopped swift: started by an earlier test run for its users, now gone"
        " (--keep-servers keeps it)"
    ]
    assert not running(swift)
    assert not (base / "users" / "swift.left").exists()


def test_ensure_notes_its_caller_as_a_user(base, monkeypatch):
    calls = []
    monkeypatch.setattr(backends, "_run", lambda *a: calls.append(a) or _failed())
    with pytest.raises(backends.BackendUnavailable):
        backends.ensure_swift()
    assert backends.users("swift") == [os.getpid()]  # noted before `start` runs
    assert calls[0][1] == ["start"]


def _failed():
    return subprocess.CompletedProcess([], 1, "", "no")


def test_command_line(base):
    tool = [sys.executable, str(REPO / "tools" / "backends" / "backends.py")]
    snap = subprocess.run([*tool, "snapshot"], capture_output=True, text=True, check=True)
    assert json.loads(snap.stdout) == NOTHING
    swift = start_fake_server(base, "swift")
    done = subprocess.run([*tool, "finish-run", snap.stdout], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped swift: started by this run (--keep-servers keeps it)\n"
    assert not running(swift)


# --------------------------------------------------------------------------- tools/test


FAKE_PYTHON = """\
#!/usr/bin/env bash
# python of a fake venv: pip does nothing, pytest notes its arguments and exits as told.
if [ "$1 $2" = "-m pip" ]; then exit 0; fi
if [ "$1" = -c ]; then echo "== hashing and zero detection: fake"; exit 0; fi
if [ "$1 $2" = "-m pytest" ]; then
  shift 2
  n=$(( $(cat "$FAKE/count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$FAKE/count"
  echo "stage $n: $* pure=${GLANCE_STORE_NG_PURE_PYTHON:-}" >> "$FAKE/pytest.log"
  if [ "$n" = 1 ] && [ -n "${FAKE_START:-}" ]; then "$REAL_PYTHON" "$FAKE/start.py"; fi
  if [ -n "${FAKE_SLEEP:-}" ]; then touch "$FAKE/sleeping"; sleep "$FAKE_SLEEP"; fi
  read -r -a codes <<< "${FAKE_RCS:-0 0}"
  exit "${codes[$((n - 1))]:-0}"
fi
exec "$REAL_PYTHON" "$@"
"""

START = """\
import json, sys
from pathlib import Path
sys.path.insert(0, {tools!r})
import _backends_common as c
base = c.base_dir()
rec = c.spawn("proxy-server", ["sleep", "600"], base / "swift" / "log" / "p.log", base)
c.write_atomic(base / "swift" / "state.json", json.dumps({{"procs": [rec]}}))
"""


@pytest.fixture
def tools_test(tmp_path, base):
    """run(*args, rcs="0 0", start=False, interrupt=False, **env): ./tools/test, a fake venv.

    ``rcs``: the exit status of each pytest stage; ``start``: the first one starts a
    fake Swift; ``interrupt``: Ctrl-C while the first one runs.
    """
    fake = tmp_path / "fake"
    (fake / "venv" / "bin").mkdir(parents=True)
    (fake / "bin").mkdir()
    scripts = {
        fake / "venv" / "bin" / "python": FAKE_PYTHON,
        fake / "venv" / "bin" / "ruff": "#!/bin/sh\nexit 0\n",
        # The Debian packages count as installed: no apt-get from a test.
        fake / "bin" / "dpkg-query": "#!/bin/sh\nprintf 'install ok installed'\n",
    }
    for path, text in scripts.items():
        path.write_text(text)
        path.chmod(0o755)
    (fake / "start.py").write_text(START.format(tools=str(REPO / "tools" / "backends")))

    def run(*args: str, rcs: str = "0 0", start: bool = False, interrupt=False, **env: str):
        (fake / "count").unlink(missing_ok=True)
        (fake / "sleeping").unlink(missing_ok=True)
        (fake / "pytest.log").unlink(missing_ok=True)
        environ = {
            **os.environ,
            "PATH": f"{fake / 'bin'}:{os.environ['PATH']}",
            "VENV": str(fake / "venv"),
            "FAKE": str(fake),
            "REAL_PYTHON": sys.executable,
            "FAKE_RCS": rcs,
            "FAKE_START": "1" if start else "",
            "FAKE_SLEEP": "60" if interrupt else "",
        }
        environ.pop("GSN_KEEP_SERVERS", None)
        environ.update(env)
        argv = [str(REPO / "tools" / "test"), *args]
        if interrupt:  # Ctrl-C once the first pytest runs: SIGINT to the whole group
            proc = subprocess.Popen(
                argv,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            deadline = time.monotonic() + 60
            while not (fake / "sleeping").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=120)
            done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        else:
            done = subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=120)
        log = (
            (fake / "pytest.log").read_text().splitlines() if (fake / "pytest.log").exists() else []
        )
        return done, log

    return run


def results(out: str) -> list[str]:
    return out.split("== results\n", 1)[1].splitlines()


def test_extra_arguments_go_to_pytest_without_our_own_option(tools_test):
    done, log = tools_test("-k", "filesystem and not slow", "--keep-servers", "-x")
    assert done.returncode == 0, done.stdout + done.stderr
    assert log == ["stage 1: -k filesystem and not slow -x pure="]  # one stage, ours taken out
    assert results(done.stdout) == ["pytest -k filesystem and not slow -x: passed"]
    assert "== test servers\nno test server is running\n" in done.stdout


def test_without_arguments_both_stages_run_and_report(tools_test):
    done, log = tools_test()
    assert done.returncode == 0, done.stdout + done.stderr
    assert log == [
        "stage 1:  pure=",
        "stage 2: -q tests/test_pipeline.py tests/test_verify.py "
        "tests/file_store/test_filesystem.py"
        " pure=1",
    ]
    assert results(done.stdout) == [
        "pytest: the whole suite: passed",
        "pytest: the pipeline and filesystem tests again on the pure-Python fallback: passed",
    ]


@pytest.mark.parametrize(("rcs", "status"), [("1 0", 1), ("0 1", 1), ("1 1", 1), ("5 0", 5)])
def test_a_failing_stage_does_not_skip_the_other_and_fails_the_run(tools_test, rcs, status):
    done, log = tools_test(rcs=rcs)
    assert done.returncode == status
    assert len(log) == 2
    first, second = rcs.split()
    expected = [
        "passed" if first == "0" else f"FAILED (exit {first})",
        "passed" if second == "0" else f"FAILED (exit {second})",
    ]
    assert [line.rsplit(": ", 1)[1] for line in results(done.stdout)] == expected


def test_a_server_the_tests_started_is_stopped_at_the_end(tools_test, base):
    done, _ = tools_test(start=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped swift: started by this run (--keep-servers keeps it)" in done.stdout
    assert backends.snapshot() == NOTHING


@pytest.mark.parametrize("how", [("--keep-servers",), ("GSN_KEEP_SERVERS", "1")])
def test_kept_servers_are_named_with_how_to_stop_them(tools_test, base, how):
    if how[0] == "--keep-servers":
        done, log = tools_test("--keep-servers", start=True)
    else:
        done, log = tools_test(start=True, GSN_KEEP_SERVERS="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(log) == 2  # --keep-servers alone is not a pytest argument: both stages run
    assert backends.snapshot()["swift"] is not None
    assert "stop it with: tools/backends/swift stop" in done.stdout
    assert "kept as asked" in done.stdout


def test_ctrl_c_skips_the_next_stage_and_still_stops_the_servers(tools_test, base):
    done, log = tools_test(start=True, interrupt=True)
    assert done.returncode == 130, done.stdout + done.stderr
    assert len(log) == 1
    assert "stopped swift: started by this run" in done.stdout
    assert results(done.stdout) == ["pytest: the whole suite: interrupted"]
    assert backends.snapshot()["swift"] is None
