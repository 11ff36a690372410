"""Adding and removing articles over HTTP (api/uploads.py) against a real uvicorn server with its own
copy of the articles and the index: the admin key, the limits (size, type, path traversal,
duplicates, unusable files) with nothing lost, and the new article searchable right after."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from tests.conftest import ARTICLES
from tests.doc_files import HOSPITAL_PAGE, make_docx, make_pdf, news_page
from tests.live_server import live_server

KEY = "sesam-open-u"
AUTH = {"Authorization": f"Bearer {KEY}"}
PAGE1 = ["Het nieuwe ziekenhuis in Pyongyang telt driehonderd bedden voor kinderen."]
PAGE2 = ["De kolenmijn bij Hamhung produceerde vorig jaar vierhonderdduizend ton antraciet,",
         "meldt het persbureau KCNA."]


def serve(tmp_path: Path, shipped_index: Path, embedder, ollama_url: str, **overrides):
    from rag.config import Settings
    from rag.runtime import open_runtime

    data, index = tmp_path / "data", tmp_path / "index"
    shutil.copytree(ARTICLES, data)
    shutil.copytree(shipped_index, index)
    settings = Settings(data_dir=data, index_dir=index, ollama_host=ollama_url,
                        llm_probe_timeout=1.0, **overrides)
    return live_server(create_app(settings, runtime=open_runtime(settings, embedder=embedder))), data


@pytest.fixture
def server(tmp_path, shipped_index, embedder, dead_ollama_url) -> Iterator[tuple[str, Path]]:
    ctx, data = serve(tmp_path, shipped_index, embedder, dead_ollama_url, api_key=KEY, max_file_bytes=200_000)
    with ctx as url:
        yield url, data


def files_in(data: Path) -> list[str]:
    return sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())


def upload(url: str, name: str, content: bytes, headers=AUTH, ctype="application/octet-stream") -> httpx.Response:
    return httpx.post(url + "/api/documents", files={"file": (name, content, ctype)}, headers=headers, timeout=120)


def test_upload_is_searchable_at_once_and_can_be_removed(server):
    url, data = server
    before = files_in(data)
    r = upload(url, "ziekenhuis.pdf", make_pdf([HOSPITAL_PAGE, PAGE2], title="Ziekenhuis en kolenmijn"), ctype="application/pdf")
    assert r.status_code == 201, r.text
    doc = r.json()["document"]
    assert doc["doc_id"] == "ziekenhuis" and doc["title"] == "Ziekenhuis en kolenmijn" and doc["chunks"] >= 1
    assert files_in(data) == sorted(before + ["ziekenhuis.pdf"])

    hits = httpx.get(url + "/api/search", params={"q": "kolenmijn Hamhung antraciet", "k": 3}).json()["results"]
    assert hits[0]["doc_id"] == "ziekenhuis"
    a = httpx.post(url + "/api/ask", json={"question": "Hoeveel ton antraciet produceerde de kolenmijn bij Hamhung?",
                                           "generator": "extractive"}, timeout=60).json()
    cited = [c for c in a["citations"] if c["doc_id"] == "ziekenhuis"]
    assert cited and cited[0]["page"] == 2

    r = httpx.delete(url + "/api/documents/ziekenhuis", headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["kept_as"].startswith(".removed/")
    docs = {d["doc_id"] for d in httpx.get(url + "/api/documents").json()["documents"]}
    assert "ziekenhuis" not in docs and len(docs) == len(before)
    assert httpx.get(url + "/api/documents/ziekenhuis").status_code == 404
    assert httpx.delete(url + "/api/documents/ziekenhuis", headers=AUTH).status_code == 404


def test_docx_and_web_page_uploads(server, tmp_path):
    url, _ = server
    docx_path = make_docx(tmp_path / "visserij.docx", title="Visserij", heading="Visserij bij Sinpo",
                          paragraphs=["De vissersvloot van Sinpo voer dit voorjaar vaker uit dan ooit."])
    r = upload(url, "visserij.docx", docx_path.read_bytes())
    assert r.status_code == 201, r.text
    r = upload(url, "resort.html", news_page("Badresort in Wonsan", ["Kim opende een badresort in Wonsan voor "
                                                                     "twintigduizend binnenlandse toeristen."]).encode())
    assert r.status_code == 201 and r.json()["document"]["metadata"]["author"] == "Jan de Vries"
    hits = httpx.get(url + "/api/search", params={"q": "vissersvloot Sinpo", "k": 1}).json()["results"]
    assert hits[0]["doc_id"] == "visserij"


def test_limits_give_4xx_with_a_message_and_lose_nothing(server):
    url, data = server
    before = files_in(data)
    pdf = make_pdf([PAGE1])
    cases = [
        (dict(name="x.md", content=b"# x\n\ntekst\n", headers={}), 401, "API key", "api_key_required"),
        (dict(name="x.md", content=b"# x\n\ntekst\n", headers={"Authorization": "Bearer fout"}), 401, "API key", "api_key_required"),
        (dict(name="../../etc/evil.md", content=b"# x\n\ntekst\n"), 400, "folder path", "bad_name"),
        (dict(name=".verborgen.md", content=b"# x\n\ntekst\n"), 400, "not allowed", "bad_name"),
        (dict(name="foto.exe", content=b"MZ\x90\x00"), 415, "unsupported file type '.exe'", "unsupported_type"),
        (dict(name="groot.pdf", content=b"%PDF" + b"0" * 300_000), 413, "too large", "too_large"),
        (dict(name="kapot.pdf", content=pdf[:200]), 422, "damaged PDF", "not_an_article"),
        (dict(name="01-jihyun-park-verkiezingskandidaat.md", content=b"# Ander\n\nander\n"), 409, "already in the data folder", "duplicate"),
        (dict(name="kopie.md", content=(ARTICLES / "05-eerste-toeristen-sinds-2020.md").read_bytes()), 409, "same file", "duplicate"),
        (dict(name="leeg.md", content=b"  \n"), 422, "is empty", "empty_file"),
        (dict(name="bin.md", content=b"# x\x00\x01 tekst"), 422, "binary file", "binary_file"),
    ]
    for kw, status, needle, code in cases:
        r = upload(url, **kw)
        assert r.status_code == status, (kw["name"], r.status_code, r.text[:300])
        assert needle in r.json()["detail"], (kw["name"], r.json())
        assert r.json()["code"] == code, (kw["name"], r.json())  # stable: the page words it (api/static/i18n.js)
    assert upload(url, "ok.pdf", pdf).status_code == 201
    assert upload(url, "ok-again.pdf", pdf).status_code == 409  # the same upload twice
    assert files_in(data) == sorted(before + ["ok.pdf"])
    assert httpx.get(url + "/health").json()["status"] == "ok"
    assert httpx.get(url + "/health").json()["uploads"] is True


def test_uploads_are_off_without_an_api_key(tmp_path, shipped_index, embedder, dead_ollama_url):
    ctx, data = serve(tmp_path, shipped_index, embedder, dead_ollama_url)
    with ctx as url:
        r = upload(url, "x.md", b"# x\n\ntekst\n", headers={"Authorization": "Bearer iets"})
        assert r.status_code == 403 and "RAG_API_KEY" in r.json()["detail"] and r.json()["code"] == "uploads_off"
        assert httpx.get(url + "/health").json()["uploads"] is False
        assert httpx.delete(url + "/api/documents/05-eerste-toeristen-sinds-2020", headers=AUTH).status_code == 403
    assert not (data / "x.md").exists()
