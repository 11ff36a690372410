"""Parsing untrusted PDF, Word and HTML files under limits, in a child process.

A PDF, a ``.docx`` (a zip of XML) and a web page can all be made to expand without end: a
flate bomb, a page tree whose nodes point at the same children again and again, a zip member
that inflates to gigabytes of whitespace, tags nested thousands deep. So every such file is read
by :class:`SafeParser` in a separate Python process (``python -m rag.ingest.safe_parse``) that

* runs under ``resource.setrlimit``: ``RLIMIT_AS`` (address space: ``parse_memory_mb``) and
  ``RLIMIT_CPU`` (CPU seconds per file, a back-stop for the wall-clock limit), no core dumps;
* is given a wall-clock deadline per file (``parse_timeout``): past it the process is killed;
* checks the limits of :class:`ParseLimits` itself before and while it parses (rag/ingest/formats.py):
  the expanded size (zip members, PDF streams, extracted text) at most ``expand_ratio`` times
  the file size and never more than ``max_text_chars``; at most ``max_pages`` PDF pages,
  ``max_paragraphs`` paragraphs, ``max_nesting`` levels of HTML/XML nesting.

A file that breaks a limit, or kills the process, raises :class:`~rag.ingest.limits.SkipFile` with
the reason (:class:`~rag.ingest.limits.SkipTooLarge` when it is "too big once expanded": uploads
answer 413 for it, 422 for the rest). The process is started once per :class:`SafeParser` (one
per folder load) and reused for the next file; after a kill a fresh one is started.

Why a child process and not only the libraries' own limits: pypdf has decompression limits, but
python-docx, lxml and trafilatura have none for memory, and no library bounds time. Only a
separate process can be stopped at any moment and have its memory capped without touching the
server's own. A plain ``subprocess`` (not ``multiprocessing``) is used so nothing of the parent
(threads, loaded models, the server's sockets) is forked into it, and it imports only the parsers.

The protocol on the child's stdin/stdout: one JSON header line ``{"kind": ..., "size": n}``
followed by ``n`` bytes; the answer is an 8-byte big-endian length and a JSON object.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag.ingest.limits import MB, ParseLimits, SkipFile, SkipTooLarge

# ============================================================================ the parent side

def extract(kind: str, data: bytes, limits: ParseLimits | None = None, *,
            parser: "SafeParser | None" = None) -> tuple[str | None, str, dict[str, Any]]:
    """(title, text, metadata) of a file's bytes; ``kind`` is "pdf", "docx" or "html". Parsed in a
    limited child process: ``parser``'s, or one started for this file."""
    if parser is not None:
        return parser.extract(kind, data)
    with SafeParser(limits) as one:
        return one.extract(kind, data)


