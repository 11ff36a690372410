"""A loaded index that follows the index on disk: a running server sees every new index version.

``LiveIndex`` holds one immutable ``Snapshot`` (the loaded runtime, what the app built on it, the
version's name and when it was loaded). A request takes the current snapshot once and uses only
that, so it finishes on the version it started with, whatever happens meanwhile.

Every writer (``rag index``, ``rag add``, the upload and re-index routes, the data-folder watcher)
switches in a new version by replacing the ``CURRENT`` pointer (``rag.index.local.indexer``). The follower
thread reads that one small file every ``interval`` seconds (no scan of the index files); when it
names another version, the new version is loaded beside the old one and the reference is swapped
under a lock. The old version is freed when the last request holding it ends. A version that fails
to load leaves the old one served; the reason is kept in ``reload_error`` (and the same version is
not tried again until the pointer changes). Every server process (``--workers``) follows by itself.

Memory (docs/memory.md): the old version must go once the last request on it has ended. The parts
of a pipeline point at each other (reference cycles), so that moment frees nothing by itself: only a
collection does. So after a swap the follower collects again, 0.5, 1, 2, 4 ... s later (at most every
30 s), for as long as an old version's store is still alive (``Retired``) -- a request that held it
for a minute delays it a minute, never for ever. Each collection hands the freed heap back to the
system (glibc's ``malloc_trim``): without that, each reload's chunks, documents and BM25 arrays stay
in the process's malloc arenas and the RSS creeps up reload by reload.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rag.index.local.store import pointed_version, resolve_version

log = logging.getLogger(__name__)

LOAD_RETRIES = 3  # a version removed while it was being loaded (a newer one came): try the newer one


def read_pointer(index_dir: Path) -> str | None:
    """The name of the active version (what ``CURRENT`` stands for: ``resolve_version``), or None."""
    name = pointed_version(Path(index_dir))
    return resolve_version(Path(index_dir), name) if name else None


def release_memory() -> None:
    """Collect what is unreachable now and give the free heap back to the system (glibc only; a no-op
    elsewhere). Called after a version swap, not per request: it walks the heap (a few ms)."""
    gc.collect()
    if _TRIM is not None:
        try:
            _TRIM(0)
        except Exception:  # noqa: BLE001 -- only an optimisation
            pass


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_TRIM = _malloc_trim()


class Retired:
    """The stores of versions swapped out, until they are gone (see the module doc)."""

    FIRST, LONGEST = 0.5, 30.0  # seconds to the first collection after a swap; the longest wait between two

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[list] = []  # [weak reference, when to collect, the wait after that]

    def add(self, store: Any) -> None:
        try:
            ref = weakref.ref(store)
        except TypeError:  # a store that cannot be referenced weakly: nothing to watch
            return
        with self._lock:
            self._items.append([ref, time.monotonic() + self.FIRST, self.FIRST])

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for ref, _, _ in self._items if ref() is not None)

    def sweep(self) -> None:
        """Collect when an old store still alive is due; forget the ones that are gone."""
        now = time.monotonic()
        with self._lock:
            self._items = [item for item in self._items if item[0]() is not None]
            due = [item for item in self._items if now >= item[1]]
            for item in due:
                item[2] = min(item[2] * 2, self.LONGEST)
                item[1] = now + item[2]
        if due:
            release_memory()


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Snapshot:
    """One loaded index version and what was built on it; never changed once made."""

    runtime: Any
    pipeline: Any
    version: str | None  # the version folder's name (None for a store that follows itself: PostgreSQL)
    loaded_at: str  # ISO 8601, UTC


class LiveIndex:
    """The current ``Snapshot``, swapped for a new one when the index on disk changes (see the module doc).

    ``load()`` opens the active index version (a new runtime), ``make_pipeline(runtime)`` builds what
    requests use on it, ``pointer()`` names the active version cheaply (None: nothing to follow)."""

    def __init__(self, runtime: Any, *, load: Callable[[], Any], make_pipeline: Callable[[Any], Any],
                 pointer: Callable[[], str | None] | None = None, interval: float = 0.5,
                 on_swap: Callable[[Snapshot], None] | None = None) -> None:
        self._load = load
        self._make_pipeline = make_pipeline
        self._pointer = pointer
        self.interval = interval
        self._on_swap = on_swap
        self._swap_lock = threading.Lock()  # the reference swap
        self._load_lock = threading.Lock()  # one load at a time (the follower, or a writer in this process)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: str | None = None  # the pointer value whose load failed (not retried until it changes)
        self.reload_error: str | None = None
        self.retired = Retired()
        self._snap = self._snapshot(runtime)
        release_memory()  # what building the first version left free (embedding batches, parsed files)

    # ---- reading
    def current(self) -> Snapshot:
        return self._snap  # one reference read: atomic

    @property
    def follows(self) -> bool:
        """Is there an index on disk to follow (the local store)?"""
        return self._pointer is not None

    # ---- switching
    def _snapshot(self, runtime: Any) -> Snapshot:
        store = runtime.store
        version = store.path.name if self._pointer is not None and hasattr(store, "path") else None
        return Snapshot(runtime, self._make_pipeline(runtime), version, utc_now())

    def install(self, runtime: Any) -> Snapshot:
        """Serve ``runtime`` from now on (requests already running keep theirs)."""
        snap = self._snapshot(runtime)
        with self._swap_lock:
            old, self._snap = self._snap, snap
            self.reload_error, self._failed = None, None
            if self._on_swap is not None:
                self._on_swap(snap)
        log.info("serving index version %s", snap.version)
        self.retired.add(old.runtime.store)
        del old
        release_memory()  # the old version goes now when no request holds it, and the heap it held
        return snap

    def refresh(self, *, raise_errors: bool = False) -> Snapshot:
        """Load and serve the active version when it is not the one served; the snapshot served after.
        A failed load keeps the old version (``reload_error`` says why); ``raise_errors`` re-raises it."""
        with self._load_lock:
            for attempt in range(LOAD_RETRIES):
                wanted = self._pointer() if self._pointer is not None else None
                if wanted == self._snap.version and self._failed is not None:
                    self.reload_error = self._failed = None  # back on the version served: nothing failed now
                if wanted is None or wanted == self._snap.version or (wanted == self._failed and not raise_errors):
                    return self._snap
                try:
                    runtime = self._load()
                except Exception as e:
                    if self._pointer() != wanted and attempt + 1 < LOAD_RETRIES:
                        continue  # a newer version replaced it during the load: load that one
                    self.reload_error = (f"index version {wanted} could not be loaded ({e}); "
                                         f"still serving {self._snap.version}")
                    self._failed = wanted
                    log.warning("%s", self.reload_error)
                    if raise_errors:
                        raise
                    return self._snap
                return self.install(runtime)
            return self._snap

    # ---- the follower thread
    def start(self) -> None:
        """Follow the index on disk (the local store), and see old versions out (both stores)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._follow, name="index-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
                self.retired.sweep()
            except Exception:  # never let the follower die
                log.exception("following the index failed")
