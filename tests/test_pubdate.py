"""Article dates (issue 19 point 4): from the metadata, else from a publication line in the text,
else None -- checked on the shipped articles' own lines, and carried by hits and citations through
the index and the API."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from rag.ingest.documents import load_documents
from rag.ingest.pubdate import document_date, from_text, parse_date, publication_date
from rag.schema import Chunk
from tests.conftest import ARTICLES


@pytest.fixture(scope="module")
def shipped_docs():
    return {d.doc_id: d for d in load_documents(ARTICLES).documents}


def test_the_shipped_articles_dates_come_from_their_publication_lines(shipped_docs):
    dates = {doc_id: document_date(d) for doc_id, d in shipped_docs.items()}
    # "Een eerdere versie van dit artikel verscheen op 28 maart 2024 in NRC."
    assert dates["03-spijkerbroek-censuur-tuinierprogramma"] == "2024-03-28"
    # "Een eerdere versie van dit stuk verscheen op 24 januari 2024 in De Groene Amsterdammer."
    assert dates["07-dochter-kim-jong-un"] == "2024-01-24"
    assert dates["09-geavanceerder-wapentuig"] == "2024-01-19"  # "... verscheen op 19 januari 2024 bij NRC."
    # "verscheen op 30 april in NRC": no year, so no date (not a guess)
    assert dates["01-jihyun-park-verkiezingskandidaat"] is None
    # "Op vrijdag 19 januari 2024 was ik te gast bij de podcast": an event in the text, not a publication line
    assert dates["08-het-digitale-front"] is None
    # "sinds januari 2020" in the title and text is not a date either
    assert dates["05-eerste-toeristen-sinds-2020"] is None
    assert sum(v is not None for v in dates.values()) == 3


def test_narration_with_the_same_verb_is_not_a_publication_line(shipped_docs):
    text = shipped_docs["07-dochter-kim-jong-un"].text
    assert "in het openbaar is verschenen" in text  # the verb occurs in the story itself
    paragraph = ("Volgens de Zuid-Koreaanse inlichtingendienst is ze tussen de 10 en 11 jaar oud, en ze verscheen "
                 "op 18 november 2022 voor het eerst in het openbaar, bij de lancering van een intercontinentale raket.")
    assert from_text(paragraph) is None
    # the same date on a line of its own that says the piece appeared is one
    assert from_text(paragraph + "\n\nDit stuk verscheen op 24 januari 2024 in De Groene Amsterdammer.") == "2024-01-24"


@pytest.mark.parametrize("line, expected", [
    ("Gepubliceerd: 3 mei 2023", "2023-05-03"),
    ("Gepubliceerd op di 3 okt. 2023, 14:05", "2023-10-03"),
    ("Published March 28, 2024", "2024-03-28"),
    ("Published: 28 March 2024 · 6 min read", "2024-03-28"),
    ("First published on Thu 2 May 2024 10.00 BST", "2024-05-02"),
    ("Datum: 02-05-2024", "2024-05-02"),
    ("Door Jan Jansen | 2024-03-28", "2024-03-28"),  # an ISO date on a byline at the start
    ("sinds 2009 is het panel actief", None),  # a bare year
    ("Gepubliceerd op 31 februari 2024", None),  # not a real day
    ("Een eerdere versie verscheen op 30 april in NRC.", None),  # no year
])
def test_publication_lines(line, expected):
    assert from_text("# Titel\n\n" + line + "\n\nDe tekst van het artikel.") == expected


def test_an_iso_date_in_the_middle_of_the_text_is_no_byline():
    body = "\n\n".join(f"Alinea {i} van het verhaal over de sancties." for i in range(12))
    assert from_text(body[:200] + "\n\nHet rapport van 2023-06-01 noemde negen ambassades.\n\n" + body) is None


def test_metadata_comes_first_and_must_be_a_full_date():
    text = "Dit artikel verscheen op 28 maart 2024 in NRC."
    assert publication_date({"date": "2023-05-01T10:00:00Z"}, text) == "2023-05-01"
    assert publication_date({"date": "1 mei 2023"}, text) == "2023-05-01"
    assert publication_date({"date": "voorjaar 2023"}, text) == "2024-03-28"  # not a date: the text decides
    assert publication_date({}, "Geen datum hier, alleen 2024.") is None
    assert parse_date("May 1st, 2023") == "2023-05-01"


def test_old_chunk_records_without_a_date_still_load():
    old = {"chunk_id": "a#0", "doc_id": "a", "title": "A", "text": "x", "start": 0, "end": 1, "ordinal": 0}
    assert Chunk.from_dict(old).date is None
    new = Chunk.from_dict({**old, "date": "2024-03-28"})
    assert new.date == "2024-03-28" and Chunk.from_dict(new.to_dict()) == new


def test_the_index_keeps_the_date_and_an_old_index_loads_without_it(shipped_index, embedder, tmp_path):
    from rag.index.local.store import IndexStore, active_version

    store = IndexStore.load(shipped_index, embedder)
    by_doc = {c.doc_id: c.date for c in store.chunks}
    assert by_doc["03-spijkerbroek-censuur-tuinierprogramma"] == "2024-03-28"
    assert by_doc["01-jihyun-park-verkiezingskandidaat"] is None
    # an index written before dates existed: chunks.jsonl without the field
    copy = tmp_path / "old-index"
    shutil.copytree(shipped_index, copy)
    chunks_file = active_version(copy) / "chunks.jsonl"
    rows = [json.loads(line) for line in chunks_file.read_text("utf-8").splitlines() if line]
    chunks_file.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "date"}) + "\n" for r in rows), "utf-8")
    old = IndexStore.load(copy, embedder)
    assert len(old.chunks) == len(store.chunks) and all(c.date is None for c in old.chunks)


def test_hits_and_citations_carry_the_date_over_http(tmp_path, shipped_index, embedder, dead_ollama_url):
    from tests.test_uploads import serve

    ctx, _ = serve(tmp_path, shipped_index, embedder, dead_ollama_url)
    with ctx as url:
        hits = httpx.get(url + "/api/search", params={"q": "spijkerbroek censuur tuinierprogramma", "k": 3}).json()["results"]
        assert hits[0]["doc_id"] == "03-spijkerbroek-censuur-tuinierprogramma" and hits[0]["date"] == "2024-03-28"
        assert hits[0]["date_source"] == "text"  # "Een eerdere versie van dit artikel verscheen op 28 maart 2024"
        assert all("date" in h and "date_source" in h for h in hits)
        a = httpx.post(url + "/api/ask", json={"question": "Wat censureerde Noord-Korea in het tuinierprogramma?",
                                               "generator": "extractive"}, timeout=60).json()
        cited = [c for c in a["citations"] if c["doc_id"] == "03-spijkerbroek-censuur-tuinierprogramma"]
        assert cited and all(c["date"] == "2024-03-28" and c["date_source"] == "text" for c in cited)
        park = httpx.post(url + "/api/ask", json={"question": "Hoe oud is Jihyun Park?", "generator": "extractive"},
                          timeout=60).json()
        assert park["citations"] and all(c["date"] is None and c["date_source"] is None for c in park["citations"]
                                         if c["doc_id"] == "01-jihyun-park-verkiezingskandidaat")