class SafeParser:
    """Parses files in a limited child process; one file at a time (thread-safe), the process reused."""

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self.limits = limits or ParseLimits()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> "SafeParser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def extract(self, kind: str, data: bytes) -> tuple[str | None, str, dict[str, Any]]:
        """(title, text, metadata) of a PDF/DOCX/HTML file's bytes, or ``SkipFile`` with the reason."""
        with self._lock:
            answer = self._ask(kind, data)
        if answer.get("ok"):
            return answer["title"], answer["text"], answer["meta"]
        raise (SkipTooLarge if answer.get("too_large") else SkipFile)(answer["reason"])

    # ---- the child process
    def _start(self) -> subprocess.Popen:
        root = str(Path(__file__).resolve().parents[1])  # this copy of the package, wherever the caller runs
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.Popen([sys.executable, "-m", "rag.ingest.safe_parse", json.dumps(asdict(self.limits))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=env, close_fds=True, start_new_session=True)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.kill()
        except OSError:
            pass
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def _ask(self, kind: str, data: bytes) -> dict[str, Any]:
        if self._proc is None or self._proc.poll() is not None:
            self._stop()
            self._proc = self._start()
        proc = self._proc
        deadline = time.monotonic() + self.limits.timeout
        try:
            proc.stdin.write(json.dumps({"kind": kind, "size": len(data)}).encode() + b"\n" + data)
            proc.stdin.flush()
            head = self._read(proc, 8, deadline)
            (n,) = struct.unpack(">Q", head) if head is not None and len(head) == 8 else (None,)
            body = self._read(proc, n, deadline) if n is not None and n <= 8 * self.limits.max_text_chars + MB else None
        except (BrokenPipeError, ConnectionResetError, OSError):
            body = None
        if body is not None:
            return json.loads(body)
        timed_out = time.monotonic() >= deadline
        self._stop()  # killed, or it died: the next file gets a fresh process
        return {"ok": False, **self._death(proc, timed_out)}

    @staticmethod
    def _read(proc: subprocess.Popen, n: int, deadline: float) -> bytes | None:
        fd = proc.stdout.fileno()
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            part = os.read(fd, min(n - len(out), 1 << 20))
            if not part:  # the process ended
                return None
            out += part
        return bytes(out)

    def _death(self, proc: subprocess.Popen, timed_out: bool) -> dict[str, Any]:
        lim = self.limits
        if timed_out:
            return {"reason": f"took longer than {lim.timeout:g} s to read (RAG_PARSE_TIMEOUT); "
                              "a damaged or hostile file?"}
        code = proc.returncode
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return {"reason": f"used more than {lim.timeout:g} s of processor time to read (RAG_PARSE_TIMEOUT)"}
        if code == MEMORY_EXIT:
            return {"too_large": True, "reason": f"needs more than {lim.memory_mb} MB of memory to read "
                                                 "(RAG_PARSE_MEMORY_MB)"}
        return {"reason": f"the parser stopped on this file (exit status {code}); a damaged or hostile file?"}


MEMORY_EXIT = 86  # the child's exit status when it ran out of its address space before it could answer


# ============================================================================ the child side

def _set_limits(limits: ParseLimits) -> None:
    import resource

    for which, value in ((resource.RLIMIT_AS, limits.memory_mb * MB), (resource.RLIMIT_CORE, 0)):
        try:
            soft, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


def _cpu_budget(seconds: float) -> None:
    """RLIMIT_CPU counts the whole life of the process: allow ``seconds`` more from now."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    now = used.ru_utime + used.ru_stime
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    want = int(now + seconds) + 2
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (want, hard))
    except (ValueError, OSError):
        pass


def _answer(out, obj: dict[str, Any]) -> None:
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    out.write(struct.pack(">Q", len(body)) + body)
    out.flush()


def _serve(limits: ParseLimits) -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library that prints cannot corrupt the answers
    inp = sys.stdin.buffer
    _set_limits(limits)
    from rag.ingest.formats import EXTRACTORS  # imported in the child only: the parsers stay out of the parent

    while True:
        line = inp.readline()
        if not line:
            return
        req = json.loads(line)
        data = inp.read(req["size"])
        _cpu_budget(limits.timeout)
        try:
            title, text, meta = EXTRACTORS[req["kind"]](data, limits)
            reply = {"ok": True, "title": title, "text": text, "meta": meta}
        except SkipTooLarge as e:
            reply = {"ok": False, "too_large": True, "reason": str(e)}
        except SkipFile as e:
            reply = {"ok": False, "reason": str(e)}
        except MemoryError:
            reply = {"ok": False, "too_large": True,
                     "reason": f"needs more than {limits.memory_mb} MB of memory to read (RAG_PARSE_MEMORY_MB)"}
        except RecursionError:
            reply = {"ok": False, "reason": "nested too deeply to read (a hostile file?)"}
        except Exception as e:  # a parser failing in a way nobody foresaw: this file only
            reply = {"ok": False, "reason": f"cannot be read ({type(e).__name__}: {str(e)[:160]})"}
        del data
        try:
            _answer(out, reply)
        except MemoryError:
            os._exit(MEMORY_EXIT)


if __name__ == "__main__":
    try:
        _serve(ParseLimits(**json.loads(sys.argv[1])))
    except MemoryError:
        os._exit(MEMORY_EXIT)
