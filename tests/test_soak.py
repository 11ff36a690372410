"""bench/soak.py (issue 36 point 7) runs: a real `rag serve`, asks, uploads, removals, a re-index and a
`rag add` beside it, and a line of RSS figures per report. A minute here; the 30-minute run and its
figures are in docs/memory.md (memory targets live in the benchmark, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ARTICLES, REPO


@pytest.mark.slow
def test_the_soak_reports_rss_and_does_all_its_kinds_of_work(tmp_path):
    out = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, "-m", "bench.soak", "--minutes", "1", "--report-every", "20",
                           "--upload-every", "4", "--reindex-every", "15", "--compare-at", "0.3", "--json", str(out),
                           "--articles", str(ARTICLES)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    samples = report["samples"]
    assert len(samples) >= 3 and all(s["rss_mb"] > 100 for s in samples)
    last = samples[-1]
    assert last["asks"] > 0 and last["searches"] > 0 and last["uploads"] >= 2 and last["removals"] >= 0
    assert last["reindexes"] >= 1 and last["cli_adds"] >= 1, last
    assert last["errors"] == 0, report["errors"]
    # the served version, and during swaps the ones requests still finish on: old versions are let go. A
    # minute here swaps ~15 versions in (an upload every 4 s, removals, re-indexes, rag add), so two swaps
    # can fall within one request: 3 at a sample, back to 1 at the next (measured); a leak would keep growing.
    # (tests/test_retired_versions.py tests the collection itself.)
    assert max(s["mapped_versions"] for s in samples) <= 3
    assert last["uploads"] + last["removals"] + last["reindexes"] + last["cli_adds"] > 3
    assert "growth_pct" in report and "RSS:" in done.stdout
