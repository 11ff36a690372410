"""The upload box in a real Chromium (Playwright, Debian's /usr/bin/chromium) against a real uvicorn
server with its own copy of the articles and the index: drop a PDF, ask about it, open the citation
(which names the PDF page). Ollama is down, so answers are extractive. Screenshot:
/tmp/rag-browser-upload.png."""

from __future__ import annotations

import base64

import pytest

from tests.api_fixtures import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from tests.doc_files import HOSPITAL_PAGE, make_pdf
from tests.test_uploads import KEY, serve

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

PAGE2 = ["De kolenmijn bij Hamhung produceerde vorig jaar vierhonderdduizend ton antraciet,",
         "meldt het persbureau KCNA."]
DROP = """([b64, name]) => {
  const bin = atob(b64); const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {type: "application/pdf"})); return dt;
}"""


def test_drop_a_pdf_ask_about_it_and_open_the_cited_page(tmp_path, shipped_index, embedder, dead_ollama_url):
    from playwright.sync_api import sync_playwright

    ctx, data = serve(tmp_path, shipped_index, embedder, dead_ollama_url, api_key=KEY)
    pdf = make_pdf([HOSPITAL_PAGE, PAGE2], title="Ziekenhuis en kolenmijn")
    with ctx as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=DESKTOP, locale="nl-NL")  # the page speaks Dutch to a Dutch browser
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        page.wait_for_selector(".status .badge")

        page.click("#upload-toggle")
        page.fill("#upload-key", KEY)
        dt = page.evaluate_handle(DROP, [base64.b64encode(pdf).decode(), "ziekenhuis.pdf"])
        page.dispatch_event(".upload-drop", "drop", {"dataTransfer": dt})
        ok = page.locator(".upload-ok")
        ok.wait_for(timeout=120_000)
        assert "Toegevoegd: Ziekenhuis en kolenmijn" in ok.inner_text()
        assert (data / "ziekenhuis.pdf").read_bytes() == pdf
        assert page.evaluate("sessionStorage.getItem('rag-api-key')") == KEY
        assert page.locator(".upload-key").is_hidden()  # the key is asked once per session

        page.fill("#question", "Hoeveel ton antraciet produceerde de kolenmijn bij Hamhung?")
        page.keyboard.press("Enter")
        answer = page.locator(".msg.assistant").last
        answer.locator(".meta .badge").first.wait_for(timeout=60_000)
        assert "antraciet" in answer.locator(".answer").inner_text()
        answer.locator("button.cite").first.click()
        page.locator("#panel mark.passage").wait_for()
        assert page.locator("#panel-title").inner_text() == "Ziekenhuis en kolenmijn"
        assert page.locator("#panel-meta").inner_text().startswith("p. 2")
        assert "antraciet" in page.locator("#panel mark.passage").inner_text()
        page.screenshot(path="/tmp/rag-browser-upload.png")

        page.reload()  # same session: the key is still there
        page.wait_for_selector(".status .badge")
        page.click("#upload-toggle")
        assert page.locator(".upload-key").is_hidden()
        assert not errors, errors
        browser.close()
