"""Facts about the machine and the processes the bench measures: resident memory, the machine's
description for the report, a free loopback port, the load average."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def rss_mb(pid: int | None = None) -> float | None:
    try:
        import psutil

        return round(psutil.Process(pid or os.getpid()).memory_info().rss / 2**20, 1)
    except Exception:
        return None


def peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident memory (VmHWM on Linux; ru_maxrss for this process elsewhere)."""
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if pid is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(kb / (2**20 if sys.platform == "darwin" else 1024), 1)
    return None


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "logical_cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    for name in ("torch", "faiss-cpu", "numpy", "sentence-transformers", "transformers", "onnxruntime", "bm25s",
                 "fastapi", "uvicorn", "langchain-community", "langchain-core"):
        info[name] = _version(name)
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                            timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def loadavg() -> float | None:
    """The machine's 1-minute load average (None where there is none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
