"""A real uvicorn server in a background thread on a free 127.0.0.1 port, for tests that talk HTTP
to ``create_app(...)`` with a runtime the test session already loaded (no index rebuild)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx

from tests.api_fixtures import free_port


@contextmanager
def live_server(app, timeout: float = 30.0, **config) -> Iterator[str]:
    """Serve ``app`` with uvicorn until the block ends; yields the base URL. ``config``: more
    ``uvicorn.Config`` options (e.g. ``http=api.server.timed_protocol(10)``, the protocol of ``rag serve``)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           **config))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not thread.is_alive():
                raise RuntimeError("the test server stopped during start-up")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not answer within {timeout:g} s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
