"""Loading articles: formats, titles, metadata, stable ids, bad files skipped with reasons."""

from rag.ingest.documents import doc_id_for, load_documents
from tests.conftest import ARTICLES


def test_shipped_articles_load_with_titles():
    result = load_documents(ARTICLES)
    assert result.skipped == []
    assert len(result.documents) == 10
    by_id = {d.doc_id: d for d in result.documents}
    doc = by_id["09-geavanceerder-wapentuig"]
    assert doc.title == "Noord-Korea bouwt uit alle macht aan geavanceerder wapentuig"
    assert "meer dan veertig gewonden" in doc.text
    assert len(doc.sha256) == 64


def test_formats_front_matter_and_titles(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("---\ntitle: Uit front matter\ndate: 2024-05-01\nauthor: Iemand\nurl: https://example.org/a\n---\n# Kop\n\nTekst.\n", "utf-8")
    (tmp_path / "sub" / "b.txt").write_text("Eerste regel als titel\n\nMeer tekst hier.\n", "utf-8")
    (tmp_path / "c.html").write_text(
        "<html><head><title>HTML titel</title><script>var x = 1;</script></head>"
        "<body><h1>Kop</h1><p>Alinea &amp; tekst.</p></body></html>", "utf-8")
    (tmp_path / "d.md").write_text("Geen kop maar tekst.\n", "utf-8")
    docs = {d.path: d for d in load_documents(tmp_path).documents}
    assert docs["a.md"].title == "Uit front matter"
    assert docs["a.md"].metadata == {"title": "Uit front matter", "date": "2024-05-01", "author": "Iemand", "url": "https://example.org/a"}
    assert docs["a.md"].text.startswith("# Kop")  # front matter is not part of the text
    assert docs["sub/b.txt"].title == "Eerste regel als titel"
    assert docs["sub/b.txt"].doc_id == "sub--b"
    assert docs["c.html"].title == "HTML titel"
    assert "Alinea & tekst." in docs["c.html"].text and "var x" not in docs["c.html"].text
    assert docs["d.md"].title == "Geen kop maar tekst."


def test_bad_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "good.md").write_text("# Goed\n\nDit artikel is in orde.\n", "utf-8")
    (tmp_path / "empty.md").write_text("  \n", "utf-8")
    (tmp_path / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "big.md").write_text("# Groot\n\n" + "woord " * 400, "utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "only-front-matter.md").write_text("---\ntitle: Leeg\n---\n", "utf-8")
    result = load_documents(tmp_path, max_bytes=1000)
    assert [d.path for d in result.documents] == ["good.md"]
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons["empty.md"] == "empty file"
    assert "binary" in reasons["binary.md"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "too large" in reasons["big.md"]
    assert "unsupported file type" in reasons["image.png"]
    assert "no text" in reasons["only-front-matter.md"]


def test_missing_folder_is_reported_not_raised(tmp_path):
    result = load_documents(tmp_path / "nope")
    assert result.documents == [] and "does not exist" in result.skipped[0].reason


def test_doc_ids_are_stable_and_safe():
    assert doc_id_for("09-Geavanceerder Wapentuig.md") == "09-geavanceerder-wapentuig"
    assert doc_id_for("map/artikel.md") == doc_id_for("map/artikel.md") == "map--artikel"
    assert doc_id_for("map/artikel.md") != doc_id_for("map/artikel2.md")
