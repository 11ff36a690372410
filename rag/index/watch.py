"""``rag serve --watch`` (``RAG_WATCH=true``): files dropped into, changed in or removed from the data
folder are indexed as they change.

``DataWatcher`` watches the data folder with ``watchfiles`` in a daemon thread. A burst of changes
(a copy of many files, an editor's save) is gathered until the folder has been quiet for
``quiet_ms`` (at most ``max_wait_ms``), then one incremental build runs: the same build as
``rag index`` (the same loader and skip reasons, the same lock, so a concurrent ``rag add`` or
upload waits its turn), and ``on_built`` is told (the server serves the new version at once).
Hidden files and folders (``.removed/``, the ``.adding-*`` files of ``rag add``) are not indexed,
so changes to them do not start a build.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def _visible(data_dir: Path) -> Callable[[Any, str], bool]:
    def keep(change: Any, path: str) -> bool:
        try:
            parts = Path(path).relative_to(data_dir).parts
        except ValueError:
            return False
        return bool(parts) and not any(p.startswith(".") for p in parts)
    return keep


def describe(report: Any) -> str:
    """One line for the log: what the build did and what it skipped (the reasons of ``rag index``)."""
    what = ", ".join(f"{len(v)} {k}" for k, v in (("added", report.added), ("changed", report.changed),
                                                      ("removed", report.removed)) if v) or "no changes"
    line = f"data folder changed: {what}; index: {report.documents} documents, {report.chunks} chunks"
    if report.skipped:
        line += "; skipped: " + "; ".join(f"{s.path}: {s.reason}" for s in report.skipped)
    return line


class DataWatcher:
    """Watches ``data_dir`` and runs ``build()`` after each burst of changes (see the module doc)."""

    def __init__(self, data_dir: Path, build: Callable[[], Any], *, on_built: Callable[[Any], None] | None = None,
                 quiet_ms: int = 300, max_wait_ms: int = 2000) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._build = build
        self._on_built = on_built
        self.quiet_ms = quiet_ms
        self.max_wait_ms = max_wait_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.builds = 0
        self.last_error: str | None = None
        self.serve_now: Callable[[], Any] | None = None  # set by the server: swap the new version in at once

    def start(self) -> "DataWatcher":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="data-watcher", daemon=True)
        self._thread.start()
        log.info("watching %s for new, changed and removed articles", self.data_dir)
        return self

    def stopping(self) -> bool:
        """Has ``stop()`` been called (a build running then stops between embedding batches)?"""
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        from watchfiles import watch

        for changes in watch(self.data_dir, watch_filter=_visible(self.data_dir), debounce=self.max_wait_ms,
                             step=self.quiet_ms, stop_event=self._stop, yield_on_timeout=False, raise_interrupt=False):
            if self._stop.is_set():
                break
            log.info("%d change(s) in %s: updating the index", len(changes), self.data_dir)
            self.build_once()

    def build_once(self) -> Any:
        """One incremental build now; errors are logged (the server keeps serving what it has)."""
        try:
            report = self._build()
        except Exception as e:
            self.last_error = str(e)
            log.warning("indexing the changed data folder failed: %s", e)
            return None
        self.builds += 1
        self.last_error = None
        log.info("%s", describe(report))
        if self._on_built is not None:
            try:
                self._on_built(report)
            except Exception as e:
                log.warning("serving the new index failed: %s", e)
        return report
