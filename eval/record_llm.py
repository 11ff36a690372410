"""Record a real model's raw answers on a question set, through the ``openai`` backend, as a cassette.

    HF_HUB_OFFLINE=1 .venv/bin/python eval/record_llm.py --llm-url http://127.0.0.1:8081/v1 \
        --model qwen2.5-coder-0.5b --qa eval/qa.jsonl --out tests/data/llm/qwen2.5-coder-0.5b.jsonl

(llama-server with the GGUF: see the README's LLM section.) One JSON line per question: the question,
the prompt the model read (``messages``), the passages it was given (exact spans of the articles, numbered
as in the prompt), the model's raw reply (``raw``, exactly as streamed: before any check), the seconds to
its first piece and to its end, and, for a question the decide step abstained on before any model call,
``"raw": null`` with ``"abstained_by": "retrieval"``. Questions already in ``--out`` are skipped, so an
interrupted run continues where it stopped. Labels are added by hand afterwards (``label``, ``sentences``:
see tests/data/llm/README.md); ``rag eval --replay`` and tests/test_replay.py read them.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from rag.answer.pipeline import Pipeline  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.eval.qaset import load_qa  # noqa: E402
from rag.llms.openai import OpenAILLM  # noqa: E402
from rag.llms.recording import RecordingLLM  # noqa: E402
from rag.runtime import open_runtime  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm-url", required=True, help="the OpenAI-compatible server, e.g. http://127.0.0.1:8081/v1")
    ap.add_argument("--model", required=True, help="the model name the server answers to")
    ap.add_argument("--qa", default=str(REPO / "eval" / "qa.jsonl"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--ids", default="", help="comma-separated question ids (default: all)")
    ap.add_argument("--max-answer-tokens", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()

    settings = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp(prefix="rag-rec-")),
                        openai_base_url=a.llm_url, llm_model=a.model, generator="openai",
                        max_answer_tokens=a.max_answer_tokens, llm_timeout=a.timeout, temperature=0.1)
    rt = open_runtime(settings, build_if_missing=True)
    llm = RecordingLLM(OpenAILLM.from_settings(settings))
    pipeline = Pipeline(rt.retriever, llm, settings)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["id"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    wanted = {i for i in a.ids.split(",") if i}
    types = {d["id"]: d.get("type") for d in (json.loads(x) for x in Path(a.qa).read_text().splitlines() if x.strip())}
    items = [it for it in load_qa(Path(a.qa)) if (not wanted or it.id in wanted) and it.id not in done]
    for i, item in enumerate(items, 1):
        llm.calls.clear()
        t = time.perf_counter()
        answer = pipeline.ask(item.question, generator="openai")
        streams = [c for c in llm.calls if c["kind"] == "stream"]
        record = {"id": item.id, "question": item.question, "lang": item.lang, "answerable": item.answerable,
                  "type": types.get(item.id), "model": a.model}
        if not streams:
            record.update(raw=None, abstained_by="retrieval")
        else:
            call = streams[-1]
            record.update(messages=call["messages"], raw=call["text"], error=call["error"],
                          first_s=round(call["first_s"] or 0, 2), total_s=round(call["total_s"] or 0, 2),
                          passages=[{"n": n, "doc_id": c.doc_id, "title": c.title, "start": c.start, "end": c.end,
                                     "text": c.text} for n, c in enumerate(_passages(pipeline, item.question, call), 1)])
        record["seconds"] = round(time.perf_counter() - t, 1)
        with out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"[{i}/{len(items)}] {item.id} {record['seconds']} s: {str(record.get('raw'))[:100]!r}", flush=True)


def _passages(pipeline: Pipeline, question: str, call: dict):
    """The passages of the prompt, in prompt order: the same steps again (they are deterministic), checked
    against the prompt the model read."""
    chunks = [h.chunk for h in pipeline.passages_for(question)]
    prompt = call["messages"][-1]["content"]
    pos = 0
    for c in chunks:
        at = prompt.find(c.text.strip(), pos)
        if at < 0:
            raise SystemExit(f"the passages of {question!r} differ from the prompt's: the steps are not deterministic")
        pos = at
    return chunks


if __name__ == "__main__":
    main()
