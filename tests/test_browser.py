"""The chat page in a real browser: Debian's Chromium driven by Playwright, against a real
``rag serve`` subprocess (index built from data/articles at start-up) that talks to the fake
Ollama server. Screenshots go to /tmp/rag-browser-*.png."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api_fixtures import CHROMIUM, DATA_DIR, DESKTOP, PHONE, ServeProcess, start_serve

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

QUESTION = "Wie is Jihyun Park?"
REPLY = ("Jihyun Park is een Noord-Koreaanse vluchteling, mensenrechtenactivist en aspirant-politicus die "
         "kandidaat is bij de regionale verkiezingen in het Verenigd Koninkrijk [1].")


@pytest.fixture(scope="module")
def server(tmp_path_factory, _fake_ollama_server) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("browser")
    srv = start_serve(DATA_DIR, tmp / "index", _fake_ollama_server.url, tmp / "serve.log")
    yield srv
    srv.stop()


@pytest.fixture
def open_page(browser, server):
    """``open_page(viewport)`` -> a fresh page on the chat, with console errors collected in ``page.errors``."""
    pages = []

    def make(viewport=DESKTOP):
        page = browser.new_page(viewport=viewport)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.goto(server.url + "/")
        page.wait_for_selector(".status .badge.model", state="attached")  # on a phone the status is behind a tap
        pages.append(page)
        return page

    yield make
    for p in pages:
        p.close()


def ask_in_page(page, question: str) -> None:
    page.fill("#question", question)
    page.keyboard.press("Enter")


def last_answer(page):
    return page.locator(".msg.assistant").last


def test_ask_stream_and_open_the_cited_passage(open_page, fake_ollama, server):
    fake_ollama.reply = REPLY
    fake_ollama.piece_delay = 0.08  # slow enough to see the answer arrive piece by piece
    page = open_page(DESKTOP)
    assert "Ollama" in page.locator(".status").inner_text()
    page.screenshot(path="/tmp/rag-browser-desktop-start.png")

    ask_in_page(page, QUESTION)
    answer = last_answer(page)
    # streaming: part of the text is shown while the answer is still being written
    page.wait_for_selector(".msg.assistant .cursor", timeout=30_000)
    page.wait_for_function(
        "() => { const a = document.querySelector('.msg.assistant .answer');"
        " return a && a.textContent.includes('Jihyun') && document.querySelector('.msg.assistant .cursor'); }",
        timeout=30_000)
    partial = answer.locator(".answer").inner_text()
    assert "verkiezingen" not in partial or "[1]" not in partial  # not the whole answer yet
    # done: the generator is shown and the marker became a citation button
    answer.locator(".meta .badge").first.wait_for(timeout=30_000)
    assert "Ollama" in answer.locator(".meta").inner_text()
    assert answer.locator(".cursor").count() == 0
    text = answer.locator(".answer").inner_text()
    assert "Jihyun Park is een Noord-Koreaanse vluchteling" in text
    cite = answer.locator("button.cite").first
    cite.wait_for()
    assert cite.inner_text().strip() == "1"
    page.screenshot(path="/tmp/rag-browser-desktop-answer.png")

    cite.click()
    panel = page.locator("#panel")
    panel.wait_for(state="visible")
    mark = panel.locator("mark.passage")
    mark.wait_for()
    assert "Jihyun Park" in page.locator("#panel-title").inner_text()
    marked = mark.inner_text()
    assert "Jihyun Park" in marked
    body = page.locator("#panel-body .article-text").inner_text()
    assert len(body) > len(marked) + 500  # the passage is shown inside its whole article
    doc = httpx.get(server.url + "/api/documents/01-jihyun-park-verkiezingskandidaat").json()
    assert " ".join(marked.split()) in " ".join(doc["text"].split())
    assert mark.is_visible()
    page.screenshot(path="/tmp/rag-browser-desktop-passage.png")
    # the panel sits beside the chat on a wide screen
    box = panel.bounding_box()
    assert box["x"] > DESKTOP["width"] / 3 and box["width"] < DESKTOP["width"] * 0.6
    page.click("#panel-close")
    panel.wait_for(state="hidden")
    assert not page.errors, page.errors


def test_follow_up_sends_the_history(open_page, fake_ollama):
    fake_ollama.reply = REPLY
    page = open_page(DESKTOP)
    ask_in_page(page, QUESTION)
    last_answer(page).locator(".meta .badge").first.wait_for(timeout=30_000)
    n_before = len(fake_ollama.chat_requests)

    fake_ollama.reply = "Ze woont in Bury, een voorstad van Manchester [1]."
    ask_in_page(page, "Waar woont ze?")
    page.wait_for_function(
        "() => { const m = document.querySelectorAll('.msg.assistant');"
        " return m.length === 2 && m[1].querySelector('.meta .badge, .error'); }", timeout=30_000)
    assert page.locator(".msg.assistant .error").count() == 0
    assert page.locator(".msg.user").count() == 2 and page.locator(".msg.assistant").count() == 2
    later = fake_ollama.chat_requests[n_before:]
    assert later
    sent = " ".join(str(m.get("content")) for body in later for m in body["messages"])
    assert "Jihyun Park" in sent  # the first turn went along with the follow-up

    page.click("#new-chat")
    assert page.locator(".msg").count() == 0
    assert page.locator("#intro").is_visible()


def test_phone_width_panel_is_an_overlay(open_page, fake_ollama):
    fake_ollama.reply = REPLY
    page = open_page(PHONE)
    page.screenshot(path="/tmp/rag-browser-phone-start.png")
    ask_in_page(page, QUESTION)
    answer = last_answer(page)
    answer.locator("button.cite").first.wait_for(timeout=30_000)
    page.screenshot(path="/tmp/rag-browser-phone-answer.png")
    # nothing sticks out sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    answer.locator("button.cite").first.click()
    page.locator("mark.passage").wait_for()
    box = page.locator("#panel").bounding_box()
    assert box["x"] == 0 and box["width"] == PHONE["width"] and box["height"] >= PHONE["height"] - 1
    assert page.locator("mark.passage").is_visible()
    page.screenshot(path="/tmp/rag-browser-phone-passage.png")
    page.click("#panel-close")
    page.locator("#panel").wait_for(state="hidden")
    assert page.locator("#question").is_visible()


def test_fallback_and_errors_are_shown(open_page, fake_ollama, server):
    page = open_page(DESKTOP)
    # the model is gone: `auto` answers extractively and says why
    fake_ollama.mode = "model_missing"
    deadline = time.monotonic() + 15
    while httpx.get(server.url + "/health").json()["generator"] != "extractive":
        assert time.monotonic() < deadline, "the server did not notice the missing model"
        time.sleep(0.3)
    ask_in_page(page, QUESTION)
    answer = last_answer(page)
    answer.locator(".meta .badge").first.wait_for(timeout=30_000)
    assert "Extractief" in answer.locator(".meta").inner_text()
    # why there is no LLM is said once, in Dutch, in the status line -- not under every answer
    assert answer.locator(".warnings li").count() == 0
    # the page asks /health again when an answer ends: the status line follows within moments
    page.wait_for_function("document.querySelector('#status').innerText.includes('Geen taalmodel')", timeout=10_000)
    assert answer.locator(".answer").inner_text().strip()
    page.screenshot(path="/tmp/rag-browser-desktop-fallback.png")

    # an error from the server is shown as a message, and the page keeps working
    page.route("**/api/ask", lambda route: route.fulfill(
        status=503, content_type="application/json", headers={"Retry-After": "5"},
        body='{"detail": "the server is busy answering other questions", "error": "ServerBusy"}'))
    ask_in_page(page, "Nog een vraag")
    err = page.locator(".msg.assistant .error").last
    err.wait_for(timeout=10_000)
    assert "bezig" in err.inner_text() and "5 s" in err.inner_text()  # worded by the page (api/static/i18n.js)
    assert page.locator("#send").is_enabled()


def test_docs_page_renders_the_answer_schema(browser, server):
    """/docs (fastapi-offline's Swagger UI, no CDN) renders FastAPI's OpenAPI 3.1 and shows the answer model."""
    page = browser.new_page(viewport=DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/docs")
    page.locator(".opblock-summary-path", has_text="/api/ask").first.wait_for(timeout=20_000)
    assert page.get_by_text("Unable to render this definition").count() == 0
    # the schema section lists the response models; open AnswerOut and see its fields
    title = page.locator("section.models .json-schema-2020-12__title", has_text="AnswerOut").first
    title.wait_for(timeout=10_000)
    title.click()
    page.locator("section.models .json-schema-2020-12-property", has_text="abstain_reason").first.wait_for(timeout=10_000)
    assert page.locator("section.models .json-schema-2020-12-property", has_text="citations").count() >= 1
    page.screenshot(path="/tmp/rag-browser-docs.png", full_page=True)
    assert not errors, errors
    page.close()


def test_a_sentence_the_check_did_not_find_is_marked_and_each_source_shows_its_sentence(open_page, fake_ollama,
                                                                                         server):
    """Issue: every unverified sentence is marked ("niet gevonden in de bron"), each citation under "Bronnen"
    shows the passage sentence that supports it, and the verdicts arrive with the done event."""
    fake_ollama.reply = REPLY + " Ze heeft twee kinderen en woont in Londen [1]."
    fake_ollama.piece_delay = 0.0
    deadline = time.monotonic() + 15  # a test before may have taken the model away: the server sees it back
    while httpx.get(server.url + "/health").json()["generator"] == "extractive":
        assert time.monotonic() < deadline, "the server did not notice the model again"
        time.sleep(0.3)
    page = open_page(DESKTOP)
    ask_in_page(page, QUESTION)
    answer = last_answer(page)
    answer.locator(".meta .badge").first.wait_for(timeout=60_000)
    marked = answer.locator(".answer .unverified.unsupported")
    marked.first.wait_for(timeout=10_000)
    assert marked.count() == 1
    assert "twee kinderen" in marked.inner_text() and "niet gevonden in de bron" in marked.inner_text()
    assert "passage [1] does not say" in (marked.get_attribute("title") or "")
    assert "vluchteling" not in marked.inner_text()  # the supported sentence is not marked
    assert answer.locator(".support-label.uncertain").count() == 1
    support = answer.locator(".cited-quote.cited-support").first
    support.wait_for()
    assert "vluchteling" in support.inner_text()
    page.screenshot(path="/tmp/rag-browser-unverified.png")
    assert not page.errors, page.errors
