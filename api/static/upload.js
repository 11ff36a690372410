// Adding articles from the chat page: a button in the top bar opens a side sheet (an overlay: the
// conversation and the question field stay where they are) with a drop zone and a file picker.
// The button exists only when the server can take uploads (/health "uploads": RAG_API_KEY is set).
// Files go to POST /api/documents with the admin key (asked once per browser session, kept in
// sessionStorage, sent as "Authorization: Bearer ..." -- never as a cookie). A refusal is worded
// from its stable "code" (api/static/i18n.js), not from the server's English message; a
// successful upload clears the error lines before it. A just-added article can be removed again.
"use strict";

(function () {
  const KEY = "rag-api-key";
  const TYPES = [".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"];
  const { t } = window.I18N;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const actions = document.getElementById("actions");
  if (!actions) return;

  const toggle = el("button", "ghost upload-toggle");
  toggle.type = "button";
  toggle.id = "upload-toggle";
  toggle.setAttribute("aria-expanded", "false");
  toggle.setAttribute("aria-controls", "upload-box");
  const toggleLong = el("span", "long");
  const toggleShort = el("span", "short");
  toggle.append(toggleLong, toggleShort);
  toggle.hidden = true; // until /health says uploads are possible

  const box = el("section", "upload-box");
  box.id = "upload-box";
  box.hidden = true;
  box.setAttribute("role", "dialog");
  const head = el("div", "upload-head");
  const heading = el("h2");
  const close = el("button", "ghost close", "✕");
  close.type = "button";
  close.id = "upload-close";
  head.append(heading, close);

  const keyRow = el("div", "upload-key");
  const keyLabel = el("label");
  keyLabel.htmlFor = "upload-key";
  const keyInput = el("input");
  keyInput.type = "password";
  keyInput.id = "upload-key";
  keyInput.autocomplete = "off";
  keyRow.append(keyLabel, keyInput);

  const drop = el("label", "upload-drop");
  drop.htmlFor = "upload-file";
  const dropText = el("span");
  drop.appendChild(dropText);
  drop.appendChild(el("small", null, TYPES.join(" ")));
  const picker = el("input");
  picker.type = "file";
  picker.id = "upload-file";
  picker.accept = TYPES.join(",");
  picker.multiple = true;
  drop.appendChild(picker);

  const results = el("ul", "upload-results");
  results.id = "upload-results";
  results.setAttribute("aria-live", "polite");
  box.append(head, keyRow, drop, results);
  actions.insertBefore(toggle, actions.firstChild);
  document.body.appendChild(box);

  function words() {
    toggleLong.textContent = t("upload.toggle");
    toggleShort.textContent = t("upload.toggle.short");
    toggle.title = t("upload.toggle");
    box.setAttribute("aria-label", t("upload.box"));
    heading.textContent = t("upload.box");
    close.setAttribute("aria-label", t("upload.close"));
    keyLabel.textContent = t("upload.key");
    dropText.textContent = t("upload.drop");
  }
  words();
  I18N.onChange(words);

  // shown only when the server has a key (and hidden again when it goes away)
  function follow(health) {
    const on = Boolean(health && health.uploads);
    toggle.hidden = !on;
    if (!on && !box.hidden) setOpen(false);
  }
  document.addEventListener("rag:health", (e) => follow(e.detail));
  if (window.ragHealth) follow(window.ragHealth);

  function storedKey() {
    try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  }
  function storeKey(k) {
    try { if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ }
  }
  function refreshKeyRow() { keyRow.hidden = Boolean(storedKey()); }

  function setOpen(open) {
    box.hidden = !open;
    document.body.classList.toggle("upload-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    if (!open) return;
    refreshKeyRow();
    if (!keyRow.hidden) keyInput.focus();
  }
  toggle.addEventListener("click", () => setOpen(box.hidden));
  close.addEventListener("click", () => setOpen(false));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !box.hidden) setOpen(false); });

  // the page's words for a refused upload: from the response's code (or its status)
  async function refusal(res, name) {
    let code = "";
    try {
      const data = await res.json();
      code = (data && data.code) || "";
    } catch (e) { /* not JSON */ }
    if (!code && res.status === 413) code = "too_large";
    if (!code && res.status === 401) code = "api_key_required";
    const key = "upload.code." + code;
    return t(I18N.has(key) ? key : "upload.code.other", { name, status: res.status, types: TYPES.join(" ") });
  }

  function line(kind, text) {
    const li = el("li", "upload-" + kind, text);
    results.prepend(li);
    return li;
  }

  function clearErrors() {
    results.querySelectorAll(".upload-error").forEach((li) => li.remove());
  }

  function currentKey() {
    const typed = keyInput.value.trim();
    if (typed) { storeKey(typed); keyInput.value = ""; }
    refreshKeyRow();
    return storedKey();
  }

  async function send(file) {
    const key = currentKey();
    if (!key) { line("error", t("upload.needKey")); keyRow.hidden = false; keyInput.focus(); return; }
    const row = line("busy", t("upload.busy", { name: file.name }));
    const form = new FormData();
    form.append("file", file, file.name);
    let res;
    try {
      res = await fetch("/api/documents", { method: "POST", body: form, headers: { Authorization: "Bearer " + key } });
    } catch (err) {
      row.className = "upload-error";
      row.textContent = t("upload.offline", { name: file.name });
      return;
    }
    if (res.status === 401) { storeKey(""); refreshKeyRow(); }
    if (!res.ok) {
      row.className = "upload-error";
      row.dataset.status = String(res.status);
      row.textContent = await refusal(res, file.name);
      return;
    }
    const data = await res.json();
    const d = data.document;
    clearErrors(); // old refusals are history once an upload worked
    row.className = "upload-ok";
    row.textContent = t("upload.ok", { title: I18N.plainText(d.title), passages: t("count.passages", { n: d.chunks }) });
    document.dispatchEvent(new CustomEvent("rag:changed")); // the page's counts follow at once
    const remove = el("button", "ghost small", t("upload.remove"));
    remove.type = "button";
    remove.addEventListener("click", () => removeDoc(d, row));
    row.appendChild(remove);
  }

  async function removeDoc(doc, row) {
    const key = storedKey();
    const res = await fetch("/api/documents/" + encodeURIComponent(doc.doc_id),
                            { method: "DELETE", headers: { Authorization: "Bearer " + key } });
    row.className = res.ok ? "upload-removed" : "upload-error";
    if (res.ok) document.dispatchEvent(new CustomEvent("rag:changed"));
    row.textContent = res.ok ? t("upload.removed", { title: I18N.plainText(doc.title) }) : await refusal(res, doc.title);
  }

  async function sendAll(files) {
    for (const f of Array.from(files)) await send(f);
  }

  picker.addEventListener("change", () => { sendAll(picker.files); picker.value = ""; });
  ["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) sendAll(e.dataTransfer.files);
  });
})();
