"""The benchmark's report: rounds (median, slowest and fastest) in the table and the JSON,
the busy-machine warning, and the chart (one panel per operation), read through matplotlib's
objects rather than pixels."""

from __future__ import annotations

import json

import pytest

from glance_store_ng import cli
from glance_store_ng.bench import GLANCE_STORE, NO_FSYNC, OURS, machine
from glance_store_ng.bench.report import Measurement, format_table, plot, ratios

MB = 10**6
CASES = ("random", "75% zero, runs", "75% zero, scattered")


def measured(case: str, op: str, impl: str, *speeds: float, size: int = 64 << 20) -> Measurement:
    """A measurement whose rounds ran at ``speeds`` MB/s."""
    rounds = [
        {"seconds": size / (s * MB), "cpu_seconds": 0.1, "peak_rss_growth": 4 << 20} for s in speeds
    ]
    return Measurement.of_rounds(case, op, impl, size, rounds)


def test_rounds_give_the_median_and_the_range_in_the_table():
    results = [
        measured("random", "add", OURS, 240, 220, 231),
        measured("random", "add", GLANCE_STORE, 110, 100, 105),
    ]
    assert results[0].mb_per_s == pytest.approx(231)
    assert results[0].mb_per_s_range == pytest.approx((220, 240))
    assert ratios(results)[("random", "add", OURS)] == pytest.approx(2.2)  # medians
    table = format_table(results)
    head, ours, theirs = table.splitlines()
    assert "MB/s median (min-max)" in head
    assert "231 (220-240)" in ours and ours.endswith("2.20x")
    assert "105 (100-110)" in theirs


def test_one_round_keeps_the_table_as_it_was():
    table = format_table([measured("random", "get", OURS, 6543.2)])
    head, row = table.splitlines()
    assert head.split() == ["case", "operation", "implementation", "MB/s", "CPU", "s", "peak",
                            "RSS", "+MiB", "allocated", "vs", "glance_store"]  # fmt: skip
    assert row.split()[3] == "6,543" and "(" not in row


def test_json_carries_every_round():
    m = measured("random", "add", OURS, 240, 220, 231)
    out = m.as_json()
    assert [round(r["mb_per_s"]) for r in out["rounds"]] == [240, 220, 231]
    assert round(out["mb_per_s"]) == 231
    assert (round(out["mb_per_s_min"]), round(out["mb_per_s_max"])) == (220, 240)
    assert out["seconds"] == pytest.approx((64 << 20) / (231 * MB))
    json.dumps(out)


def test_bench_rounds_and_busy_warning_through_the_command(monkeypatch, capsys, tmp_path):
    """--rounds 2 runs every step twice and --json carries both rounds; a busy machine is
    named on stderr in one line, before the run."""
    monkeypatch.delenv("GLANCE_STORE_NG_CONFIG", raising=False)
    monkeypatch.setattr(machine, "load_average", lambda: 7.5)
    monkeypatch.setattr(machine, "cores", lambda: 4)
    argv = ["--json", "bench", "--size", "64K", "--rounds", "2", "--no-compare",
            "--no-baselines", "--workdir", str(tmp_path)]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["rounds"] == 2 and report["machine"]["cores"] == 4
    for row in report["results"]:
        assert len(row["rounds"]) == 2
        assert row["mb_per_s_min"] <= row["mb_per_s"] <= row["mb_per_s_max"]
    assert {(r["case"], r["operation"]) for r in report["results"]} == {
        (case, op) for case in CASES for op in ("add", "get")
    }
    warning = captured.err.strip().splitlines()
    assert len(warning) == 1
    assert "warning" in warning[0] and "7.50" in warning[0] and "4 cores" in warning[0]


def test_no_warning_on_a_quiet_machine(monkeypatch):
    monkeypatch.setattr(machine, "cores", lambda: 4)
    monkeypatch.setattr(machine, "load_average", lambda: 1.2)
    assert machine.load_warning() is None
    monkeypatch.setattr(machine, "load_average", lambda: 3.1)
    assert "3.10 on 4 cores" in machine.load_warning()


def test_rounds_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["bench", "--rounds", "0"])
    assert exited.value.code == 2 and "--rounds" in capsys.readouterr().err


