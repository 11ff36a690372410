// The chat page: asks /api/ask with streaming (Server-Sent Events over fetch), renders
// citation markers [n] as buttons, and shows a cited passage highlighted in its article.
// Model output and article text are only ever inserted as text (textContent /
// createTextNode) -- never as HTML. Markdown syntax is shown as plain words (I18N.plainText);
// answer lines starting with "> " (exact excerpts) become blockquotes. Every word the page
// shows comes from api/static/i18n.js, in Dutch or English (the browser's or the question's language).
"use strict";

(function () {
  const HISTORY_TURNS = 12; // messages sent along with a follow-up question
  const { t, plainText, formatDate } = window.I18N;

  const ui = {
    messages: document.getElementById("messages"),
    intro: document.getElementById("intro"),
    form: document.getElementById("ask-form"),
    question: document.getElementById("question"),
    send: document.getElementById("send"),
    status: document.getElementById("status"),
    statusToggle: document.getElementById("status-toggle"),
    newChat: document.getElementById("new-chat"),
    panel: document.getElementById("panel"),
    panelTitle: document.getElementById("panel-title"),
    panelMeta: document.getElementById("panel-meta"),
    panelBody: document.getElementById("panel-body"),
    panelClose: document.getElementById("panel-close"),
  };

  const state = {
    history: [], // [{role: "user"|"assistant", content}]
    busy: false,
    panelRequest: 0,
    health: null, // the last /health answer (re-worded when the language changes)
  };

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function scrollToEnd() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  // ------------------------------------------------------------------ status line
  async function loadHealth() {
    try {
      const res = await fetch("/health", { headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error("HTTP " + res.status);
      state.health = await res.json();
    } catch (err) {
      state.health = { down: true };
    }
    renderHealth(state.health);
    window.ragHealth = state.health; // for api/static/upload.js (and its "rag:health" event)
    document.dispatchEvent(new CustomEvent("rag:health", { detail: state.health }));
  }

  // "intfloat/multilingual-e5-small" -> "meertalig e5" / "multilingual e5"
  function modelName(id) {
    const name = String(id || "").split("/").pop();
    if (/multilingual-e5/i.test(name)) return t("model.e5");
    if (/minilm/i.test(name)) return t("model.minilm");
    return name;
  }

  function backendName(generator) {
    return generator === "openai" ? "OpenAI-compatibele server" : generator === "ollama" ? "Ollama" : generator;
  }

  function renderHealth(h) {
    clear(ui.status);
    if (!h) {
      ui.status.appendChild(el("span", "badge", t("status.loading")));
      return;
    }
    ui.statusToggle.classList.remove("good", "warn", "bad");
    if (h.down) {
      ui.status.appendChild(el("span", "badge bad", t("status.down")));
      ui.statusToggle.classList.add("bad");
      return;
    }
    if (h.generator && h.generator !== "extractive") {
      ui.status.appendChild(el("span", "badge good", t("status.ollama", { model: backendName(h.generator) + " · " + h.ollama.model })));
      ui.statusToggle.classList.add("good");
    } else {
      // one short note instead of a warning under every answer
      ui.status.appendChild(el("span", "badge warn", t("status.extractive")));
      ui.statusToggle.classList.add("warn");
    }
    ui.status.appendChild(el("span", "badge counts", t("count.articles", { n: h.documents }) + " · " + t("count.passages", { n: h.chunks })));
    const key = h.embedding_fallback ? "status.model.fallback" : "status.model";
    const emb = el("span", h.embedding_fallback ? "badge warn model" : "badge model", t(key, { name: modelName(h.embedding_model) }));
    emb.title = [h.embedding_model, h.embedding_backend].filter(Boolean).join(" · ");
    ui.status.appendChild(emb);
  }

  function setStatusOpen(open) {
    document.body.classList.toggle("status-open", open);
    ui.statusToggle.setAttribute("aria-expanded", String(open));
  }

  // ------------------------------------------------------------------ messages
  function addUserMessage(text) {
    if (ui.intro) ui.intro.hidden = true;
    const msg = el("article", "msg user");
    msg.appendChild(el("div", "bubble", text));
    ui.messages.appendChild(msg);
    scrollToEnd();
  }

  // The language of an answer's own words: not its quoted excerpts ("> ..." lines are the articles' Dutch)
  // nor its citation markers; null when it has no words of its own (an answer made only of excerpts).
  function answerLanguage(text) {
    const own = String(text || "").split("\n").filter((ln) => !/^\s*>/.test(ln)).join(" ").replace(MARKER, " ");
    return I18N.detectLanguage(own);
  }

  // A new answer speaks its question's language until its own words say otherwise (renderDone).
  function addAssistantMessage(question) {
    const msg = el("article", "msg assistant");
    const bubble = el("div", "bubble");
    const body = el("div", "answer");
    const typing = el("span", "typing", t("searching"));
    body.appendChild(typing);
    const meta = el("div", "meta");
    const warnings = el("ul", "warnings");
    warnings.hidden = true;
    const cited = el("section", "cited");
    cited.hidden = true;
    const sources = el("details", "sources");
    sources.hidden = true;
    bubble.append(body, meta, warnings, cited, sources);
    msg.appendChild(bubble);
    ui.messages.appendChild(msg);
    scrollToEnd();
    const lang = I18N.detectLanguage(question) || I18N.current();
    return { msg, bubble, body, meta, warnings, cited, sources, text: "", hits: [], answer: null, lang, question };
  }

  // An error in the page's words: from the error's kind and status, never the server's English text
  // (kept as a tooltip for whoever runs the server).
  function errorWords(info, lang) {
    const kind = info.error || "";
    let why;
    if (kind === "ServerBusy") why = t("error.busy", null, lang);
    else if (kind === "IndexNotFound") why = t("error.noIndex", null, lang);
    else if (kind === "IndexCorrupt" || kind === "EmbeddingModelMismatch") why = t("error.index", null, lang);
    else if (kind === "StoreUnavailable") why = t("error.store", null, lang);
    else if (kind === "LLMTimeout") why = t("error.llmTimeout", null, lang);
    else if (kind.startsWith("LLM")) why = t("error.llm", null, lang);
    else if (kind === "ValidationError" || kind === "InvalidQuery") why = t("error.question", null, lang);
    else if (kind === "RequestTooLarge" || info.status === 413) why = t("error.tooLarge", null, lang);
    else if (kind === "InternalError") why = t("error.internal", null, lang);
    else if (info.key) why = t(info.key, null, lang);
    else if (info.status) why = t("error.http", { status: info.status }, lang);
    else why = t("error.unknown", null, lang);
    if (info.retryAfter) why += " (" + t("error.retry", { s: info.retryAfter }, lang) + ")";
    return why;
  }

  function showError(view, info) {
    clear(view.body);
    const p = el("p", "error", t("error.prefix", { why: errorWords(info, view.lang) }, view.lang));
    if (info.detail) p.title = info.detail;
    view.body.appendChild(p);
    view.msg.classList.add("failed");
  }

  // Citation markers: [1], [2, 3], [1][2]
  const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

  function appendCited(container, text, lookup, lang) {
    let last = 0;
    for (const m of text.matchAll(MARKER)) {
      if (m.index > last) container.appendChild(document.createTextNode(plainText(text.slice(last, m.index))));
      const numbers = m[1].split(",").map((s) => parseInt(s.trim(), 10));
      const known = numbers.filter((n) => lookup(n));
      if (!known.length) {
        container.appendChild(document.createTextNode(m[0]));
      } else {
        for (const n of numbers) {
          const cit = lookup(n);
          if (!cit) continue;
          container.appendChild(citeButton(n, cit, lang));
        }
      }
      last = m.index + m[0].length;
    }
    if (last < text.length) container.appendChild(document.createTextNode(plainText(text.slice(last))));
  }

  function citeButton(n, cit, lang) {
    const title = plainText(cit.title);
    const btn = el("button", "cite", String(n));
    btn.type = "button";
    btn.dataset.n = String(n);
    btn.title = t("cite.title", { title }, lang);
    btn.setAttribute("aria-label", t("cite.label", { n, title }, lang));
    btn.addEventListener("click", () => openPassage(cit, btn));
    return btn;
  }

  // The answer as blocks (split at blank lines): "> excerpt [n]" lines become a blockquote,
  // other text a paragraph; [n] markers become buttons that open the cited passage. A sentence the check
  // did not verify (answer.verdicts: unsupported, off_question) is marked, with its reason on hover.
  function renderAnswerText(container, text, lookup, lang, verdicts) {
    clear(container);
    const marks = (verdicts || []).filter((v) => v.verdict !== "supported" && v.end > v.start);
    const re = /\n[ \t]*\n/g;
    let pos = 0;
    const blocks = [];
    for (const m of String(text).matchAll(re)) {
      blocks.push([pos, m.index]);
      pos = m.index + m[0].length;
    }
    blocks.push([pos, String(text).length]);
    for (const [bs, be] of blocks) {
      const block = text.slice(bs, be);
      if (!block.trim()) continue;
      const lines = block.split("\n");
      const quote = lines.every((ln) => /^\s*>/.test(ln) || !ln.trim());
      const node = el(quote ? "blockquote" : "p", quote ? "excerpt" : "para");
      let at = bs;
      const strip = (part) => (quote ? part.replace(/(^|\n)\s*>\s?/g, "$1") : part);
      for (const v of marks.filter((x) => x.start < be && x.end > bs).sort((a, b) => a.start - b.start)) {
        const s = Math.max(v.start, at), e = Math.min(v.end, be);
        if (s > at) appendCited(node, strip(text.slice(at, s)), lookup, lang);
        const span = el("span", "unverified " + v.verdict);
        span.title = v.reason || "";
        appendCited(span, strip(text.slice(s, e)), lookup, lang);
        span.appendChild(el("span", "verdict-label", t("verdict." + v.verdict, null, lang)));
        node.appendChild(span);
        at = e;
      }
      if (at < be) appendCited(node, strip(text.slice(at, be)), lookup, lang);
      container.appendChild(node);
    }
  }

  function citationLookup(view) {
    return (n) => {
      const a = view.answer;
      if (a && a.citations) {
        const c = a.citations.find((x) => x.n === n);
        if (c) return c;
      }
      const hits = (a && a.sources) || view.hits;
      const h = hits[n - 1];
      return h ? { n, doc_id: h.doc_id, title: h.title, text: h.text, start: h.start, end: h.end, date: h.date,
                   date_source: h.date_source } : null;
    };
  }

  function renderSources(view, hits) {
    view.hits = hits || [];
    clear(view.sources);
    if (!view.hits.length) {
      view.sources.hidden = true;
      return;
    }
    view.sources.hidden = false;
    view.sources.appendChild(el("summary", null, t("found", { n: view.hits.length }, view.lang)));
    const list = el("ol", "source-list");
    view.hits.forEach((h, i) => {
      const item = el("li");
      const btn = el("button", "source-link", plainText(h.title));
      btn.type = "button";
      btn.addEventListener("click", () =>
        openPassage({ n: i + 1, doc_id: h.doc_id, title: h.title, text: h.text, start: h.start, end: h.end, date: h.date,
                      date_source: h.date_source }, btn));
      item.appendChild(btn);
      if (h.date) item.appendChild(dateLabel("date", " · ", h, view.lang));
      const snippet = plainText(h.text).replace(/\s+/g, " ").trim();
      item.appendChild(el("p", "snippet", snippet.length > 220 ? snippet.slice(0, 220) + "…" : snippet));
      list.appendChild(item);
    });
    view.sources.appendChild(list);
  }

  // A passage's date, with where it was found (front matter, the text, a byline, the file's properties) on hover.
  function dateLabel(className, prefix, passage, lang) {
    const span = el("span", className, prefix + formatDate(passage.date, lang));
    if (passage.date_source) {
      span.title = t("date.source." + passage.date_source, null, lang);
      span.dataset.dateSource = passage.date_source;
    }
    return span;
  }

  // What a citation cites: its quoted sentences (extractive answers), else the passage, shortened.
  function citedText(c) {
    const quotes = (c.quotes || []).filter((q) => q.start >= c.start && q.end <= c.end && q.end > q.start)
      .sort((a, b) => a.start - b.start)
      .map((q) => c.text.slice(q.start - c.start, q.end - c.start));
    const text = plainText(quotes.length ? quotes.join(" … ") : c.text).replace(/\s+/g, " ").trim();
    return quotes.length || text.length <= 300 ? text : text.slice(0, 300).replace(/\s+\S*$/, "") + " …";
  }

  // The passage sentences the check found for the answer's sentences, per citation number.
  function supportingSentences(verdicts) {
    const byN = new Map();
    for (const v of verdicts || []) {
      if (v.verdict !== "supported" || !v.support) continue;
      const list = byN.get(v.support.n) || [];
      if (!list.includes(v.support.text)) list.push(v.support.text);
      byN.set(v.support.n, list);
    }
    return byN;
  }

  // The numbered sources under an answer: for each number, the passage sentence that supports the answer
  // (else what it cites), the title and the date.
  function renderCited(view, citations, verdicts) {
    const supports = supportingSentences(verdicts);
    clear(view.cited);
    const list = (citations || []).slice().sort((a, b) => a.n - b.n);
    view.cited.hidden = !list.length;
    if (!list.length) return;
    view.cited.appendChild(el("h3", "cited-head", t("sources", null, view.lang)));
    const ol = el("ol", "cited-list");
    for (const c of list) {
      const li = el("li", "cited-item");
      li.dataset.n = String(c.n);
      li.appendChild(citeButton(c.n, c, view.lang));
      const supported = supports.get(c.n);
      if (supported && supported.length) {
        const q = el("blockquote", "cited-quote cited-support", plainText(supported.join(" … ")).replace(/\s+/g, " ").trim());
        q.title = t("verdict.supports", null, view.lang);
        li.appendChild(q);
      } else {
        li.appendChild(el("blockquote", "cited-quote", citedText(c))); // exact words, no added quotation marks
      }
      const where = el("p", "cited-where");
      where.appendChild(el("span", "cited-title", plainText(c.title)));
      if (c.date) where.appendChild(dateLabel("cited-date", "", c, view.lang));
      if (c.page) where.appendChild(el("span", "cited-page", t("page", { n: c.page }, view.lang)));
      li.appendChild(where);
      ol.appendChild(li);
    }
    view.cited.appendChild(ol);
  }

  function renderDone(view, answer) {
    view.answer = answer;
    // the labels around an answer (support, sources, generator) follow the answer's language, not the page's
    view.lang = answerLanguage(answer.answer) || I18N.detectLanguage(answer.question || view.question) || view.lang;
    view.msg.lang = view.lang;
    const support = answer.support || (answer.abstained ? "abstained" : "answered");
    view.msg.dataset.support = support;
    view.msg.classList.toggle("abstained", support === "abstained");
    view.msg.classList.toggle("uncertain", support === "uncertain");
    const old = view.bubble.querySelector(".support-label");
    if (old) old.remove();
    if (support !== "answered") {
      const label = el("p", "support-label " + support, t("support." + support, null, view.lang));
      if (support === "uncertain") label.title = t("support.uncertain.title", null, view.lang);
      view.bubble.insertBefore(label, view.body);
    }
    renderAnswerText(view.body, answer.answer || "", citationLookup(view), view.lang, answer.verdicts);
    renderCited(view, support === "abstained" ? [] : answer.citations, answer.verdicts);
    renderSources(view, support === "abstained" ? [] : answer.sources);

    clear(view.meta);
    const gen = t(answer.generator && answer.generator !== "extractive" ? "gen.ollama" : "gen.extractive", null, view.lang);
    view.meta.appendChild(el("span", "badge " + (answer.generator && answer.generator !== "extractive" ? "good" : "warn"), gen));
    if (answer.standalone_question && answer.standalone_question !== answer.question) {
      view.meta.appendChild(el("span", "badge subtle", t("searchedAs", { q: answer.standalone_question }, view.lang)));
    }
    const timings = answer.timings || {};
    const total = Object.values(timings).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
    if (total) {
      const took = total < 1000 ? Math.round(total) + " ms" : (total / 1000).toFixed(1) + " s";
      view.meta.appendChild(el("span", "badge subtle", took));
    }

    clear(view.warnings);
    // "answered extractively: Ollama is not reachable ..." is said once, in the status line, not under every answer
    const warnings = (answer.warnings || []).filter((w) => !w.startsWith("answered extractively"));
    view.warnings.hidden = !warnings.length;
    for (const w of warnings) view.warnings.appendChild(el("li", null, w));
    scrollToEnd();
  }

  // ------------------------------------------------------------------ asking
  // {status, error, code, detail, retryAfter} of an error response
  async function readError(res) {
    const info = { status: res.status };
    try {
      const data = await res.json();
      if (data && data.detail) info.detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
      if (data && data.error) info.error = data.error;
      if (data && data.code) info.code = data.code;
    } catch (e) { /* not JSON */ }
    if (res.status === 503 && res.headers.get("Retry-After")) info.retryAfter = res.headers.get("Retry-After");
    return info;
  }

  // Parse a Server-Sent Events body; calls onEvent(name, data) per event.
  async function readSSE(res, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buffer += decoder.decode(value, { stream: true });
      if (done) buffer += decoder.decode();
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        let name = "message";
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (!line || line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          let val = i < 0 ? "" : line.slice(i + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") name = val;
          else if (field === "data") data.push(val);
        }
        if (data.length) {
          let parsed;
          try { parsed = JSON.parse(data.join("\n")); } catch (e) { parsed = data.join("\n"); }
          onEvent(name, parsed);
        }
      }
      if (done) return;
    }
  }

  async function ask(question) {
    state.busy = true;
    ui.send.disabled = true;
    ui.form.classList.add("busy");
    I18N.noteQuestion(question); // a Dutch question: the page (and this answer) speak Dutch
    addUserMessage(question);
    const view = addAssistantMessage(question);
    let finished = false;

    try {
      const res = await fetch("/api/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ question, stream: true, history: state.history.slice(-HISTORY_TURNS) }),
      });
      if (!res.ok) {
        showError(view, await readError(res));
        return;
      }
      const type = res.headers.get("Content-Type") || "";
      if (!type.includes("text/event-stream")) { // a server that answered in one piece
        const answer = await res.json();
        renderDone(view, answer);
        finished = true;
      } else {
        await readSSE(res, (name, data) => {
          if (name === "sources") {
            renderSources(view, data.sources);
            clear(view.body);
            view.body.appendChild(el("span", "cursor", "▍"));
          } else if (name === "token") {
            view.text += data.text;
            renderAnswerText(view.body, view.text, citationLookup(view), view.lang);
            (view.body.lastElementChild || view.body).appendChild(el("span", "cursor", "▍"));
            scrollToEnd();
          } else if (name === "done") {
            renderDone(view, data);
            finished = true;
          } else if (name === "error") {
            showError(view, { error: data.error, status: data.status, detail: data.message });
            finished = true;
          }
        });
        if (!finished) showError(view, { key: "error.cut" });
      }
      if (finished && view.answer) {
        state.history.push({ role: "user", content: question });
        state.history.push({ role: "assistant", content: view.answer.answer || "" });
      }
    } catch (err) {
      showError(view, { key: "error.offline", detail: err.message });
    } finally {
      state.busy = false;
      ui.send.disabled = false;
      ui.form.classList.remove("busy");
      ui.question.focus();
      loadHealth(); // the generator in use may have changed (e.g. Ollama went away)
    }
  }

  // ------------------------------------------------------------------ side panel
  function closePanel() {
    ui.panel.hidden = true;
    document.body.classList.remove("panel-open");
    state.panelRequest++;
  }

  async function openPassage(cit, opener) {
    const request = ++state.panelRequest;
    document.querySelectorAll(".cite.active, .source-link.active").forEach((b) => b.classList.remove("active"));
    if (opener) opener.classList.add("active");
    ui.panel.hidden = false;
    document.body.classList.add("panel-open");
    ui.panelTitle.textContent = plainText(cit.title || cit.doc_id);
    ui.panelMeta.textContent = "";
    clear(ui.panelBody);
    ui.panelBody.appendChild(el("p", "typing", t("panel.loading")));

    let doc;
    try {
      const res = await fetch("/api/documents/" + encodeURIComponent(cit.doc_id));
      if (!res.ok) {
        const failure = new Error("HTTP " + res.status);
        failure.info = await readError(res);
        throw failure;
      }
      doc = await res.json();
    } catch (err) {
      if (request !== state.panelRequest) return;
      clear(ui.panelBody);
      const info = err.info || { key: "error.offline", detail: err.message };
      ui.panelBody.appendChild(el("p", "error", t("panel.failed", { why: errorWords(info) })));
      return;
    }
    if (request !== state.panelRequest) return; // another passage was opened meanwhile

    ui.panelTitle.textContent = plainText(doc.title || cit.title);
    const md = doc.metadata || {};
    const date = cit.date || md.date; // the publication date (rag/ingest/pubdate.py), else the front matter's
    const meta = [ // PDF page of the cited passage, date (its source on hover), author, source
      cit.page && document.createTextNode(t("page", { n: cit.page })),
      date && dateLabel("panel-date", "", { date, date_source: cit.date ? cit.date_source : "front_matter" }),
      md.author && document.createTextNode(md.author),
      md.source && document.createTextNode(md.source),
    ].filter(Boolean);
    clear(ui.panelMeta);
    meta.forEach((node, i) => {
      if (i) ui.panelMeta.appendChild(document.createTextNode(" · "));
      ui.panelMeta.appendChild(node);
    });
    if (md.url && /^https?:\/\//i.test(md.url)) {
      if (meta.length) ui.panelMeta.appendChild(document.createTextNode(" · "));
      const a = el("a", null, t("panel.original"));
      a.href = md.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      ui.panelMeta.appendChild(a);
    }

    const text = doc.text || "";
    let start = cit.start, end = cit.end;
    if (!(start >= 0 && end > start && end <= text.length && text.slice(start, end) === cit.text)) {
      const at = cit.text ? text.indexOf(cit.text) : -1; // offsets do not fit (index changed): look it up
      if (at >= 0) { start = at; end = at + cit.text.length; } else { start = end = -1; }
    }

    clear(ui.panelBody);
    const article = el("div", "article-text");
    let mark = null;
    if (start >= 0) {
      // a heading at the top of the passage is not part of what is cited
      while (start < end && text[start] === "#") {
        const nl = text.indexOf("\n", start);
        if (nl < 0 || nl >= end) break;
        start = nl + 1;
        while (start < end && /\s/.test(text[start])) start++;
      }
      // the quoted sentences (extractive answers) stand out inside their passage
      const quotes = (cit.quotes || [])
        .filter((q) => q.start >= start && q.end <= end && q.end > q.start)
        .sort((a, b) => a.start - b.start);
      article.appendChild(document.createTextNode(plainText(text.slice(0, start))));
      mark = el("mark", "passage");
      mark.id = "cited-passage";
      let pos = start;
      let first = null;
      for (const q of quotes) {
        if (q.start < pos) continue;
        mark.appendChild(document.createTextNode(plainText(text.slice(pos, q.start))));
        const strong = el("mark", "quote", plainText(text.slice(q.start, q.end)));
        mark.appendChild(strong);
        if (!first) first = strong;
        pos = q.end;
      }
      mark.appendChild(document.createTextNode(plainText(text.slice(pos, end))));
      if (quotes.length) mark.classList.add("has-quotes");
      article.appendChild(mark);
      article.appendChild(document.createTextNode(plainText(text.slice(end))));
      if (first) mark = first;
    } else {
      ui.panelBody.appendChild(el("p", "error", t("panel.missing")));
      article.appendChild(document.createTextNode(plainText(text)));
    }
    ui.panelBody.appendChild(article);
    if (mark) mark.scrollIntoView({ block: "center" });
  }

  // ------------------------------------------------------------------ wiring
  ui.form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = ui.question.value.trim();
    if (!q || state.busy) return;
    ui.question.value = "";
    ask(q);
  });

  ui.question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ui.form.requestSubmit();
    }
  });

  document.querySelectorAll(".example").forEach((b) =>
    b.addEventListener("click", () => {
      if (state.busy) return;
      ask(b.textContent);
    }));

  ui.newChat.addEventListener("click", () => {
    state.history = [];
    ui.messages.querySelectorAll(".msg").forEach((m) => m.remove());
    if (ui.intro) ui.intro.hidden = false;
    closePanel();
    ui.question.focus();
  });

  ui.panelClose.addEventListener("click", closePanel);
  ui.statusToggle.addEventListener("click", () => setStatusOpen(!document.body.classList.contains("status-open")));
  document.addEventListener("click", (e) => { // a tap elsewhere closes the status details
    if (document.body.classList.contains("status-open") && !ui.status.contains(e.target) && !ui.statusToggle.contains(e.target)) {
      setStatusOpen(false);
    }
  });
  I18N.onChange(() => renderHealth(state.health));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !ui.panel.hidden) closePanel();
    if (e.key === "Escape") setStatusOpen(false);
  });

  document.addEventListener("rag:changed", loadHealth); // api/static/upload.js added or removed an article
  loadHealth();
  setInterval(loadHealth, 30000);
})();
