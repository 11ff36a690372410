// The chat page: asks /api/ask with streaming (Server-Sent Events over fetch), renders
// citation markers [n] as buttons, and shows a cited passage highlighted in its article.
// Model output and article text are only ever inserted as text (textContent /
// createTextNode) -- never as HTML.
"use strict";

(function () {
  const HISTORY_TURNS = 12; // messages sent along with a follow-up question

  const ui = {
    messages: document.getElementById("messages"),
    intro: document.getElementById("intro"),
    form: document.getElementById("ask-form"),
    question: document.getElementById("question"),
    send: document.getElementById("send"),
    status: document.getElementById("status"),
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
      renderHealth(await res.json());
    } catch (err) {
      clear(ui.status);
      ui.status.appendChild(el("span", "badge bad", "Server niet bereikbaar"));
    }
  }

  function backendName(generator) {
    return generator === "openai" ? "OpenAI-compatibele server" : generator === "ollama" ? "Ollama" : generator;
  }

  function renderHealth(h) {
    clear(ui.status);
    if (h.generator && h.generator !== "extractive") {
      ui.status.appendChild(el("span", "badge good", "Antwoorden: " + backendName(h.generator) + " (" + h.ollama.model + ")"));
    } else {
      // one short note instead of a warning under every answer
      const note = el("span", "badge warn", "Geen taalmodel bereikbaar: antwoorden zijn letterlijke zinnen uit de artikelen");
      if (h.ollama && h.ollama.detail) note.title = h.ollama.detail;
      ui.status.appendChild(note);
    }
    ui.status.appendChild(el("span", "badge", h.documents + " artikelen · " + h.chunks + " passages"));
    const name = String(h.embedding_model || "").split("/").pop();
    const emb = el("span", h.embedding_fallback ? "badge warn" : "badge", "Embedding: " + name);
    if (h.embedding_source) emb.textContent += " · " + h.embedding_source;
    emb.title = h.embedding_fallback || [h.embedding_model, h.embedding_backend, h.embedding_source].filter(Boolean).join(" · ");
    if (h.embedding_fallback) emb.textContent += " (noodmodel)";
    ui.status.appendChild(emb);
  }

  // ------------------------------------------------------------------ messages
  function addUserMessage(text) {
    if (ui.intro) ui.intro.hidden = true;
    const msg = el("article", "msg user");
    msg.appendChild(el("div", "bubble", text));
    ui.messages.appendChild(msg);
    scrollToEnd();
  }

  function addAssistantMessage() {
    const msg = el("article", "msg assistant");
    const bubble = el("div", "bubble");
    const body = el("div", "answer");
    const typing = el("span", "typing", "Zoeken in de artikelen…");
    body.appendChild(typing);
    const meta = el("div", "meta");
    const warnings = el("ul", "warnings");
    warnings.hidden = true;
    const sources = el("details", "sources");
    sources.hidden = true;
    bubble.append(body, meta, warnings, sources);
    msg.appendChild(bubble);
    ui.messages.appendChild(msg);
    scrollToEnd();
    return { msg, body, meta, warnings, sources, text: "", hits: [], answer: null };
  }

  function showError(view, message) {
    clear(view.body);
    view.body.appendChild(el("p", "error", "Er ging iets mis: " + message));
    view.msg.classList.add("failed");
  }

  // Citation markers: [1], [2, 3], [1][2]
  const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

  function renderAnswerText(container, text, lookup) {
    clear(container);
    let last = 0;
    for (const m of text.matchAll(MARKER)) {
      if (m.index > last) container.appendChild(document.createTextNode(text.slice(last, m.index)));
      const numbers = m[1].split(",").map((s) => parseInt(s.trim(), 10));
      const known = numbers.filter((n) => lookup(n));
      if (!known.length) {
        container.appendChild(document.createTextNode(m[0]));
      } else {
        for (const n of numbers) {
          const cit = lookup(n);
          if (!cit) continue;
          const btn = el("button", "cite", String(n));
          btn.type = "button";
          btn.dataset.n = String(n);
          btn.title = cit.title + " — toon de passage";
          btn.setAttribute("aria-label", "Bron " + n + ": " + cit.title);
          btn.addEventListener("click", () => openPassage(cit, btn));
          container.appendChild(btn);
        }
      }
      last = m.index + m[0].length;
    }
    if (last < text.length) container.appendChild(document.createTextNode(text.slice(last)));
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
      return h ? { n, doc_id: h.doc_id, title: h.title, text: h.text, start: h.start, end: h.end } : null;
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
    view.sources.appendChild(el("summary", null, "Gevonden passages (" + view.hits.length + ")"));
    const list = el("ol", "source-list");
    view.hits.forEach((h, i) => {
      const item = el("li");
      const btn = el("button", "source-link", h.title);
      btn.type = "button";
      btn.addEventListener("click", () =>
        openPassage({ n: i + 1, doc_id: h.doc_id, title: h.title, text: h.text, start: h.start, end: h.end }, btn));
      item.appendChild(btn);
      item.appendChild(el("p", "snippet", h.text.length > 220 ? h.text.slice(0, 220) + "…" : h.text));
      list.appendChild(item);
    });
    view.sources.appendChild(list);
  }

  function renderDone(view, answer) {
    view.answer = answer;
    view.msg.classList.toggle("abstained", !!answer.abstained);
    renderAnswerText(view.body, answer.answer || "", citationLookup(view));
    renderSources(view, answer.abstained ? [] : answer.sources);

    clear(view.meta);
    const byLLM = answer.generator && answer.generator !== "extractive";
    const gen = byLLM ? "Beantwoord door " + backendName(answer.generator) : "Extractief antwoord (zonder taalmodel)";
    view.meta.appendChild(el("span", "badge " + (byLLM ? "good" : "warn"), gen));
    if (answer.abstained) view.meta.appendChild(el("span", "badge", "geen antwoord in de bronnen"));
    if (answer.standalone_question && answer.standalone_question !== answer.question) {
      view.meta.appendChild(el("span", "badge subtle", "Gezocht als: " + answer.standalone_question));
    }
    const t = answer.timings || {};
    const total = Object.values(t).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
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
  async function readError(res) {
    let message = "HTTP " + res.status;
    try {
      const data = await res.json();
      if (data && data.detail) message = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch (e) { /* not JSON */ }
    if (res.status === 503 && res.headers.get("Retry-After")) {
      message += " (probeer het over " + res.headers.get("Retry-After") + " s opnieuw)";
    }
    return message;
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
    addUserMessage(question);
    const view = addAssistantMessage();
    let finished = false;
    let streamed = null;

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
            streamed = document.createTextNode("");
            view.body.appendChild(streamed);
            view.body.appendChild(el("span", "cursor", "▍"));
          } else if (name === "token") {
            if (!streamed) {
              clear(view.body);
              streamed = document.createTextNode("");
              view.body.appendChild(streamed);
            }
            view.text += data.text;
            streamed.data = view.text;
            scrollToEnd();
          } else if (name === "done") {
            renderDone(view, data);
            finished = true;
          } else if (name === "error") {
            showError(view, data.message || "onbekende fout");
            finished = true;
          }
        });
        if (!finished) showError(view, "de verbinding werd verbroken voordat het antwoord klaar was");
      }
      if (finished && view.answer) {
        state.history.push({ role: "user", content: question });
        state.history.push({ role: "assistant", content: view.answer.answer || "" });
      }
    } catch (err) {
      showError(view, "geen verbinding met de server (" + err.message + ")");
    } finally {
      state.busy = false;
      ui.send.disabled = false;
      ui.form.classList.remove("busy");
      ui.question.focus();
      loadHealth(); // the generator in use may have changed (e.g. Ollama went away)
    }
  }

  // ------------------------------------------------------------------ side panel
  function formatDate(value) {
    const d = new Date(value);
    if (!value || isNaN(d.getTime())) return value || "";
    return d.toLocaleDateString("nl-NL", { year: "numeric", month: "long", day: "numeric" });
  }

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
    ui.panelTitle.textContent = cit.title || cit.doc_id;
    ui.panelMeta.textContent = "";
    clear(ui.panelBody);
    ui.panelBody.appendChild(el("p", "typing", "Artikel laden…"));

    let doc;
    try {
      const res = await fetch("/api/documents/" + encodeURIComponent(cit.doc_id));
      if (!res.ok) throw new Error(await readError(res));
      doc = await res.json();
    } catch (err) {
      if (request !== state.panelRequest) return;
      clear(ui.panelBody);
      ui.panelBody.appendChild(el("p", "error", "Kon het artikel niet laden: " + err.message));
      return;
    }
    if (request !== state.panelRequest) return; // another passage was opened meanwhile

    ui.panelTitle.textContent = doc.title || cit.title;
    const md = doc.metadata || {};
    const meta = [];
    if (md.date) meta.push(formatDate(md.date));
    if (md.author) meta.push(md.author);
    if (md.source) meta.push(md.source);
    if (cit.page) meta.unshift("p. " + cit.page); // PDF page of the cited passage
    ui.panelMeta.textContent = meta.join(" · ");
    if (md.url && /^https?:\/\//i.test(md.url)) {
      if (meta.length) ui.panelMeta.appendChild(document.createTextNode(" · "));
      const a = el("a", null, "origineel artikel");
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
      article.appendChild(document.createTextNode(text.slice(0, start)));
      mark = el("mark", "passage");
      mark.id = "cited-passage";
      let pos = start;
      let first = null;
      for (const q of quotes) {
        if (q.start < pos) continue;
        mark.appendChild(document.createTextNode(text.slice(pos, q.start)));
        const strong = el("mark", "quote", text.slice(q.start, q.end));
        mark.appendChild(strong);
        if (!first) first = strong;
        pos = q.end;
      }
      mark.appendChild(document.createTextNode(text.slice(pos, end)));
      if (quotes.length) mark.classList.add("has-quotes");
      article.appendChild(mark);
      article.appendChild(document.createTextNode(text.slice(end)));
      if (first) mark = first;
    } else {
      ui.panelBody.appendChild(el("p", "error", "De geciteerde passage staat niet (meer) letterlijk in dit artikel."));
      article.appendChild(document.createTextNode(text));
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
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !ui.panel.hidden) closePanel();
  });

  loadHealth();
  setInterval(loadHealth, 30000);
})();
