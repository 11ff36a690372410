"""A fake Ollama server for tests: real HTTP on 127.0.0.1, Ollama's wire protocol.

The official ``ollama`` Python client (and anything else speaking HTTP) works
against it end to end. It implements the few endpoints this project uses:

* ``GET /`` -> ``Ollama is running``
* ``GET /api/version`` -> ``{"version": "0.5.7"}``
* ``GET /api/tags`` -> the installed models (``FakeOllama.models``)
* ``POST /api/show`` -> model details incl. ``model_info["<family>.context_length"]``,
  or 404 ``{"error": "model 'x' not found"}``
* ``POST /api/chat`` -> NDJSON stream (chunked, ``application/x-ndjson``) of
  ``{"model", "created_at", "message": {"role": "assistant", "content": piece}, "done": false}``
  lines and a final ``{"done": true, "done_reason": "stop", ...stats}`` line, or
  one JSON object when ``"stream": false``. Unknown model -> 404
  ``{"error": "model \\"x\\" not found, try pulling it first"}``.

Scripting (all plain attributes, restored by :meth:`FakeOllama.reset`):

* ``reply``: the assistant text -- a ``str``, a ``list[str]`` (the exact stream
  pieces), or a callable ``f(body: dict) -> str | list[str]`` that receives the
  decoded ``/api/chat`` request body (``messages``, ``options``, ``keep_alive``...).
  A string is split into word-sized pieces (``" Amsterdam"``, ``" is"``...).
  Like real Ollama, ``options.num_predict`` caps the number of pieces
  (``done_reason: "length"``).
* ``mode``: ``None`` (normal) or one of :data:`MODES`:

  - ``"model_missing"``: no model is installed (tags empty, show/chat 404);
  - ``"slow"``: every ``/api/*`` request waits ``slow_seconds`` before sending a
    byte (the wait ends early on ``reset()``/``stop()``);
  - ``"break_stream"``: chat sends ``break_after`` pieces, then drops the
    connection without the done line (non-streaming: a truncated body);
  - ``"http_500"``: every ``/api/*`` request gets 500 ``{"error": error_message}``;
  - ``"garbage"``: every ``/api/*`` request gets 200 with a non-JSON body;
  - ``"stream_error"``: chat sends ``break_after`` pieces, then an
    ``{"error": error_message}`` line (what Ollama does when the runner dies);
  - ``"broken"``: every ``/api/*`` connection is cut with a TCP reset right after
    the request is read -- no status line, no byte (the server process died);
  - ``"stream_garbage"``: chat sends ``break_after`` pieces, then a line of
    non-JSON bytes (non-streaming: a 200 with a non-JSON body);
  - ``"stall"``: chat sends ``break_after`` pieces, then sends nothing for
    ``slow_seconds`` before it drops the connection (a model stuck mid-answer;
    non-streaming: nothing at all, like ``"slow"``);
  - ``"drip"``: chat sends its answer one byte every ``drip_seconds`` (streamed or not), so no
    single read ever waits long: only a deadline on the whole call ends it.

  ``"slow"`` and ``"stall"`` watch the connection while they wait: a client that
  leaves is noticed at once (see ``disconnects``).

* ``thinking``: a thinking trace (``str`` or ``list[str]`` of pieces), sent as ``message.thinking``
  pieces before the answer whenever the request's ``think`` is not ``false`` (as a thinking model
  does); ``capabilities``: ``/api/show``'s list (add ``"thinking"`` for a thinking model). A reply
  may also carry ``<think>...</think>`` in its content, as older servers send it.
* ``models``: installed model names (default ``["qwen2.5:7b-instruct"]``);
  ``"x"`` and ``"x:latest"`` are the same model.
* ``context_length``: reported in ``/api/show``'s ``model_info``.

Recording: ``requests`` lists every request as :class:`RecordedRequest`
(``method``, ``path``, ``body`` (decoded JSON or None), ``headers``);
``chat_requests`` / ``last_chat`` give the decoded ``/api/chat`` bodies.
``disconnects`` lists the paths of requests whose client left before the answer
was complete; ``wait_for_disconnects(n, timeout)`` waits until there are ``n``.

Connection refused: :meth:`FakeOllama.stop` (``start()`` brings it back, on the
same port when possible), or use :func:`closed_port_url`.
"""

from __future__ import annotations

import json
import re
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

