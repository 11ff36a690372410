"""Issue 25 point 8: a second `rag index` on an index another process is writing says it waits for
that process's lock, and gives up after RAG_LOCK_TIMEOUT with a clear message (the index untouched)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys

from tests.conftest import ARTICLES, REPO


def test_a_second_rag_index_says_it_waits_and_gives_up_after_the_bounded_wait(tmp_path):
    data, index = tmp_path / "articles", tmp_path / "index"
    data.mkdir()
    shutil.copy(ARTICLES / "07-dochter-kim-jong-un.md", data)
    index.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO),
           "RAG_LOCK_TIMEOUT": "2"}
    with open(index / ".lock", "a+") as held:  # "another process" writing the index: this one
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(f"{os.getpid()}\n")
        held.flush()
        done = subprocess.run([sys.executable, "-m", "rag.cli", "index", "--data", str(data), "--index", str(index)],
                              env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0, said
    assert "Waiting for the index lock" in said and f"pid {os.getpid()}" in said, said
    assert "more than 2 s" in said and "Traceback" not in said, said
    assert not (index / "CURRENT").exists()  # nothing written
