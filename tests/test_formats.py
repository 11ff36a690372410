"""PDF, DOCX and saved web pages (rag/ingest/formats.py): extraction, skip reasons, exact offsets, and the PDF
page number on chunks and citations, through a real index (offline model) and the extractive pipeline."""

from __future__ import annotations

import shutil

import pytest

from rag.ingest.documents import load_documents
from tests.conftest import ARTICLES
from tests.doc_files import NO_ARTICLE_PAGE, make_docx, make_pdf, news_page

PAGE1 = ["Het nieuwe ziekenhuis in Pyongyang telt driehonderd bedden voor kinderen.",
         "De bouw duurde volgens de staatsmedia precies elf maanden."]
PAGE2 = ["Op de tweede pagina: de kolenmijn bij Hamhung produceerde vorig jaar",
         "vierhonderdduizend ton antraciet, meldt het persbureau KCNA.",
         "Arbeiders kregen een extra rantsoen rijst als beloning."]
ARTICLE = ["Kim Jong-un heeft in Wonsan een nieuw badresort geopend voor binnenlandse toeristen.",
           "Het resort aan de oostkust biedt plaats aan twintigduizend gasten tegelijk."]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "articles"
    d.mkdir()
    (d / "ziekenhuis.pdf").write_bytes(make_pdf([PAGE1, PAGE2], title="Ziekenhuis en kolenmijn", author="Lee"))
    make_docx(d / "visserij.docx", title=None, heading="Visserij aan de oostkust",
              paragraphs=["De vissersvloot van Sinpo voer dit voorjaar vaker uit dan ooit.",
                          "Volgens waarnemers gaat het om honderden kleine boten."], author="Park")
    (d / "resort.html").write_text(news_page("Nieuw badresort in Wonsan", ARTICLE), "utf-8")
    return d


def test_pdf_docx_and_web_page_are_extracted(folder):
    res = load_documents(folder)
    assert not res.skipped, res.skipped
    docs = {d.path: d for d in res.documents}

    pdf = docs["ziekenhuis.pdf"]
    assert pdf.title == "Ziekenhuis en kolenmijn" and pdf.metadata["author"] == "Lee"
    assert pdf.metadata["file_date"] == "2024-03-05" and pdf.metadata["page_count"] == 2
    p2_start = pdf.metadata["pages"][1][0]
    assert pdf.metadata["pages"] == [[0, 1], [p2_start, 2]]
    assert pdf.text[p2_start:].startswith("Op de tweede pagina: de kolenmijn bij Hamhung produceerde vorig jaar vierhonderdduizend")
    assert "driehonderd bedden" in pdf.text[:p2_start]

    d = docs["visserij.docx"]
    assert d.title == "Visserij aan de oostkust" and d.metadata["author"] == "Park"
    assert d.text.startswith("# Visserij aan de oostkust\n\nDe vissersvloot van Sinpo")

    h = docs["resort.html"]
    assert h.title == "Nieuw badresort in Wonsan"
    assert h.metadata == {"author": "Jan de Vries", "file_date": "2024-03-05", "url": "https://nieuws.example/artikel"}
    assert ARTICLE[0] in h.text and ARTICLE[1] in h.text
    for boilerplate in ("cookies", "Binnenland", "Lees ook", "Raket landt", "Privacy"):
        assert boilerplate not in h.text, boilerplate


