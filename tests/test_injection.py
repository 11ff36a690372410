"""Hostile text stays text: an article with an <img onerror> and <script> in its title, metadata and
body, and a model reply with <script>, render inertly in a real browser (Chromium + Playwright)
against a real ``rag serve`` subprocess. Ingest takes the article's markup out (issue 36 point 2,
``rag.ingest.markup``); what is left -- a fenced code block, the model's own words -- is shown as text."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api_fixtures import CHROMIUM, CHROMIUM_ARGS, DESKTOP, ServeProcess, start_serve

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
EVIL_ARTICLE = f"""---
title: Jihyun Park en de kampen {IMG}
date: 2024-04-30
author: <script>alert('auteur')</script>
url: javascript:alert(1)
---
# Jihyun Park en de kampen {IMG}

Jihyun Park is een Noord-Koreaanse vluchteling en mensenrechtenactivist {IMG} die in Bury woont.
Ze overleefde een strafkamp in Noord-Korea. {SCRIPT} Daarna vluchtte ze via China en Mongolië.

Jihyun Park is kandidaat bij de regionale verkiezingen in het Verenigd Koninkrijk <b onmouseover=alert(2)>vet</b>.

```
{IMG} <b onmouseover=alert(2)>vet</b>
```
"""
OTHER_ARTICLE = """# Toeristen keren terug naar Noord-Korea

Voor het eerst sinds januari 2020 zijn er weer westerse toeristen naar Noord-Korea gereisd.
De reis ging naar Rason, een economische zone in het noordoosten van het land.
"""
EVIL_REPLY = f"Jihyun Park is een Noord-Koreaanse vluchteling en mensenrechtenactivist {SCRIPT} {IMG} [1]."


@pytest.fixture(scope="module")
def evil_server(tmp_path_factory, _fake_ollama_server) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("injection")
    data = tmp / "data"
    data.mkdir()
    (data / "kwaadaardig.md").write_text(EVIL_ARTICLE, "utf-8")
    (data / "toeristen.md").write_text(OTHER_ARTICLE, "utf-8")
    srv = start_serve(data, tmp / "index", _fake_ollama_server.url, tmp / "serve.log")
    yield srv
    srv.stop()


@pytest.fixture
def evil_page(evil_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport=DESKTOP)
        pg.dialogs = []
        pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
        pg.goto(evil_server.url + "/")
        pg.wait_for_selector(".status .badge")
        yield pg
        browser.close()


def element_counts(page) -> dict:
    return page.evaluate("""() => ({
        img: document.querySelectorAll('img').length,
        script: document.querySelectorAll('script').length,
        b: document.querySelectorAll('b').length,
        jsLinks: document.querySelectorAll('a[href^="javascript"]').length,
        handlers: [...document.querySelectorAll('*')].filter(
            el => [...el.attributes].some(a => a.name.startsWith('on'))).length,
    })""")


def test_the_index_takes_the_markup_out(evil_server):
    doc = httpx.get(evil_server.url + "/api/documents/kwaadaardig").json()
    prose, code = doc["text"].split("```", 1)
    assert SCRIPT not in doc["text"] and IMG not in prose and IMG in code  # a code block keeps its text
    assert doc["title"] == "Jihyun Park en de kampen" and "author" not in doc["metadata"]
    assert "in Bury woont" in prose and "Verenigd Koninkrijk vet." in prose


def test_model_output_and_article_text_render_as_inert_text(evil_page, fake_ollama):
    page = evil_page
    fake_ollama.reply = EVIL_REPLY
    page.fill("#question", "Wie is Jihyun Park?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant").last
    answer.locator(".meta .badge").first.wait_for(timeout=30_000)

    text = answer.locator(".answer").inner_text()
    assert SCRIPT in text and IMG in text  # shown literally
    assert element_counts(page) == {"img": 0, "script": 3, "b": 0, "jsLinks": 0, "handlers": 0}  # i18n.js, app.js, upload.js

    answer.locator(".sources summary").click()
    assert "Jihyun Park en de kampen" in answer.locator(".sources").inner_text()

    # open the article: title, metadata and body stay text, the passage is highlighted
    opener = answer.locator("button.cite")
    if opener.count() == 0:  # the citation checker may have dropped the marker: use the source list
        opener = answer.locator(".source-link")
    opener.first.click()
    page.locator("mark.passage").wait_for()
    assert page.locator("#panel-title").inner_text().startswith("Jihyun Park en de kampen")
    body = page.locator("#panel-body").inner_text()
    assert SCRIPT not in body and "<b onmouseover=alert(2)>vet</b>" in body  # the code block, as text
    assert page.locator("#panel-meta a").count() == 0  # a javascript: url never becomes a link
    page.screenshot(path="/tmp/rag-browser-injection.png")

    page.wait_for_timeout(500)  # give any handler a chance to fire
    assert element_counts(page) == {"img": 0, "script": 3, "b": 0, "jsLinks": 0, "handlers": 0}  # i18n.js, app.js, upload.js
    assert page.dialogs == []
