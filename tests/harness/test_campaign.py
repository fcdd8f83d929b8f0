"""Specification of campaigns: reading SPEC, budgeted jobs, Dask runs that lose a worker, resume.

The Dask tests run a real LocalCluster of two worker processes on the tiny |x| network of
:mod:`campaign_helpers`, whose verdicts are known by hand.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campaign_helpers import THRESHOLDS, expected_by_vnnlib, write_abs_onnx, write_campaign
from verirepair.harness.campaign.jobs import ERROR, read_result, run_budgeted, run_job
from verirepair.harness.campaign.runner import run_campaign
from verirepair.harness.campaign.spec import Job, read_campaign_spec
from verirepair.run_config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _check_complete(out: Path, n_jobs: int) -> None:
    """Every job exactly once in results.csv, with its hand-computed answer, and one folder each."""
    rows = _rows(out)
    assert len(rows) == n_jobs
    assert len({r["job_id"] for r in rows}) == n_jobs
    assert {r["vnnlib"]: r["result"] for r in rows} == expected_by_vnnlib(THRESHOLDS[:n_jobs])
    assert all(r["network"] == "abs.onnx" for r in rows)
    assert len(list((out / "jobs").iterdir())) == n_jobs


# ----------------------------------------------------------------------------- SPEC
def test_instances_csv_gives_one_verify_job_per_row_with_paths_as_written(tmp_path):
    spec = read_campaign_spec(write_campaign(tmp_path, THRESHOLDS[:3]))
    assert spec.kind == "verify" and len(spec.jobs) == 3
    job = spec.jobs[0]
    assert (job.network, job.vnnlib, job.timeout_s) == ("abs.onnx", "p0.vnnlib", 30.0)
    assert Path(job.network_path).is_absolute() and Path(job.network_path).is_file()
    assert len({j.job_id for j in spec.jobs}) == 3
    # The identifier is stable (resume depends on it) and depends on the budget.
    assert read_campaign_spec(tmp_path / "instances.csv").jobs[0].job_id == job.job_id
    write_campaign(tmp_path, THRESHOLDS[:3], timeout_s=31)
    assert read_campaign_spec(tmp_path / "instances.csv").jobs[0].job_id != job.job_id


def test_toml_spec_expands_globs_and_job_tables(tmp_path):
    write_campaign(tmp_path, THRESHOLDS[:2])
    (tmp_path / "run.toml").write_text("timeout_s = 50\n[verify]\ntimeout_s = 5\n", encoding="utf-8")
    (tmp_path / "c.toml").write_text(
        'kind = "verify"\ntimeout_s = 12\nnetworks = ["*.onnx"]\nproperties = ["p*.vnnlib"]\n', encoding="utf-8")
    spec = read_campaign_spec(tmp_path / "c.toml")
    assert [(j.network, j.vnnlib, j.timeout_s) for j in spec.jobs] == [
        ("abs.onnx", "p0.vnnlib", 12.0), ("abs.onnx", "p1.vnnlib", 12.0)]
    (tmp_path / "r.toml").write_text(
        'kind = "repair"\nconfig = "run.toml"\nproperties = ["p0.vnnlib", "p1.vnnlib"]\n'
        '[[jobs]]\nnetwork = "abs.onnx"\ntimeout_s = 99\n', encoding="utf-8")
    repair = read_campaign_spec(tmp_path / "r.toml")
    assert repair.kind == "repair" and len(repair.jobs) == 1
    job = repair.jobs[0]
    assert (job.vnnlib, job.timeout_s, job.task) == ("p0.vnnlib;p1.vnnlib", 99.0, "vnnlib")
    assert job.config_path == str((tmp_path / "run.toml").resolve()) and job.settings_digest
    # Changing the run configuration changes the job (it is redone, not resumed).
    (tmp_path / "run.toml").write_text("timeout_s = 60\n", encoding="utf-8")
    assert read_campaign_spec(tmp_path / "r.toml").jobs[0].job_id != job.job_id


@pytest.mark.parametrize(("text", "message"), [
    ('kind = "verify"\nnetworks = ["abs.onnx"]\nproperties = ["p0.vnnlib"]\nwokers = 2\n',
     r"c\.toml:4: wokers: unknown key"),
    ('kind = "verfy"\n', r"c\.toml:1: kind: expected one of verify, repair"),
    ('kind = "verify"\ntimeout_s = -3\n', r"c\.toml:2: timeout_s: expected a positive number"),
    ('kind = "verify"\nnetworks = ["nets/*.onnx"]\n', r"networks: the pattern 'nets/\*.onnx' matches no file"),
    ('kind = "verify"\nnetworks = ["missing.onnx"]\n', r"networks: no such network file"),
    ('kind = "verify"\nnetworks = ["abs.onnx"]\n', r"properties: a verify job needs at least one property"),
    ('kind = "verify"\ntask = "acasxu"\n', r"c\.toml:2: task: only repair campaigns take 'task'"),
    ('kind = "repair"\nconfig = "nope.toml"\n', r"config: no such run configuration"),
    ('kind = "verify"\n[[jobs]]\nproperties = ["p0.vnnlib"]\n', r"jobs\[0\]\.network: missing"),
    ('kind = "verify"\n[[jobs]]\nnetwork = "abs.onnx"\nproperty = "p0.vnnlib"\n', r"jobs\[0\]\.property: unknown key"),
    ('kind = "verify"\n', r"the campaign has no job"),
    ('kind = "verify"\nnetworks = ["abs.onnx", "abs.onnx"]\nproperties = ["p0.vnnlib"]\n', r"listed twice"),
    ('kind = = 1\n', r"not valid TOML"),
])
def test_bad_toml_spec_is_one_error_naming_the_line_or_table(tmp_path, text, message):
    write_campaign(tmp_path, THRESHOLDS[:1])
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        read_campaign_spec(tmp_path / "c.toml")


def test_bad_run_configuration_of_a_repair_campaign_is_found_when_reading(tmp_path):
    write_campaign(tmp_path, THRESHOLDS[:1])
    (tmp_path / "run.toml").write_text("[loop]\nmax_roundz = 3\n", encoding="utf-8")
    (tmp_path / "c.toml").write_text('kind = "repair"\nconfig = "run.toml"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"run\.toml:2: loop\.max_roundz: unknown key"):
        read_campaign_spec(tmp_path / "c.toml")


# ----------------------------------------------------------------------------- one job
def test_a_hung_process_is_killed_at_its_budget_with_its_children(tmp_path):
    marker = tmp_path / "grandchild.txt"
    # The child starts a grandchild that would write the marker after 3 s; both must die at 1 s.
    script = tmp_path / "hang.py"
    script.write_text("import subprocess, sys, time\n"
                      "subprocess.Popen([sys.executable, '-c', \"import sys, time; time.sleep(3); "
                      "open(sys.argv[1], 'w')\", sys.argv[1]])\n"
                      "time.sleep(60)\n", encoding="utf-8")
    code = str(script)
    outcome = run_budgeted([sys.executable, code, str(marker)], 1.0, tmp_path / "err.txt")
    assert outcome.exit_code is None and outcome.time_s < 10
    time.sleep(3.5)
    assert not marker.exists()


def test_a_job_that_crashes_is_recorded_as_error_with_its_message(tmp_path):
    campaign = write_campaign(tmp_path / "c", THRESHOLDS[:1])
    job = read_campaign_spec(campaign).jobs[0]
    (tmp_path / "c" / "abs.onnx").write_bytes(b"not an onnx file")
    record = run_job(job, str(tmp_path / "out"))
    assert record["result"] == ERROR and record["exit_code"] == 2
    assert "abs.onnx" in record["message"]
    stored = read_result(tmp_path / "out", job)
    assert stored is not None and stored.to_dict() == record


def test_a_job_over_its_budget_is_recorded_as_timeout(tmp_path):
    campaign = write_campaign(tmp_path / "c", THRESHOLDS[:1])
    job = read_campaign_spec(campaign).jobs[0]
    # A budget too short for the command's start-up (imports take about 2 s): killed at budget + grace.
    fast = Job(**{**{f: getattr(job, f) for f in job.__dataclass_fields__}, "timeout_s": 0.05})
    record = run_job(fast, str(tmp_path / "out"), grace_s=0.05)
    assert record["result"] == "timeout" and record["exit_code"] is None
    assert "killed at its budget" in record["message"]


# ----------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as local:
        yield local


def test_killing_a_worker_mid_run_loses_and_duplicates_nothing_and_a_rerun_does_only_the_missing(
        tmp_path, cluster):
    from distributed import Client

    spec = read_campaign_spec(write_campaign(tmp_path / "c"))
    out = tmp_path / "out"
    killed: list[tuple[int, list]] = []
    with Client(cluster) as probe:
        pids = probe.run(os.getpid)

        def kill_a_busy_worker(kind: str, info: dict) -> None:
            if kind != "tick" or killed:
                return
            busy = {addr: list(keys) for addr, keys in probe.processing().items() if keys}
            if busy:
                addr, keys = next(iter(busy.items()))
                os.kill(pids[addr], signal.SIGKILL)
                killed.append((pids[addr], keys))

        outcome = run_campaign(spec, out, scheduler=cluster.scheduler_address, on_event=kill_a_busy_worker)
    assert killed, "no worker was busy at a tick: the test did not kill anything"
    assert not outcome.interrupted and len(outcome.ran) == len(THRESHOLDS)
    _check_complete(out, len(THRESHOLDS))
    # The job that was running on the killed worker was rerun elsewhere and has its right answer.
    killed_job = next(j for j in spec.jobs if any(k.startswith(j.job_id) for k in killed[0][1]))
    assert read_result(out, killed_job).result in ("sat", "unsat")

    # Resume: nothing is redone; then two results go missing and exactly those two are run.
    again = run_campaign(spec, out, scheduler=cluster.scheduler_address)
    assert again.ran == () and len(again.skipped) == len(THRESHOLDS)
    lost = [spec.jobs[1], spec.jobs[4]]
    kept_before = {j.job_id: read_result(out, j) for j in spec.jobs if j not in lost}
    for job in lost:
        (out / "jobs" / job.job_id / "result.json").unlink()
    third = run_campaign(spec, out, scheduler=cluster.scheduler_address)
    assert sorted(third.ran) == sorted(j.job_id for j in lost)
    assert {j.job_id: read_result(out, j) for j in spec.jobs if j not in lost} == kept_before
    _check_complete(out, len(THRESHOLDS))
    sessions = json.loads((out / "campaign.json").read_text())["sessions"]
    assert [s["ran"] for s in sessions] == [len(THRESHOLDS), 0, 2]
    assert all(s["status"] == "complete" for s in sessions)
    index = (out / "index.html").read_text()
    assert index.count("<tr><td>abs.onnx</td>") == len(THRESHOLDS)


def _campaign_process(campaign: Path, out: Path, *options: str) -> subprocess.Popen:
    # A shell's background job starts with SIGINT ignored; restore the default, as a terminal has it.
    return subprocess.Popen(
        [sys.executable, "-m", "verirepair.cli", "campaign", str(campaign), "--out", str(out), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted (SIGINT)"),
                                                     (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_sigint_stops_the_campaign_keeping_finished_results_and_a_rerun_finishes_it(tmp_path, cluster, signum,
                                                                                  code, word):
    # Six jobs on two workers: when the second result appears at most two more are running, so
    # the interrupt always leaves some job unstarted (with four, both running jobs could finish).
    campaign = write_campaign(tmp_path / "c", THRESHOLDS)
    spec = read_campaign_spec(campaign)
    out = tmp_path / "out"
    proc = _campaign_process(campaign, out, "--workers", "2")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob("jobs/*/result.json"))) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"the campaign ended before it was interrupted: {proc.communicate()}"
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, (stdout, stderr)
    assert word in stderr and "run the same command again" in stderr
    done_first = {j.job_id: read_result(out, j) for j in spec.jobs if read_result(out, j) is not None}
    assert 2 <= len(done_first) < len(spec.jobs)
    sessions = json.loads((out / "campaign.json").read_text())["sessions"]
    assert sessions[-1]["status"] == "interrupted"
    assert len(_rows(out)) == len(done_first)

    # The rerun uses the running test cluster (--scheduler), which saves starting a second one.
    rerun = _campaign_process(campaign, out, "--scheduler", cluster.scheduler_address)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (stdout, stderr)
    assert f"{len(done_first)} already finished, {len(spec.jobs) - len(done_first)} to run" in stdout
    assert "done," not in stdout      # a pipe gets lines, not the live bar
    _check_complete(out, len(spec.jobs))
    assert {k: read_result(out, j) for j in spec.jobs for k in [j.job_id] if k in done_first} == done_first
    sessions = json.loads((out / "campaign.json").read_text())["sessions"]
    assert sessions[-1]["ran"] == len(spec.jobs) - len(done_first) and sessions[-1]["status"] == "complete"


def test_cli_refuses_a_bad_scheduler_address_in_one_line(tmp_path, capsys):
    from verirepair.cli import main

    campaign = write_campaign(tmp_path / "c", THRESHOLDS[:1])
    code = main(["campaign", str(campaign), "--out", str(tmp_path / "o"), "--scheduler", "localhost:8786"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "expected an address like tcp://HOST:PORT" in err
    assert not (tmp_path / "o").exists()
    assert main(["campaign", str(tmp_path / "c" / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "no such campaign specification" in capsys.readouterr().err


def test_abs_network_helper_matches_the_hand_computed_answers(tmp_path):
    """Guard of the oracle itself: the |x| network really gives |x|."""
    from verirepair.network import load_network

    net = load_network(write_abs_onnx(tmp_path / "abs.onnx"))
    import numpy as np

    x = np.array([[-1.0], [-0.3], [0.0], [0.8]])
    assert np.allclose(net.forward(x)[:, 0], np.abs(x[:, 0]))
