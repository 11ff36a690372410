"""The indexing section of ``rag bench``: full rebuilds (``rag.index.local.indexer.build_index``) of the
synthetic collections of ``plan.index_sizes`` chunks beside the shipped articles' (always measured, by
``BenchContext``), each with the model's raw encode rate on the same chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.backends import encoder_for
from bench.measure import raw_encode_rate


def run(ctx) -> None:
    from rag.index.local.store import IndexStore

    plan, indexing, embedder = ctx.plan, ctx.indexing, ctx.embedder
    for n in plan.index_sizes:
        entry = ctx.collection(n, "indexing")
        if entry["embedding"] == "sampled":
            st = entry["embedding_detail"]
            ctx.notes.append(
                f"indexing {entry['collection']}: {st['real']} of {entry['chunks']:,} chunks embedded for real "
                f"({st['real_seconds']:.1f} s); the other vectors approximated (normalised mean of their sentences' "
                f"real embeddings). Total time and chunks/s are ESTIMATED as (build time without embedding) + "
                f"chunks x (measured seconds per real chunk).")
        # the model's raw encode rate on (a sample of) the same chunks
        store = IndexStore.load(Path(entry["index_dir"]), embedder=embedder)
        sample_n = len(store.chunks) if entry["embedding"] == "real" else min(len(store.chunks), max(plan.embed_sample, 32))
        pick = np.unique(np.linspace(0, len(store.chunks) - 1, sample_n).round().astype(int))
        entry["raw_encode"] = raw_encode_rate(encoder_for(embedder), [store.chunks[i].text for i in pick],
                                              ctx.settings.embed_batch_size)
        entry["raw_encode"]["sampled"] = sample_n < len(store.chunks)
        del store
        indexing.append(entry)
    for e in indexing:
        rate = e.get("chunks_per_s") or e.get("estimated_chunks_per_s")
        if rate and e.get("raw_encode", {}).get("chunks_per_s"):
            e["pipeline_vs_raw_encode"] = round(rate / e["raw_encode"]["chunks_per_s"], 3)


def print_section(report: dict[str, Any], console) -> None:
    from rich.table import Table

    if not report.get("indexing"):
        return
    t = Table(title="Indexing (rag.index.local.indexer.build_index, full rebuild)")
    for c in ("collection", "docs", "chunks", "seconds", "chunks/s", "embedding", "load+chunk s", "embed s",
              "write s", "raw encode chunks/s", "pipeline/raw"):
        t.add_column(c, justify="right" if c not in ("collection", "embedding") else "left")
    for e in report["indexing"]:
        est = e["embedding"] != "real"
        secs = f"~{e['estimated_seconds']:.1f} est." if est and "estimated_seconds" in e else f"{e['seconds']:.1f}"
        rate = f"~{e['estimated_chunks_per_s']:.1f} est." if est and "estimated_chunks_per_s" in e else f"{e.get('chunks_per_s', 0):.1f}"
        emb = e["embedding"]
        if est:
            d = e["embedding_detail"]
            emb = f"sample {d['real']} real"
        st = e.get("stages", {})
        raw = e.get("raw_encode", {})
        t.add_row(e["collection"], str(e["documents"]), f"{e['chunks']:,}", secs, rate, emb,
                  f"{st.get('load_and_chunk', 0):.1f}", f"{st.get('embed', 0):.1f}" + ("*" if est else ""),
                  f"{st.get('write_faiss_bm25_files', 0):.1f}",
                  f"{raw.get('chunks_per_s', 0):.1f}" + (" (sample)" if raw.get("sampled") else ""),
                  f"{e['pipeline_vs_raw_encode']:.2f}" if e.get("pipeline_vs_raw_encode") else "–")
    console.print(t)
    if any(e["embedding"] != "real" for e in report["indexing"]):
        console.print("[dim]* embed s of a sampled build = real sample + approximating the rest, not a full embedding[/]")
