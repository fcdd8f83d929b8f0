"""The live progress display: its clock moves while nothing happens, and decided verdicts are printed."""

from __future__ import annotations

import io
import time

from rich.console import Console

from verirepair.cli import repair_commands


def test_the_clock_is_redrawn_every_second_on_a_terminal(monkeypatch):
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    updates: list[str] = []
    real_status = terminal.status

    def recording_status(*args, **kwargs):
        status = real_status(*args, **kwargs)
        original = status.update

        def update(text, *a, **k):
            updates.append(str(text))
            return original(text, *a, **k)

        status.update = update
        return status

    monkeypatch.setattr(terminal, "status", recording_status)
    monkeypatch.setattr(repair_commands, "console", terminal)

    def job(emit):
        emit("verify", {"text": "phi1 running"})
        time.sleep(3.4)                       # a long verification: no event for 3.4 s
        emit("verify", {"text": "phi1: holds (3.4 s)", "log": True})
        return "done"

    assert repair_commands.run_with_progress(job) == "done"
    silent = [u for u in updates if "phi1 running" in u]
    assert len(silent) >= 4                    # the event itself, then at least 3 ticks
    seconds = {u.rsplit("[dim]", 1)[1].split(" s")[0] for u in silent}
    assert {"1", "2", "3"} <= seconds           # the elapsed time moved during the silence
    assert "phi1: holds (3.4 s)" in terminal.file.getvalue()


def test_in_a_pipe_each_logged_event_is_one_line(monkeypatch):
    pipe = Console(file=io.StringIO(), force_terminal=False, width=40)
    monkeypatch.setattr(repair_commands, "console", pipe)

    def job(emit):
        emit("verify", {"text": "phi2: violated (0.1 s) " + "x" * 80, "log": True})
        emit("repair", {"text": "not logged"})
        return None

    repair_commands.run_with_progress(job)
    lines = pipe.file.getvalue().splitlines()
    assert len(lines) == 1 and "phi2: violated" in lines[0] and "not logged" not in lines[0]