def test_unusable_files_are_skipped_with_their_reason(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    good = make_pdf([PAGE1])
    (d / "kapot.pdf").write_bytes(good[: len(good) // 3])
    (d / "geheim.pdf").write_bytes(make_pdf([PAGE1], password="geheim"))
    (d / "scan.pdf").write_bytes(make_pdf([[]]))
    make_docx(d / "leeg.docx", title="Leeg", heading=None, paragraphs=[])
    (d / "nep.docx").write_bytes(b"dit is geen zip-bestand")
    (d / "home.html").write_text(NO_ARTICLE_PAGE, "utf-8")
    (d / "goed.md").write_text("# Goed\n\nDit artikel is in orde.\n", "utf-8")
    res = load_documents(d)
    assert [doc.path for doc in res.documents] == ["goed.md"]
    reasons = {s.path: s.reason for s in res.skipped}
    assert reasons["kapot.pdf"].startswith("damaged PDF")
    assert reasons["geheim.pdf"].startswith("encrypted PDF")
    assert "PDF without text" in reasons["scan.pdf"]
    assert reasons["leeg.docx"] == "empty Word document (no text)"
    assert reasons["nep.docx"].startswith("not a valid Word document")
    assert reasons["home.html"].startswith("web page without an article")


def test_pdf_pages_reach_chunks_and_citations(folder, tmp_path, embedder):
    from rag.config import Settings
    from rag.answer.pipeline import Pipeline
    from rag.runtime import build, open_runtime

    shutil.copy(ARTICLES / "01-jihyun-park-verkiezingskandidaat.md", folder)
    settings = Settings(data_dir=folder, index_dir=tmp_path / "index",
                        chunk_tokens=48, chunk_overlap_tokens=0)
    report = build(settings, embedder)
    assert report.documents == 4 and not report.skipped
    rt = open_runtime(settings, embedder=embedder)
    pdf = rt.store.documents["ziekenhuis"]
    pages = {c.page for c in rt.store.chunks if c.doc_id == "ziekenhuis"}
    assert pages == {1, 2}
    assert all(c.page is None for c in rt.store.chunks if c.doc_id != "ziekenhuis")
    for c in rt.store.chunks:  # exact offsets into the extracted text
        assert rt.store.documents[c.doc_id].text[c.start:c.end] == c.text

    answer = Pipeline(rt.retriever, None, settings).ask("Hoeveel ton antraciet produceerde de kolenmijn bij Hamhung?",
                                                       generator="extractive")
    cited = [c for c in answer.to_dict()["citations"] if c["doc_id"] == "ziekenhuis"]
    assert cited, answer.to_dict()
    assert cited[0]["page"] == 2
    assert pdf.text[cited[0]["start"]:cited[0]["end"]] == cited[0]["text"]
    assert "antraciet" in cited[0]["text"]


WONSAN = ["Waterpark in Wonsan geopend", "Gepubliceerd: 3 mei 2025",
          "In de kustplaats Wonsan heeft Kim Jong-un een waterpark geopend met glijbanen en een golfslagbad",
          "voor duizenden bezoekers uit het hele land, meldt het staatspersbureau KCNA zaterdag.",
          "Het park is onderdeel van het toeristische complex Kalma aan de oostkust."]


def test_a_pdf_heading_and_dateline_are_paragraphs_of_their_own(tmp_path):
    """A short line that does not end a sentence, before a line that does not go on in lower case, is a
    paragraph of its own: the heading is not glued to the first sentence (and becomes the title)."""
    from rag.ingest.formats import reflow

    (tmp_path / "waterpark.pdf").write_bytes(make_pdf([WONSAN]))
    doc = load_documents(tmp_path).documents[0]
    paragraphs = doc.text.split("\n\n")
    assert paragraphs[:2] == ["Waterpark in Wonsan geopend", "Gepubliceerd: 3 mei 2025"]
    assert paragraphs[2].startswith("In de kustplaats Wonsan") and "golfslagbad voor duizenden" in paragraphs[2]
    assert doc.title == "Waterpark in Wonsan geopend"
    # a short line that goes on in lower case is no heading
    assert reflow("Op de tweede pagina: de kolenmijn bij Hamhung\nproduceerde vorig jaar veel antraciet, meldt KCNA.\n"
                  "Arbeiders kregen een extra rantsoen rijst als beloning, een lange regel van tekst.") \
        .startswith("Op de tweede pagina: de kolenmijn bij Hamhung produceerde vorig jaar veel antraciet")
