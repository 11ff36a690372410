"""A ``rag serve`` of the bench's own (``start_server``): a subprocess on a loopback port, its start-up timed
to /health and to the first extractive answer, its memory with its worker processes (``tree_rss_mb``).
Stop it with ``Server.stop()``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import free_port, rss_mb
from rag.config import Settings


@dataclass
class Server:
    proc: subprocess.Popen
    base: str
    log_path: Path
    started: float
    timings: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(index_dir: Path, data_dir: Path, work: Path, settings: Settings, timeout: float = 180.0,
                 question: str = "Wie is Jihyun Park?", workers: int = 1, port: int | None = None) -> Server:
    """``rag serve`` in a subprocess on a loopback port (``port``, else a free one); times start-up to
    /health and to the first extractive answer."""
    import httpx

    port = port or free_port()
    env = dict(os.environ)
    env.update({
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAG_EMBED_MODEL": settings.embed_model,
        "RAG_EMBED_BACKEND": settings.embed_backend, "RAG_INDEX_DIR": str(index_dir), "RAG_DATA_DIR": str(data_dir),
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",  # nobody listens: answers are extractive
    })
    log_path = work / f"serve-{port}.log"
    t0 = time.perf_counter()
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--workers", str(workers)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    server = Server(proc, f"http://127.0.0.1:{port}", log_path, t0)
    try:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            deadline = t0 + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"rag serve exited with {proc.returncode}: {log_path.read_text(errors='replace')[-800:]}")
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"rag serve did not answer /health within {timeout:.0f} s")
                try:
                    r = c.get("/health", timeout=2)
                    if r.status_code == 200 and r.json().get("status") == "ok":
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            server.timings["startup_to_health_s"] = round(time.perf_counter() - t0, 2)
            r = c.post("/api/ask", json={"question": question, "generator": "extractive"})
            server.timings["startup_to_first_answer_s"] = round(time.perf_counter() - t0, 2)
            server.timings["first_answer_status"] = r.status_code
            server.timings["rss_after_start_mb"] = tree_rss_mb(proc.pid)
    except BaseException:
        server.stop()
        raise
    return server


def tree_rss_mb(pid: int) -> dict[str, Any] | float | None:
    """Resident memory of a server and its worker processes: the sum, and the part shared between them
    (the mmap'd index and the model files in the page cache count once in ``pss_total_mb``)."""
    try:
        import psutil

        procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
        if len(procs) == 1:
            return rss_mb(pid)
        rss = sum(p.memory_info().rss for p in procs) / 2**20
        pss = sum(p.memory_full_info().pss for p in procs) / 2**20
        return {"processes": len(procs), "rss_sum_mb": round(rss, 1), "pss_total_mb": round(pss, 1)}
    except Exception:
        return rss_mb(pid)
