"""Calibrate and measure the pipeline's abstention on eval/qa.jsonl.

    HF_HUB_OFFLINE=1 .venv/bin/python -m tests.pipeline_calibration [--index DIR] [--k 5]

For every question the pipeline answers extractively with the threshold at 0, so that
``Answer.relevance`` (the abstention signal) is recorded; then the abstention rates of answerable
and unanswerable questions are computed for a grid of thresholds with the pipeline's rule (the
threshold for Dutch questions and questions with a Dutch phrasing, half of it for other languages
searched without translation).

It runs twice: without a language model (English questions are searched as they are), and with
the fake Ollama server (tests/fake_ollama.py) scripted to translate the English questions into
Dutch (the hand translations below, written without looking at the articles' wording), through
the real ``ollama`` client -- what the LLM rewrite step would give with a good model. It also
reports how often the passages (sources) and the citations hold an evidence phrase.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

DUTCH_TRANSLATIONS = {
    'q028': 'Hoe oud is Jihyun Parks oudste zoon Chol nu?',
    'q029': 'Hoe lang duurde de reis van Jihyun Park van Noord-Korea naar Groot-Brittannië?',
    'q030': 'In welke plaats bij Manchester woont Jihyun Park?',
    'q031': 'Waarom blijft Jihyun Park zich uitspreken over de verkoop van Noord-Koreaanse vrouwen in China?',
    'q035': 'In welk radioprogramma besprak de auteur het Russische veto?',
    'q044': 'Waar werd de gecensureerde tuinieraflevering gefilmd?',
    'q045': 'Welke koninklijke personen brachten hun jeugd door in Hatfield House?',
    'q048': 'Wat is Ey! Media?',
    'q054': 'Wanneer was de auteur te gast in de Nederlandse cybersecuritypodcast, en welke onderwerpen kwamen aan bod?',
    'q067': 'Wanneer werd de eigen naam van Kim Jong-un openbaar gemaakt?',
    'q068': 'Hoe dacht de Zuid-Koreaanse inlichtingendienst dat Kim Jong-un heette voordat zijn naam bekend werd gemaakt?',
    'q069': 'Welke theorie over een bijnaam opperde het overgelopen partijlid Lee Hyun-seung over de naam van het meisje?',
    'q088': 'Welke Noord-Koreaanse minister van Buitenlandse Zaken bezocht onlangs Poetin?',
    'q089': 'Waarom is de aanval op Charkiv nuttig voor Noord-Koreaanse wapeningenieurs?',
    'q090': 'Aan welke Russische raket is de Hwasong-11 verwant?',
    'q091': 'Hoe noemde het Kremlin Noord-Korea?',
    'q092': 'Welke andere afnemers van Noord-Koreaanse wapens worden naast Rusland genoemd?',
    'q103': 'Welke staten blijven volgens Breuker samenwerken nadat de oorlog in Oekraïne is afgelopen?',
    'q104': 'Welke voorbeelden van Noord-Koreaanse steun aan actoren in het Midden-Oosten geeft Breuker?',
    'q105': 'Waarom zouden de regimes openlijker kunnen optreden over Noord-Koreaanse troepen die voor Rusland vechten?',
    'q106': 'Wat gebeurt er volgens de historicus als het Westen blijft nalaten terug te duwen?',
    'q113': 'Hoe heeft Rusland zijn nauwe band met Noord-Korea laten zien, zowel bij de VN als in persoonlijke contacten met Kim?',
    'q114': 'In welke podcast besprak de auteur Noord-Koreaanse cybercriminaliteit, en welke recorddiefstal wordt aan Noord-Koreaanse hackers toegeschreven?',
    'q123': 'Wie is de huidige president van Zuid-Korea?',
    'q124': 'In welk jaar voerde Noord-Korea zijn eerste kernproef uit?',
    'q125': 'Hoe bak ik zuurdesembrood?',
    'q126': 'Wat is het kookpunt van water op zeeniveau?',
}

def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def load_items() -> list[dict]:
    return [json.loads(line) for line in (REPO / "eval" / "qa.jsonl").read_text("utf-8").splitlines() if line.strip()]


def translating_reply(body: dict) -> str:
    """Fake-LLM reply: the rewrite request gets {"standalone", "dutch"}; an answer request gets a
    fixed cited sentence (generation is not what is measured here)."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if "search engine" in system:
        q = user.rsplit("Latest question:", 1)[-1].strip()
        dutch = BY_QUESTION.get(q, q)
        return json.dumps({"standalone": q, "dutch": dutch})
    return "Zie de eerste passage [1]."


