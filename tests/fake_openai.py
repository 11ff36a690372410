"""A fake OpenAI-compatible server for tests (what llama-server, vLLM and LM Studio speak):
real HTTP on 127.0.0.1, driven like :class:`tests.fake_ollama.FakeOllama` (same attributes, same modes).

* ``GET /v1/models`` -> ``{"object": "list", "data": [{"id": model, "object": "model", ...}]}``
* ``POST /v1/chat/completions`` -> with ``"stream": true`` Server-Sent Events (chunked
  ``text/event-stream``): ``data: {chat.completion.chunk}`` lines -- a role delta, content deltas,
  a last chunk with ``finish_reason``, a usage chunk (``choices: []``) when
  ``stream_options.include_usage`` -- and ``data: [DONE]``; else one ``chat.completion`` object.
  Unknown model -> 404 ``{"error": {"message": "The model `x` does not exist.", ...}}`` (vLLM's words).
* anything else -> 404 ``{"error": {"message": "File Not Found", ...}}`` (llama-server's).

Scripting as for the fake Ollama: ``reply``, ``mode`` (``model_missing``, ``slow``, ``break_stream``,
``http_500``, ``garbage``, ``stream_error`` (an ``{"error": ...}`` event after ``break_after`` pieces),
``broken``, ``stream_garbage``, ``stall``, ``drip``), ``piece_delay``, ``break_after``, ``slow_seconds``,
``error_message``, ``models``. ``thinking`` is sent as ``delta.reasoning_content`` pieces before the
answer (llama-server's ``--reasoning-format deepseek``), or, with ``thinking_in_content = True``, as a
``<think>...</think>`` block in the content. ``api_key``: when set, requests without
``Authorization: Bearer <api_key>`` get 401.

Recording: ``requests``, ``chat_requests`` / ``last_chat`` (the ``/v1/chat/completions`` bodies),
``disconnects`` and ``wait_for_disconnects`` -- as for the fake Ollama.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fake_ollama import DEFAULT_MODEL, GARBAGE, FakeOllama, _Handler, closed_port_url, split_pieces

__all__ = ["DEFAULT_MODEL", "FakeOpenAI", "closed_port_url"]

CREATED = 1_760_000_000


class FakeOpenAI(FakeOllama):
    chat_path = "/v1/chat/completions"
    name = "fake-openai"

    def reset(self) -> None:
        super().reset()
        self.thinking_in_content: bool = False
        self.api_key: str | None = None

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def has_model(self, name: str) -> bool:
        return self.mode != "model_missing" and name in self.models

    def _handler_class(self) -> type:
        return _OpenAIHandler

    def __repr__(self) -> str:
        return f"FakeOpenAI(url={self.base_url!r}, mode={self.mode!r}, running={self.running})"


def _error(message: str, kind: str, code: int) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _OpenAIHandler(_Handler):
    fake: FakeOpenAI
    server_version = "FakeOpenAI"

    def _event(self, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._chunk(b"data: " + data + b"\n\n")

    def _dispatch(self, method: str, path: str, raw: bytes, body: Any) -> None:
        fake = self.fake
        routes = {("GET", "/v1/models"): self._models, ("POST", "/v1/chat/completions"): self._completions}
        route = routes.get((method, path))
        if route is None:
            return self._send(404, _error("File Not Found", "not_found_error", 404))
        if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return self._send(401, _error("Invalid API Key", "authentication_error", 401))
        mode = fake.mode
        if mode == "slow":
            if not self._wait(fake.slow_seconds):
                self.close_connection = True
                return fake._record_disconnect(path)
            if not fake.running:
                return self._drop_connection()
        elif mode == "http_500":
            return self._send(500, _error(fake.error_message, "server_error", 500))
        elif mode == "garbage":
            return self._send(200, GARBAGE, "text/html")
        elif mode == "broken":
            return self._reset_connection()
        if method == "POST" and body is None:
            return self._send(400, _error("invalid JSON in the request body", "invalid_request_error", 400))
        route(body)

    def _models(self, body: Any) -> None:
        self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "created": CREATED,
                                                      "owned_by": "llamacpp"} for m in self.fake.installed()]})

    def _completions(self, body: dict) -> None:
        fake = self.fake
        model = body.get("model") or ""
        if not fake.has_model(model):
            return self._send(404, _error(f"The model `{model}` does not exist.", "NotFoundError", 404))
        pieces = fake.pieces_for(body)
        trace = fake.thinking
        trace = (split_pieces(trace) if isinstance(trace, str) else [str(p) for p in trace]) if trace else []
        finish = "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces, finish = pieces[:limit], "length"
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
        usage = {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": len(pieces),
                 "total_tokens": max(1, prompt_chars // 4) + len(pieces)}
        if fake.thinking_in_content and trace:
            pieces, trace = ["<think>", *trace, "</think>", *pieces], []
        cid, mode = f"chatcmpl-fake{len(fake.requests)}", fake.mode

        if not body.get("stream"):
            if mode == "stall":
                return self._stall(fake)
            if mode == "stream_garbage":
                return self._send(200, GARBAGE, "application/json")
            message = {"role": "assistant", "content": "".join(pieces)}
            if trace:
                message["reasoning_content"] = "".join(trace)
            data = json.dumps({"id": cid, "object": "chat.completion", "created": CREATED, "model": model,
                               "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                               "usage": usage}).encode()
            if mode == "drip":
                return self._drip(data)
            if mode in ("break_stream", "stream_error"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                return self._drop_connection()
            return self._send(200, data)

        def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> dict:
            return {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event(chunk({"role": "assistant", "content": None}))
        for piece in trace:
            self._event(chunk({"reasoning_content": piece}))
            if fake.piece_delay:
                time.sleep(fake.piece_delay)
        for i, piece in enumerate(pieces):
            if mode in ("break_stream", "stream_error", "stream_garbage", "stall") and i >= fake.break_after:
                break
            self._event(chunk({"content": piece}))
            if fake.piece_delay:
                time.sleep(fake.piece_delay)
        if mode == "break_stream":
            return self._drop_connection()
        if mode == "stall":
            return self._stall(fake)
        if mode == "stream_garbage":
            self._event(GARBAGE)
        elif mode == "stream_error":
            self._event(_error(fake.error_message, "server_error", 500))
        else:
            self._event(chunk({}, finish))
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event({"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                             "choices": [], "usage": usage})
            self._event(b"[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
