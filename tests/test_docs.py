"""The README and the documentation site (docs/, mkdocs.yml): the README stays a first hour (at most
200 lines), every setting has a row in docs/configuration.md, every page is in the site's navigation,
and neither holds internal notes. `./run.sh docs` (and CI) builds the site with `mkdocs build --strict`,
which fails on a broken link or a missing page."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO

DOCS = REPO / "docs"
INTERNAL = re.compile(r"\bissue \d+|\bthis (?:project's )?machine\b|other sessions|\bCEO\b|\blead\b(?! to)", re.I)


def test_the_readme_is_a_first_hour():
    text = (REPO / "README.md").read_text("utf-8")
    assert len(text.splitlines()) <= 200
    for needed in ("./run.sh test", "curl", "/api/ask", "RAG_OPENAI_BASE_URL", "ollama pull", "docs/"):
        assert needed in text, needed


def test_every_setting_is_documented():
    from rag.config import Settings

    page = (DOCS / "configuration.md").read_text("utf-8")
    missing = [name for name in Settings.model_fields
               if f"RAG_{name.upper()}" not in page and not (name == "ollama_host" and "OLLAMA_HOST" in page)]
    assert missing == []


def test_every_page_is_in_the_navigation_and_no_page_holds_internal_notes():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text("utf-8"))

    def pages(nav):
        for item in nav:
            for value in item.values():
                yield from (pages(value) if isinstance(value, list) else [value])

    listed = set(pages(config["nav"]))
    assert listed == {p.name for p in DOCS.glob("*.md")}
    assert config["theme"]["font"] is False  # built and read offline: no web fonts
    for path in [REPO / "README.md", *DOCS.glob("*.md")]:
        found = INTERNAL.findall(path.read_text("utf-8"))
        assert not found, (path.name, found)
