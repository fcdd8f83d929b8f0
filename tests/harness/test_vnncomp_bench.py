"""Specification of the benchmark runner: instance lists, worker runs, comparison, CSV."""

from __future__ import annotations

import math

import pytest

from campaign_helpers import vnnlib_text, write_abs_onnx
from verirepair.errors import VerirepairError
from verirepair.harness.vnncomp_bench import (
    ERROR,
    BenchRow,
    compare,
    read_instances,
    read_rows_csv,
    run_bench,
    summarize,
    write_rows_csv,
)


@pytest.fixture
def bench_dir(tmp_path, monkeypatch):
    """A tiny benchmark: one net, a holding and a violated property, blank lines."""
    monkeypatch.chdir(tmp_path)  # Marabou may leave log files in the working directory
    (tmp_path / "nets").mkdir()
    (tmp_path / "props").mkdir()
    write_abs_onnx(tmp_path / "nets" / "abs.onnx")
    (tmp_path / "props" / "holds.vnnlib").write_text(vnnlib_text(1.5))
    (tmp_path / "props" / "violated.vnnlib").write_text(vnnlib_text(0.5))
    (tmp_path / "instances.csv").write_text(
        "nets/abs.onnx,props/holds.vnnlib,20\n\nnets/abs.onnx,props/violated.vnnlib,20\n"
    )
    return tmp_path


# ------------------------------------------------------------ read_instances
def test_read_instances_resolves_paths_against_the_csv_folder(bench_dir):
    instances = read_instances(bench_dir / "instances.csv")
    assert [i.key for i in instances] == [("nets/abs.onnx", "props/holds.vnnlib"),
                                         ("nets/abs.onnx", "props/violated.vnnlib")]
    assert instances[0].onnx_path == str(bench_dir.resolve() / "nets" / "abs.onnx")
    assert instances[1].timeout_s == 20.0


@pytest.mark.parametrize("text, match", [
    ("a.onnx,b.vnnlib,10\na.onnx,b.vnnlib\n", "line 2: expected 'onnx,vnnlib,timeout'"),
    ("\n\na.onnx,b.vnnlib,soon\n", "line 3: timeout must be a positive"),
    ("a.onnx,b.vnnlib,-1\n", "line 1: timeout must be a positive"),
])
def test_read_instances_rejects_malformed_rows_with_line_number(tmp_path, text, match):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(VerirepairError, match=match):
        read_instances(tmp_path / "bad.csv")


def test_read_instances_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(VerirepairError, match="cannot read instance list"):
        read_instances(tmp_path / "nope.csv")


# ----------------------------------------------------------------- run_bench
@pytest.mark.marabou
def test_run_bench_runs_both_engines_and_they_agree(bench_dir):
    pytest.importorskip("maraboupy")
    instances = read_instances(bench_dir / "instances.csv")
    seen = []
    rows = run_bench(instances, ["own", "marabou"], jobs=2, on_result=seen.append)
    assert [(r.vnnlib, r.engine) for r in rows] == [
        ("props/holds.vnnlib", "own"), ("props/holds.vnnlib", "marabou"),
        ("props/violated.vnnlib", "own"), ("props/violated.vnnlib", "marabou")]
    assert sorted(seen, key=rows.index) == rows  # every row reported once
    assert [r.verdict for r in rows] == ["holds", "holds", "violated", "violated"]
    assert [r.cex_ok for r in rows] == [None, None, True, True]
    assert compare(rows) == []
    assert summarize(rows)["marabou"].solved == 2


def test_a_failing_instance_becomes_an_error_row_and_an_overrun_is_killed(bench_dir):
    (bench_dir / "more.csv").write_text(
        "nets/abs.onnx,props/holds.vnnlib,0.001\n"
        "nets/missing.onnx,props/holds.vnnlib,20\n"
        "nets/abs.onnx,props/violated.vnnlib,20\n"
    )
    instances = read_instances(bench_dir / "more.csv")
    # With no grace, the 1 ms instance is killed before the freshly spawned
    # worker can even start; the next instances then run in a new worker.
    rows = run_bench(instances, ["own"], jobs=1, grace_s=0.0)
    assert rows[0].verdict == "timeout" and "killed" in rows[0].message
    assert rows[1].verdict == ERROR and "missing.onnx" in rows[1].message
    assert rows[2].verdict == "violated" and rows[2].cex_ok is True


def test_run_bench_rejects_bad_arguments(bench_dir):
    instances = read_instances(bench_dir / "instances.csv")
    with pytest.raises(ValueError, match="jobs"):
        run_bench(instances, ["own"], jobs=0)
    with pytest.raises(ValueError, match="engine"):
        run_bench(instances, [])


# --------------------------------------------------------- compare/summarize
def _row(vnnlib: str, engine: str, verdict: str, time_s: float) -> BenchRow:
    return BenchRow("n.onnx", vnnlib, 10.0, engine, verdict, time_s,
                    True if verdict == "violated" else None, "")


def test_compare_reports_only_definitive_disagreements():
    rows = [_row("p1", "own", "holds", 1.0), _row("p1", "marabou", "violated", 2.0),
            _row("p2", "own", "holds", 1.0), _row("p2", "marabou", "timeout", 10.0),
            _row("p3", "own", "violated", 1.0), _row("p3", "marabou", "violated", 3.0),
            _row("p4", "own", "unknown", 1.0), _row("p4", "marabou", "holds", 3.0)]
    found = compare(rows, ["own", "marabou"])
    assert [(d.vnnlib, d.verdict_a, d.verdict_b) for d in found] == [("p1", "holds", "violated")]
    assert compare(rows, ["own"]) == []


def test_summarize_counts_and_times_per_engine():
    rows = [_row("p1", "own", "holds", 1.0), _row("p2", "own", "timeout", 10.0),
            _row("p3", "own", "violated", 3.0), _row("p1", "marabou", ERROR, 0.5)]
    own, marabou = summarize(rows)["own"], summarize(rows)["marabou"]
    assert (own.instances, own.solved) == (3, 2)
    assert own.by_verdict == {"holds": 1, "violated": 1, "unknown": 0, "timeout": 1, "error": 0}
    assert (own.total_time_s, own.median_time_s, own.max_time_s) == (14.0, 3.0, 10.0)
    assert own.median_solved_time_s == 2.0
    assert marabou.solved == 0 and marabou.by_verdict[ERROR] == 1
    assert math.isnan(marabou.median_solved_time_s)


def test_rows_csv_round_trip(tmp_path):
    rows = [_row("p1", "own", "holds", 1.0 / 3.0),
            BenchRow("a b.onnx", "p,2", 5.0, "marabou", "unknown", 2.5, None, 'says "sat", x')]
    write_rows_csv(rows, tmp_path / "rows.csv")
    assert read_rows_csv(tmp_path / "rows.csv") == rows
    (tmp_path / "bad.csv").write_text("onnx,vnnlib\n")
    with pytest.raises(VerirepairError, match="line 1"):
        read_rows_csv(tmp_path / "bad.csv")
    with pytest.raises(VerirepairError, match="cannot read rows file"):
        read_rows_csv(tmp_path / "missing.csv")