def run(pipeline, items, k: int, generator: str) -> list[dict]:
    rows = []
    for it in items:
        a = pipeline.ask(it["question"], k=k, generator=generator)
        ev = [norm(e) for e in it["evidence"]]
        rows.append({
            "id": it["id"], "answerable": it["answerable"], "lang": it["lang"], "relevance": a.relevance or 0.0,
            "dutch_query": len(a.queries) > 1, "generator": a.generator,
            "evidence_in_sources": any(e in norm(h.chunk.text) for h in a.sources for e in ev) if ev else None,
            "evidence_cited": any(e in norm(c.text) for c in a.citations for e in ev) if ev else None,
        })
    return rows


def rates(rows: list[dict], threshold: float, factor: float) -> dict:
    def abstains(r):
        t = threshold if (r["lang"] == "nl" or r["dutch_query"]) else threshold * factor
        return r["relevance"] < t

    una = [r for r in rows if not r["answerable"]]
    ans = [r for r in rows if r["answerable"]]
    return {
        "unanswerable_abstained": f"{sum(map(abstains, una))}/{len(una)}",
        "answerable_abstained": f"{sum(map(abstains, ans))}/{len(ans)}",
        "answerable_nl": f"{sum(abstains(r) for r in ans if r['lang'] == 'nl')}/{sum(r['lang'] == 'nl' for r in ans)}",
        "answerable_en": f"{sum(abstains(r) for r in ans if r['lang'] == 'en')}/{sum(r['lang'] == 'en' for r in ans)}",
    }


def report(title: str, rows: list[dict]) -> None:
    from rag.pipeline import CROSS_LINGUAL_FACTOR

    print(f"\n== {title}")
    ans = [r for r in rows if r["answerable"]]
    en = [r for r in ans if r["lang"] == "en"]
    print(f"evidence in sources: {sum(bool(r['evidence_in_sources']) for r in ans)}/{len(ans)} "
          f"(English {sum(bool(r['evidence_in_sources']) for r in en)}/{len(en)})")
    print(f"evidence in the cited passages (threshold 0): {sum(bool(r['evidence_cited']) for r in ans)}/{len(ans)} "
          f"(English {sum(bool(r['evidence_cited']) for r in en)}/{len(en)})")
    print("threshold  unanswerable_abstained  answerable_abstained  (nl, en)")
    for t in (0.05, 0.10, 0.125, 0.15, 0.175, 0.20, 0.25, 0.30):
        r = rates(rows, t, CROSS_LINGUAL_FACTOR)
        print(f"{t:9.3f}  {r['unanswerable_abstained']:>22}  {r['answerable_abstained']:>20}  "
              f"({r['answerable_nl']}, {r['answerable_en']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, default=None, help="index folder (built there when missing)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="write the per-question rows here")
    args = ap.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.ERROR)
    sys.path.insert(0, str(REPO))
    from rag.config import Settings
    from rag.llm import OllamaLLM
    from rag.pipeline import Pipeline
    from rag.runtime import open_runtime
    from tests.fake_ollama import FakeOllama

    over = {"abstain_threshold": 0.0}
    if args.index:
        over["index_dir"] = args.index
    settings = Settings(data_dir=REPO / "data" / "articles", **over)
    rt = open_runtime(settings, build_if_missing=True)
    items = load_items()
    plain = run(Pipeline(rt.retriever, None, settings), items, args.k, "extractive")
    report(f"no LLM ({rt.embedder.model_id}, k={args.k})", plain)

    with FakeOllama() as fake:
        fake.reply = translating_reply
        llm = OllamaLLM(host=fake.url, model=settings.llm_model, timeout=10, probe_timeout=2)
        translated = run(Pipeline(rt.retriever, llm, settings), items, args.k, "auto")
        assert all(r["generator"] == "ollama" for r in translated), "the fake LLM did not answer"
    report("English questions with a Dutch translation from the (fake) LLM; its answers cite [1]", translated)
    if args.json:
        args.json.write_text(json.dumps({"plain": plain, "translated": translated}, indent=1), "utf-8")
    return 0


_ITEMS_BY_ID = {it["id"]: it for it in load_items()}
BY_QUESTION = {_ITEMS_BY_ID[i]["question"]: nl for i, nl in DUTCH_TRANSLATIONS.items() if i in _ITEMS_BY_ID}

if __name__ == "__main__":
    sys.exit(main())
