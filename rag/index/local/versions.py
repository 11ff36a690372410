"""Switching index versions on disk: a complete version folder, then one atomic pointer swap.

A build writes its version into ``.staging-<name>``, renames it to ``<name>`` and replaces
``CURRENT`` (``os.replace``: readers see the old version or the new one, never a mix). Versions that
are no longer served are removed under the build lock.

``rag add`` goes one step further (issue 36 point 6: all or nothing under ``kill -9``): its version
is written *before* its article is in the data folder, with ``requires.json`` naming the article's
file (path and inode of the staged file that will be linked there) and the version it replaces.
Until that file is in the data folder the pointer stands for the replaced version
(``rag.index.local.store.resolve_version``); linking the file is the commit; ``settle`` then removes
``requires.json``. ``revert`` puts the replaced version back when the link fails.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from rag.index.local.store import CURRENT, REQUIRES, active_version, pointed_version

__all__ = ["fsync_dir", "new_version_name", "publish_version", "clean_stale_versions", "requirements", "revert",
           "settle", "write_file"]


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_file(path: Path, data: str | bytes) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def new_version_name() -> str:
    return f"v-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def requirements(data_dir: Path, staged: dict[str, Path]) -> list[dict]:
    """What a version for ``staged`` files (relative name -> staged path) waits for: each file at its
    place in the data folder, as the very file staged now (device and inode: a link keeps them)."""
    out = []
    for rel, path in sorted(staged.items()):
        st = os.stat(path)
        out.append({"path": str(Path(data_dir).resolve() / rel), "dev": st.st_dev, "ino": st.st_ino})
    return out


def _point(index_dir: Path, name: str) -> None:
    tmp_pointer = index_dir / f".{CURRENT}.tmp"
    write_file(tmp_pointer, name + "\n")
    os.replace(tmp_pointer, index_dir / CURRENT)  # the atomic switch
    fsync_dir(index_dir)


def publish_version(index_dir: Path, staging: Path, name: str, requires: list[dict] | None = None) -> Path:
    """The complete ``staging`` folder as version ``name``, and ``CURRENT`` pointing at it. With
    ``requires`` the version stands only once those files are in the data folder (see the module)."""
    if requires:
        replaces = active_version(index_dir)
        write_file(staging / REQUIRES, json.dumps({"files": requires,
                                                   "replaces": replaces.name if replaces is not None else None}))
    fsync_dir(staging)
    final = index_dir / name
    os.rename(staging, final)
    _point(index_dir, name)
    clean_stale_versions(index_dir)
    return final


def settle(version: Path) -> None:
    """The files ``version`` waited for are in the data folder: it stands on its own from now on (and
    the version it replaced goes, as after any build)."""
    try:
        os.unlink(version / REQUIRES)
    except FileNotFoundError:
        return
    fsync_dir(version)
    clean_stale_versions(version.parent)


def revert(index_dir: Path, version: Path) -> None:
    """The files ``version`` waited for will not come: point back at the version it replaces (which
    the pointer stood for all along) and remove it."""
    try:
        replaces = json.loads((version / REQUIRES).read_text("utf-8")).get("replaces")
    except (OSError, ValueError):
        return
    if pointed_version(index_dir) == version.name and replaces:
        _point(index_dir, replaces)
    clean_stale_versions(index_dir)


def clean_stale_versions(index_dir: Path) -> None:
    """Remove unfinished staging folders and versions that are no longer served (call under the build
    lock). A version waiting for its files keeps the one it replaces."""
    active = active_version(index_dir)
    pointed = pointed_version(index_dir)
    keep = {p for p in (active, index_dir / pointed if pointed else None) if p is not None}
    for p in index_dir.iterdir() if index_dir.is_dir() else []:
        if p.is_dir() and (p.name.startswith(".staging-") or p.name.startswith("v-")) and p not in keep:
            shutil.rmtree(p, ignore_errors=True)
