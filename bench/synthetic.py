"""Synthetic collections for the bench's large sizes: the shipped articles' own sentences recombined into
new Markdown articles (``synthetic_articles``, ``make_collection``), and ``SampledEmbedder``, which embeds
a sample of a large collection for real and approximates the rest from its sentences' real vectors."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rag.ingest.chunking import sentence_spans
from rag.schema import Document


def squeeze(text: str) -> str:
    """White space squeezed: how a sentence is keyed (not ``rag.text.fold``, which also folds case)."""
    return " ".join(text.split())


def article_sentences(documents: Sequence[Document], min_chars: int = 25) -> list[str]:
    """The articles' own sentences (``rag.ingest.chunking.sentence_spans``), white space folded, headings,
    bylines and other short lines left out, each once, in order."""
    seen: set[str] = set()
    out: list[str] = []
    for doc in documents:
        for s, e in sentence_spans(doc.text):
            t = squeeze(doc.text[s:e])
            if len(t) < min_chars or t.startswith("#") or t in seen:
                continue
            seen.add(t)
            out.append(t)
    return out


def simulate_chunk_count(sizes: Sequence[int], target: int, overlap: int) -> int:
    """How many chunks ``rag.ingest.chunking.chunk_spans`` makes of sentences with these token counts
    (the same packing, with a sentence's size summed instead of re-counted)."""
    from rag.ingest.chunking import pack

    overlap = max(0, min(overlap, target // 2))
    units: list[int] = []
    for s in sizes:
        while s > target:  # long sentences are cut to the target
            units.append(target)
            s -= target
        if s > 0:
            units.append(s)
    return len(pack(units, target, overlap))


def synthetic_articles(sentences: Sequence[str], sizes: Sequence[int], n_chunks: int, *, target_tokens: int,
                       overlap_tokens: int, seed: int = 0) -> tuple[list[tuple[str, str]], int]:
    """Markdown articles made of the given sentences, shuffled and recombined (a title, 3-9 paragraphs
    of 2-5 sentences), until they make about ``n_chunks`` chunks. Returns ``[(file name, text)]`` and
    the expected number of chunks."""
    if not sentences:
        raise ValueError("no sentences to build articles from")
    rng = random.Random(seed)
    articles: list[tuple[str, str]] = []
    produced = 0
    while produced < n_chunks:
        title_words = sentences[rng.randrange(len(sentences))].split()[:7]
        title = " ".join(title_words).rstrip(".,;:!?\"'”") or "Bericht"
        paragraphs, units = [], []
        for _ in range(rng.randint(3, 9)):
            idx = [rng.randrange(len(sentences)) for _ in range(rng.randint(2, 5))]
            paragraphs.append(" ".join(sentences[j] for j in idx))
            units.extend(idx)
        text = f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n"
        produced += simulate_chunk_count([max(1, len(title_words))] + [sizes[j] for j in units], target_tokens,
                                         overlap_tokens)
        articles.append((f"syn-{len(articles):06d}.md", text))
    return articles, produced


def make_collection(out_dir: Path, documents: Sequence[Document], source_dir: Path, n_chunks: int, *,
                    sentences: Sequence[str], sizes: Sequence[int], shipped_chunks: int, target_tokens: int,
                    overlap_tokens: int, seed: int = 0) -> dict[str, Any]:
    """A data folder with the shipped articles plus synthetic ones, about ``n_chunks`` chunks in all."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for doc in documents:
        shutil.copyfile(Path(source_dir) / doc.path, out_dir / Path(doc.path).name)
    articles, expected = synthetic_articles(sentences, sizes, max(0, n_chunks - shipped_chunks), seed=seed,
                                            target_tokens=target_tokens, overlap_tokens=overlap_tokens)
    for name, text in articles:
        (out_dir / name).write_text(text, encoding="utf-8")
    return {"documents": len(documents) + len(articles), "expected_chunks": shipped_chunks + expected}


class SampledEmbedder:
    """Wraps a real embedder for big collections: of a large ``embed_passages`` call, ``sample``
    passages (evenly spread) are embedded for real and timed; the vector of every other passage is
    *approximated* as the normalised mean of the real embeddings of its sentences (``sentence_vectors``,
    computed once), so the dense space keeps the articles' structure. ``stats`` records what was real.
    Everything else (model id, tokens, queries) is the real embedder's."""

    def __init__(self, real, sentence_vectors: dict[str, np.ndarray], sample: int, seed: int = 0) -> None:
        self._real = real
        self.sentence_vectors = sentence_vectors
        self.sample = sample
        self.rng = np.random.default_rng(seed)
        self.stats: dict[str, Any] = {"passages": 0, "real": 0, "real_seconds": 0.0, "approximated": 0,
                                      "approx_seconds": 0.0}

    def __getattr__(self, name):
        return getattr(self._real, name)

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        n = len(texts)
        self.stats["passages"] += n
        if n <= self.sample:
            t = time.perf_counter()
            vecs = self._real.embed_passages(texts)
            self.stats["real"] += n
            self.stats["real_seconds"] += time.perf_counter() - t
            return vecs
        pick = np.unique(np.linspace(0, n - 1, self.sample).round().astype(int)) if self.sample > 0 else np.zeros(0, int)
        out = np.zeros((n, self._real.dimension), dtype=np.float32)
        t = time.perf_counter()
        if len(pick):
            out[pick] = self._real.embed_passages([texts[i] for i in pick])
        self.stats["real"] += len(pick)
        self.stats["real_seconds"] += time.perf_counter() - t
        t = time.perf_counter()
        chosen = set(pick.tolist())
        fallback = out[pick] if len(pick) else None
        for i, text in enumerate(texts):
            if i in chosen:
                continue
            vecs = [self.sentence_vectors[k] for k in (squeeze(text[s:e]) for s, e in sentence_spans(text))
                    if k in self.sentence_vectors]
            if vecs:
                v = np.mean(vecs, axis=0)
            elif fallback is not None:
                v = fallback[self.rng.integers(len(fallback))] + self.rng.normal(0, 0.02, self._real.dimension)
            else:
                v = self.rng.normal(0, 1, self._real.dimension)
            out[i] = v / (np.linalg.norm(v) or 1.0)
        self.stats["approximated"] += n - len(pick)
        self.stats["approx_seconds"] += time.perf_counter() - t
        return np.ascontiguousarray(out, dtype=np.float32)
