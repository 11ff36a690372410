"""Helpers for the API and browser tests (tests/test_api.py, test_browser.py, test_injection.py):
building a real index, reading Server-Sent Events, and running ``rag serve`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ARTICLES

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
DATA_DIR = ARTICLES  # the suite's copy of the shipped articles (tests/conftest.py)
RAG_BIN = Path(sys.executable).with_name("rag")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """``[(event name, decoded JSON data), ...]`` from an SSE body (comments and pings skipped)."""
    events = []
    for block in re.split(r"\r?\n\r?\n", text):
        name, data = "message", []
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


def copy_data(dst: Path, src: Path = DATA_DIR) -> Path:
    shutil.copytree(src, dst)
    return dst


@dataclass
class ServeProcess:
    """A ``rag serve`` subprocess on 127.0.0.1."""

    proc: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly on Ctrl+C
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_serve(data_dir: Path, index_dir: Path, ollama_url: str, log_path: Path, *,
                timeout: float = 180.0, extra_env: dict[str, str] | None = None) -> ServeProcess:
    """Start ``rag serve`` (building the index when missing) and wait until /health answers."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OLLAMA_HOST": ollama_url, "RAG_LLM_PROBE_TIMEOUT": "1",
           "TOKENIZERS_PARALLELISM": "false", **(extra_env or {})}
    env.pop("RAG_API_KEY", None)
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(RAG_BIN), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data", str(data_dir), "--index", str(index_dir)],
        stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
    )
    log_file.close()
    return wait_healthy(ServeProcess(proc, f"http://127.0.0.1:{port}", log_path), timeout)


def wait_healthy(server: "ServeProcess", timeout: float):
    """``server`` once its /health answers 200; stopped, with its log in the error, when it exits or
    does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"rag serve exited with {server.proc.returncode}:\n{server.log()[-3000:]}")
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"rag serve did not answer within {timeout:g} s:\n{server.log()[-3000:]}")


def until(check, what: str = "condition", timeout: float = 10.0, every: float = 0.05):
    """Poll ``check()`` until it returns something truthy, at most ``timeout`` seconds (a deadline, not
    a timing assertion); its value."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout:g} s")
        time.sleep(every)