def test_cpu_model_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        "model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\n"
    )
    assert machine.cpu_model(str(info)) == "Intel Xeon E5-2680 v4 @ 2.40GHz"
    info.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nModel\t\t: Raspberry Pi 4 Model B\n")
    assert machine.cpu_model(str(info)) == "Raspberry Pi 4 Model B"


def full_run(rounds: int = 3) -> list[Measurement]:
    """A run's results as the runner gives them: baselines, three implementations, a file."""
    results = []
    for case in (*CASES, "ubuntu-24.04-server-cloudimg-amd64.img"):
        spread = (0.9, 1.0, 1.1)[:rounds]
        size = 600 << 20 if case.startswith("ubuntu") else 64 << 20
        for op, impl, speed in (
            ("hash md5", "hashlib", 560), ("hash md5+sha512", "hashlib", 290),
            ("copy+fsync", "read/write", 700), ("add", OURS, 380), ("get", OURS, 4200),
            ("add", NO_FSYNC, 420), ("get", NO_FSYNC, 4100), ("add", GLANCE_STORE, 140),
            ("get", GLANCE_STORE, 6500),
        ):  # fmt: skip
            results.append(measured(case, op, impl, *(speed * f for f in spread), size=size))
    return results


def bars_of(ax) -> list:
    """The axes' bar series (matplotlib keeps their error bars as containers too)."""
    from matplotlib.container import BarContainer

    return [c for c in ax.containers if isinstance(c, BarContainer)]


def test_plot_draws_one_panel_per_operation(tmp_path):
    path = tmp_path / "bench.png"
    fig = plot(full_run(), str(path), machine="2 cores, Test CPU, native C hashing")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    add, get = fig.axes  # the legend is the figure's, not an axes
    assert add.get_title(loc="left").startswith("add")
    assert get.get_title(loc="left").startswith("get")
    # add: ours, ours without fsync, glance_store and the three baselines per case;
    # get: ours and glance_store (the no-fsync store reads alike)
    add_bars, get_bars = bars_of(add), bars_of(get)
    assert [b.get_label() for b in add_bars][:3] == [
        "glance_store_ng", "glance_store_ng, no fsync (as glance_store writes)", "glance_store"
    ]  # fmt: skip
    assert [b.get_label().split(":")[0] for b in add_bars][3:] == ["baseline"] * 3
    assert [b.get_label() for b in get_bars] == ["glance_store_ng", "glance_store"]
    assert all(len(bars) == 4 for bars in add_bars + get_bars)  # the four cases
    assert all(bars.errorbar is not None for bars in add_bars)  # min-max of 3 rounds
    labels = [t.get_text() for t in add.get_xticklabels()]
    assert labels[:3] == list(CASES) and "(600 MiB)" in labels[3]
    # the ratio ours / glance_store on each pair: 380/140 and 420/140 per case, 4200/6500
    assert sorted(t.get_text() for t in add.texts) == ["2.7×"] * 4 + ["3.0×"] * 4
    assert [t.get_text() for t in get.texts] == ["0.6×"] * 4
    title = fig.get_suptitle()
    assert "MB/s, higher is better" in title and "64 MiB images" in title
    assert "2 cores, Test CPU, native C hashing" in title and "median of 3 rounds" in title
    assert "higher is better" in add.get_ylabel()
    assert add.get_yscale() == get.get_yscale() == "linear"  # each panel its own scale
    assert add.get_ylim()[1] < 1000 < get.get_ylim()[1]


def test_plot_turns_to_a_log_scale_when_bars_span_more_than_10x(tmp_path):
    results = [
        measured("random", "add", OURS, 30),
        measured("random", "add", GLANCE_STORE, 10),
        measured("random", "copy+fsync", "read/write", 700),
        measured("random", "get", OURS, 300),
    ]
    fig = plot(results, str(tmp_path / "bench.png"), store="backend cold of glance-api.conf")
    add, get = fig.axes
    assert add.get_yscale() == "log" and get.get_yscale() == "linear"
    assert [t.get_text() for t in add.texts] == ["3.0×"]
    assert all(bars.errorbar is None for bars in bars_of(add))  # one round
    assert "backend cold of glance-api.conf" in fig.get_suptitle()