__all__ = [
    "DEFAULT_MODEL",
    "FakeOllama",
    "MODES",
    "RecordedRequest",
    "closed_port_url",
    "split_pieces",
]

DEFAULT_MODEL = "qwen2.5:7b-instruct"
DEFAULT_REPLY = "Dit is een antwoord van de nep-Ollama."
OLLAMA_VERSION = "0.5.7"
MODES = ("model_missing", "slow", "break_stream", "http_500", "garbage", "stream_error", "broken", "stream_garbage",
         "stall", "drip")
GARBAGE = b"<html><body>502 Bad Gateway \x00\xff not json"

Reply = Union[str, list, Callable[[dict], Union[str, list]]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any  # decoded JSON, or None (no body / not JSON)
    headers: dict[str, str] = field(default_factory=dict)


def split_pieces(text: str) -> list[str]:
    """Split text into token-like stream pieces: each word with its leading whitespace."""
    pieces = re.findall(r"\s*\S+|\s+$", text)
    return pieces or ([text] if text else [])


def closed_port_url() -> str:
    """URL of a 127.0.0.1 port nobody listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _normalize(name: str) -> str:
    name = (name or "").strip()
    if name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _family(model: str) -> str:
    base = model.rsplit("/", 1)[-1].lower()
    if base.startswith("qwen2"):
        return "qwen2"
    if base.startswith("gemma"):
        return "gemma2"
    return "llama"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):  # client went away, server stopped: expected
            return
        super().handle_error(request, client_address)


class FakeOllama:
    """The fake server. ``start()`` it (or use it as a context manager)."""

    chat_path = "/api/chat"  # (tests/fake_openai.py reuses this class with another handler)
    name = "fake-ollama"

    def __init__(self, models: list[str] | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self._default_models = list(models) if models is not None else [DEFAULT_MODEL]
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()  # open client connections, closed by stop()
        self._release = threading.Event()  # set -> "slow" handlers stop waiting
        self._gone = threading.Condition(self._lock)
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[str] = []
        self.reset()

    # ------------------------------------------------------------------ control
    def reset(self) -> None:
        """Back to defaults: normal mode, default reply and models, no recorded requests."""
        # wake handlers still sleeping in "slow" mode from a previous test
        self._release.set()
        self._release = threading.Event()
        self.reply: Reply = DEFAULT_REPLY
        self.mode: str | None = None
        self.models: list[str] = list(self._default_models)
        self.context_length: int = 32768
        self.slow_seconds: float = 30.0
        self.break_after: int = 2
        self.error_message: str = "llama runner process has terminated: exit status 2"
        self.piece_delay: float = 0.0  # seconds between stream pieces
        self.drip_seconds: float = 0.5  # "drip" mode: seconds between bytes
        self.thinking: str | list | None = None
        self.capabilities: list[str] = ["completion", "tools"]
        with self._lock:
            self.requests = []
            self.disconnects = []

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "mode" and value is not None and value not in MODES:
            raise ValueError(f"unknown fake Ollama mode {value!r}; known: {MODES}")
        super().__setattr__(name, value)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> "FakeOllama":
        if self._server is not None:
            return self
        self._release = threading.Event()
        handler = type("_BoundHandler", (self._handler_class(),), {"fake": self})
        try:
            server = _Server((self.host, self.port), handler)
        except OSError:
            if not self.port:
                raise
            server = _Server((self.host, 0), handler)  # old port taken meanwhile
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{self.name}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _handler_class(self) -> type:
        return _Handler

    def stop(self) -> None:
        """Stop listening: new connections are refused. ``start()`` again reuses the port."""
        server, self._server = self._server, None
        self._release.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        # keep-alive connections outlive serve_forever(): cut them so clients see a dead server
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeOllama":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- recording
    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _record_disconnect(self, path: str) -> None:
        with self._gone:
            self.disconnects.append(path)
            self._gone.notify_all()

    def wait_for_disconnects(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``n`` clients have left mid-answer; False if that did not happen within ``timeout``."""
        with self._gone:
            return self._gone.wait_for(lambda: len(self.disconnects) >= n, timeout)

    @property
    def chat_requests(self) -> list[dict]:
        """Decoded bodies of all ``/api/chat`` requests, oldest first."""
        with self._lock:
            return [r.body for r in self.requests if r.path == self.chat_path]

    @property
    def last_chat(self) -> dict:
        chats = self.chat_requests
        if not chats:
            raise AssertionError(f"the {self.name} server received no {self.chat_path} request")
        return chats[-1]

    # ---------------------------------------------------------------- behaviour
    def has_model(self, name: str) -> bool:
        if self.mode == "model_missing":
            return False
        want = _normalize(name)
        return any(_normalize(m) == want for m in self.models)

    def installed(self) -> list[str]:
        return [] if self.mode == "model_missing" else list(self.models)

    def pieces_for(self, body: dict) -> list[str]:
        reply = self.reply
        if callable(reply):
            reply = reply(body)
        if isinstance(reply, str):
            return split_pieces(reply)
        return [str(p) for p in reply]

    def __repr__(self) -> str:
        return f"FakeOllama(url={self.url!r}, mode={self.mode!r}, running={self.running})"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOllama  # set on the per-server subclass
    protocol_version = "HTTP/1.1"
    server_version = "FakeOllama"
    timeout = 60  # seconds an idle keep-alive connection is kept

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    # ---------------------------------------------------------------- plumbing
    def _read_body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return raw, json.loads(raw) if raw else None
        except ValueError:
            return raw, None

    def _send(self, status: int, payload: Any, content_type: str = "application/json; charset=utf-8") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _chunk(self, data: bytes) -> None:
        if self.fake.mode == "drip":
            for i in range(len(data)):
                self._drip_byte(f"1\r\n".encode() + data[i:i + 1] + b"\r\n")
            return
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drip_byte(self, raw: bytes) -> None:
        """One byte (in ``raw``) after ``drip_seconds``; a client that left ends the answer."""
        if not self._wait(self.fake.drip_seconds):
            raise ConnectionResetError("the client left")
        self.wfile.write(raw)
        self.wfile.flush()

    def _drip(self, data: bytes, content_type: str = "application/json; charset=utf-8") -> None:
        """A whole (non-streamed) answer, its body sent one byte every ``drip_seconds``."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        for i in range(len(data)):
            self._drip_byte(data[i:i + 1])

    def _client_gone(self) -> bool:
        """Has the client closed (or reset) its side of the connection?"""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` (less after reset()/stop()), watching the client: False if it left."""
        fake, end = self.fake, time.monotonic() + seconds
        release = fake._release
        while not release.is_set() and time.monotonic() < end:
            if self._client_gone():
                return False
            release.wait(0.02)
        return not self._client_gone()

    def _reset_connection(self) -> None:
        """Cut the connection with a TCP reset (SO_LINGER 0), before any response byte."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _stall(self, fake) -> None:
        """Send nothing more: the client gives up (recorded as a disconnect), or the connection drops."""
        if not self._wait(fake.slow_seconds):
            self.close_connection = True
            return fake._record_disconnect(fake.chat_path)
        return self._drop_connection()

    def _drop_connection(self) -> None:
        """Close the TCP connection abruptly (no terminating chunk, no done line)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self, method: str) -> None:
        fake = self.fake
        raw, body = self._read_body() if method == "POST" else (b"", None)
        path = self.path.split("?", 1)[0]
        fake._record(RecordedRequest(method, path, body, dict(self.headers.items())))
        try:
            self._dispatch(method, path, raw, body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)
            fake._record_disconnect(path)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # ---------------------------------------------------------------- routing
    def _dispatch(self, method: str, path: str, raw: bytes, body: Any) -> None:
        fake = self.fake
        if path == "/" and method == "GET":
            return self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
        routes = {
            ("GET", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/chat"): self._chat,
        }
        route = routes.get((method, path))
        if route is None:
            return self._send(404, b"404 page not found", "text/plain")

        mode = fake.mode
        if mode == "slow":
            if not self._wait(fake.slow_seconds):
                self.close_connection = True
                return fake._record_disconnect(path)
            if not fake.running:
                return self._drop_connection()
        elif mode == "http_500":
            return self._error(500, fake.error_message)
        elif mode == "garbage":
            return self._send(200, GARBAGE, "text/html")
        elif mode == "broken":
            return self._reset_connection()
        if method == "POST" and body is None and path != "/api/version":
            return self._error(400, "invalid request body" if raw else "missing request body")
        route(body)

    def _version(self, body: Any) -> None:
        self._send(200, {"version": OLLAMA_VERSION})

    def _model_entry(self, name: str) -> dict:
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-01-15T10:20:30.123456+01:00",
            "size": 4683087332,
            "digest": "845dbda0ea48ed749caafd9e6037047aa19acfcfd82e704d7ca97d631a0b697e",
            "details": self._details(name),
        }

    def _details(self, name: str) -> dict:
        fam = _family(name)
        return {
            "parent_model": "",
            "format": "gguf",
            "family": fam,
            "families": [fam],
            "parameter_size": "7.6B",
            "quantization_level": "Q4_K_M",
        }

    def _tags(self, body: Any) -> None:
        self._send(200, {"models": [self._model_entry(m) for m in self.fake.installed()]})

    def _show(self, body: dict) -> None:
        name = body.get("model") or body.get("name") or ""
        if not self.fake.has_model(name):
            return self._error(404, f"model '{name}' not found")
        fam = _family(name)
        self._send(
            200,
            {
                "modelfile": f"# Modelfile generated by the fake Ollama\nFROM {name}\n",
                "parameters": 'stop                           "<|im_start|>"\nstop                           "<|im_end|>"',
                "template": "{{ .Prompt }}",
                "details": self._details(name),
                "model_info": {
                    "general.architecture": fam,
                    "general.parameter_count": 7615616512,
                    f"{fam}.context_length": self.fake.context_length,
                    f"{fam}.embedding_length": 3584,
                    f"{fam}.block_count": 28,
                },
                "capabilities": list(self.fake.capabilities),
                "modified_at": "2025-01-15T10:20:30.123456+01:00",
            },
        )

    def _chat(self, body: dict) -> None:
        fake = self.fake
        model = body.get("model") or ""
        if not model:
            return self._error(400, "model is required")
        if not fake.has_model(model):
            return self._error(404, f'model "{model}" not found, try pulling it first')

        pieces = fake.pieces_for(body)
        trace = fake.thinking if body.get("think") is not False else None
        trace = (split_pieces(trace) if isinstance(trace, str) else [str(p) for p in trace]) if trace else []
        done_reason = "stop"
        num_predict = (body.get("options") or {}).get("num_predict")
        if isinstance(num_predict, int) and num_predict > 0 and len(pieces) > num_predict:
            pieces, done_reason = pieces[:num_predict], "length"
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
        final = {
            "model": model,
            "created_at": _now(),
            "done": True,
            "done_reason": done_reason,
            "total_duration": 1_234_567_890,
            "load_duration": 12_345_678,
            "prompt_eval_count": max(1, prompt_chars // 4),
            "prompt_eval_duration": 123_456_789,
            "eval_count": len(pieces),
            "eval_duration": 987_654_321,
        }
        mode = fake.mode

        if body.get("stream", True) is False:
            if mode == "stall":
                return self._stall(fake)
            if mode == "stream_garbage":
                return self._send(200, GARBAGE, "application/json; charset=utf-8")
            content = "".join(pieces)
            msg = {**final, "message": {"role": "assistant", "content": content}}
            if trace:
                msg["message"]["thinking"] = "".join(trace)
            data = json.dumps(msg).encode()
            if mode == "drip":
                return self._drip(data)
            if mode in ("break_stream", "stream_error"):
                # headers promise the full body, then the connection drops half-way
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                return self._drop_connection()
            return self._send(200, data)

        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in trace:
            line = {"model": model, "created_at": _now(),
                    "message": {"role": "assistant", "content": "", "thinking": piece}, "done": False}
            self._chunk(json.dumps(line).encode() + b"\n")
            if fake.piece_delay:
                time.sleep(fake.piece_delay)
        for i, piece in enumerate(pieces):
            if mode in ("break_stream", "stream_error", "stream_garbage", "stall") and i >= fake.break_after:
                break
            line = {
                "model": model,
                "created_at": _now(),
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            self._chunk(json.dumps(line).encode() + b"\n")
            if fake.piece_delay:
                time.sleep(fake.piece_delay)
        if mode == "break_stream":
            return self._drop_connection()
        if mode == "stall":
            return self._stall(fake)
        if mode == "stream_garbage":
            self._chunk(GARBAGE + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        if mode == "stream_error":
            self._chunk(json.dumps({"error": fake.error_message}).encode() + b"\n")
        else:
            self._chunk(json.dumps({**final, "message": {"role": "assistant", "content": ""}}).encode() + b"\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
