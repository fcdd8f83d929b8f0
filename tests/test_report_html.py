"""report.html: one self-contained page, status first, every plot embedded, links that resolve.

The reports are the hand-built ones of test_report.py (demo network, every status without a
repair).  A headless browser (Debian's ``chromium``) renders the page when one is installed;
see the README for how to enable that test.
"""

from __future__ import annotations

import base64
import html.parser
import os
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

import test_report as base
from verirepair.demo import demo_paths
from verirepair.outcome import PipelineStatus
from verirepair.properties import parse_vnnlib
from verirepair.task import RepairTask

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Browsers the rendering test tries, in order (Debian's package is ``chromium``).
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class _Page(html.parser.HTMLParser):
    """Collects what the tests look at: elements in order, images, links, table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    net_path, prop_paths = demo_paths()
    (tmp_path / "inputs").mkdir()
    shutil.copy(net_path, tmp_path / "inputs" / "demo.onnx")
    monkeypatch.chdir(tmp_path)
    return tmp_path, [(p.stem, parse_vnnlib(p)) for p in prop_paths]


def _report(workdir, status: PipelineStatus, after: str) -> Path:
    first, second = workdir[1][0][0], workdir[1][1][0]
    _, folder, _ = base._write(status, workdir, {first: after, second: "holds"})
    return Path(folder)


def test_repaired_page_puts_certified_first_and_embeds_every_plot(workdir):
    folder = _report(workdir, PipelineStatus.REPAIRED, "holds")
    page = _parse(folder / "report.html")
    body = [t for t in page.tags if t[0] not in ("html", "head", "meta", "title", "style", "body")]
    assert body[0][0] == "div" and body[0][1].get("id") == "status" and "good" in body[0][1]["class"]
    raw = (folder / "report.html").read_text(encoding="utf-8")
    body = raw[raw.index("<body>") + len("<body>"):].lstrip()
    assert body.startswith('<div class="banner good" id="status">CERTIFIED: demo: repaired; all 2 properties '
                           "(demo_prop_1, demo_prop_2) proven on the delivered network</div>")
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 3 and len(images) == len(pngs)
    embedded = {base64.b64decode(a["src"].split(",", 1)[1]) for a in images}
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)
    assert embedded == {p.read_bytes() for p in pngs} and all(e.startswith(PNG_MAGIC) for e in embedded)
    # The per-property table, before and after.
    assert "demo_prop_1" in page.text and "violated" in page.text and page.text.count("holds") >= 3


def test_page_needs_nothing_from_the_network_and_its_links_resolve(workdir):
    folder = _report(workdir, PipelineStatus.REPAIRED, "holds")
    page = _parse(folder / "report.html")
    sources = [a.get("src") or a.get("href") for t, a in page.tags if t in ("img", "script", "link", "iframe")]
    assert all(s and s.startswith("data:") for s in sources)          # nothing fetched, no script
    hrefs = [a["href"] for t, a in page.tags if t == "a"]
    assert hrefs and not any("://" in h for h in hrefs)
    for href in hrefs:
        assert (folder / urllib.parse.unquote(href)).exists(), href


def test_partial_page_says_not_certified_first(workdir):
    folder = _report(workdir, PipelineStatus.PARTIAL, "timeout")
    page = _parse(folder / "report.html")
    status = next(a for t, a in page.tags if t == "div")
    assert "bad" in status["class"]
    assert next(t for t in page.text if t.startswith(("CERTIFIED", "NOT CERTIFIED"))).startswith("NOT CERTIFIED")
    assert "after (NOT certified)" in page.text


class _FigureTask(RepairTask):
    """A task whose report adds one figure (or fails to, with ``fail``)."""

    def report_figures(self, original, repaired, property_names, rng, repaired_label="repaired", deadline=None):
        if self.metadata.get("fail"):
            raise RuntimeError("planted failure")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [0, 1])
        fig.suptitle(", ".join(property_names) + " / " + repaired_label)
        return [("Task figure", fig)]


@pytest.mark.parametrize("fail", [False, True])
def test_a_task_adds_its_figures_and_a_failing_one_does_not_stop_the_report(workdir, monkeypatch, fail):
    def task_factory(*args, **kwargs):
        return _FigureTask(*args, **{**kwargs, "metadata": {"fail": fail}})

    monkeypatch.setattr(base, "RepairTask", task_factory)
    folder = _report(workdir, PipelineStatus.REPAIRED, "holds")
    figures = sorted(folder.glob("task_*.png"))
    page = (folder / "report.html").read_text()
    markdown = (folder / "report.md").read_text()
    if fail:
        assert figures == [] and "Task figure" not in page
    else:
        assert [f.name for f in figures] == ["task_1_task_figure.png"]
        assert "Task figure" in page and "task_1_task_figure.png" in markdown
        assert page.count("data:image/png;base64,") == 4


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.mark.skipif(_browser() is None, reason="no headless browser installed (apt-get install chromium "
                                                "enables this test; see README, 'report.html')")
def test_a_real_browser_renders_the_page_with_its_images_and_table(workdir, tmp_path):
    folder = _report(workdir, PipelineStatus.REPAIRED, "holds")
    # A copy of the page with a probe that writes what the browser decoded into the DOM.
    probe = folder / "probe.html"
    probe.write_text((folder / "report.html").read_text().replace(
        "</body>", "<script>document.body.setAttribute('data-probe', [...document.images]"
                   ".map(i => i.complete && i.naturalWidth > 0 ? 'ok' : 'broken').join(',') + "
                   "'|rows=' + document.querySelectorAll('table tr').length);</script></body>"), encoding="utf-8")
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           probe.resolve().as_uri()], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    marker = done.stdout.split('data-probe="', 1)[1].split('"', 1)[0]
    images, rows = marker.split("|rows=")
    assert images.split(",") == ["ok"] * 3
    assert int(rows) >= 8
    shot = tmp_path / "shot.png"
    subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,900", probe.resolve().as_uri()], capture_output=True, timeout=120, env=env)
    assert shot.read_bytes().startswith(PNG_MAGIC)
    assert len(np.unique(np.frombuffer(shot.read_bytes(), dtype=np.uint8))) > 16
