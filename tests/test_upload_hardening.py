"""Issue 37 item 7 for added files: names with text-direction or C1 control characters are refused
(``"\\u202egpj.md"`` shows as "dm.jpg"), and an added file gets the mode every other file gets
(0666 less the umask: 0644 as a rule), not mkstemp's 0600. A real uvicorn server for the uploads."""

from __future__ import annotations

import os
import stat

import pytest

from rag.ingest.add import AddRefused, file_mode, store_bytes
from tests.test_uploads import KEY, files_in, serve, upload

ARTICLE = b"# Nieuwe haven\n\nDe haven van Nampo krijgt een nieuwe kade voor containerschepen.\n"


@pytest.mark.parametrize("name", ["\u202egpj.md", "a\u202db.md", "x\u2066y\u2069.md", "links\u200f.md",
                                  "c1\u0085.md", "arab\u061c.md"])
def test_names_that_change_how_they_look_are_refused(tmp_path, name):
    with pytest.raises(AddRefused) as e:
        store_bytes(tmp_path, name, ARTICLE, 1_000_000)
    assert e.value.status == 400 and e.value.code == "bad_name"
    assert f"U+{ord(next(ch for ch in name if not ch.isalnum() and ch not in '.')):04X}" in str(e.value)
    assert not list(tmp_path.iterdir())


def test_an_added_file_gets_the_folder_s_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        added = store_bytes(tmp_path, "haven.md", ARTICLE, 1_000_000)
        assert stat.S_IMODE((tmp_path / added.path).stat().st_mode) == 0o644
        os.umask(0o027)
        assert file_mode() == 0o640
        added = store_bytes(tmp_path, "haven-2.md", ARTICLE.replace(b"Nampo", b"Rajin"), 1_000_000)
        assert stat.S_IMODE((tmp_path / added.path).stat().st_mode) == 0o640  # the umask is respected
    finally:
        os.umask(old)


def test_uploads_refuse_such_names_and_store_files_like_the_others(tmp_path, shipped_index, embedder,
                                                                     dead_ollama_url):
    ctx, data = serve(tmp_path, shipped_index, embedder, dead_ollama_url, api_key=KEY)
    with ctx as url:
        before = files_in(data)
        r = upload(url, "\u202egpj.md", ARTICLE)
        assert r.status_code == 400 and r.json()["code"] == "bad_name" and "U+202E" in r.json()["detail"], r.text
        assert files_in(data) == before
        r = upload(url, "nieuwe-haven.md", ARTICLE)
        assert r.status_code == 201, r.text
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir() if p.is_file()}
    assert modes["nieuwe-haven.md"] == file_mode() == modes[before[0]]
