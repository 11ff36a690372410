// Adding articles from the chat page: a button in the top bar opens a box with a drop zone and a
// file picker. Files go to POST /api/documents with the admin key (asked once per browser session,
// kept in sessionStorage, sent as "Authorization: Bearer ..." -- never as a cookie). The result is
// shown as text; a just-added article can be removed again (DELETE /api/documents/{id}).
"use strict";

(function () {
  const KEY = "rag-api-key";
  const TYPES = [".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"];

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = "/static/upload.css";
  document.head.appendChild(css);

  const topbar = document.querySelector(".topbar");
  const chat = document.querySelector(".chat");
  if (!topbar || !chat) return;

  const toggle = el("button", "ghost", "Artikel toevoegen");
  toggle.type = "button";
  toggle.id = "upload-toggle";
  toggle.setAttribute("aria-expanded", "false");
  topbar.appendChild(toggle);

  const box = el("section", "upload-box");
  box.id = "upload-box";
  box.hidden = true;
  box.setAttribute("aria-label", "Artikelen toevoegen");

  const keyRow = el("div", "upload-key");
  const keyLabel = el("label", null, "Beheersleutel (RAG_API_KEY)");
  keyLabel.htmlFor = "upload-key";
  const keyInput = el("input");
  keyInput.type = "password";
  keyInput.id = "upload-key";
  keyInput.autocomplete = "off";
  keyRow.append(keyLabel, keyInput);

  const drop = el("label", "upload-drop");
  drop.htmlFor = "upload-file";
  drop.appendChild(el("span", null, "Sleep een bestand hierheen of klik om te kiezen"));
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
  box.append(keyRow, drop, results);
  chat.insertBefore(box, document.getElementById("messages"));

  function storedKey() {
    try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  }
  function storeKey(k) {
    try { if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ }
  }
  function refreshKeyRow() { keyRow.hidden = Boolean(storedKey()); }

  toggle.addEventListener("click", () => {
    box.hidden = !box.hidden;
    toggle.setAttribute("aria-expanded", String(!box.hidden));
    refreshKeyRow();
    if (!box.hidden && !keyRow.hidden) keyInput.focus();
  });

  async function errorText(res) {
    try {
      const data = await res.json();
      if (data && data.detail) return typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch (e) { /* not JSON */ }
    return "HTTP " + res.status;
  }

  function line(kind, text) {
    const li = el("li", "upload-" + kind, text);
    results.prepend(li);
    return li;
  }

  function currentKey() {
    const typed = keyInput.value.trim();
    if (typed) { storeKey(typed); keyInput.value = ""; }
    refreshKeyRow();
    return storedKey();
  }

  async function send(file) {
    const key = currentKey();
    if (!key) { line("error", "Vul eerst de beheersleutel in."); keyRow.hidden = false; keyInput.focus(); return; }
    const row = line("busy", "Bezig met " + file.name + "…");
    const form = new FormData();
    form.append("file", file, file.name);
    let res;
    try {
      res = await fetch("/api/documents", { method: "POST", body: form, headers: { Authorization: "Bearer " + key } });
    } catch (err) {
      row.className = "upload-error";
      row.textContent = file.name + ": server niet bereikbaar";
      return;
    }
    if (res.status === 401) { storeKey(""); refreshKeyRow(); }
    if (!res.ok) {
      row.className = "upload-error";
      row.textContent = file.name + ": " + (await errorText(res));
      return;
    }
    const data = await res.json();
    const d = data.document;
    row.className = "upload-ok";
    row.textContent = "Toegevoegd: " + d.title + " (" + d.chunks + " passages) ";
    const remove = el("button", "ghost small", "verwijderen");
    remove.type = "button";
    remove.addEventListener("click", () => removeDoc(d, row));
    row.appendChild(remove);
  }

  async function removeDoc(doc, row) {
    const key = storedKey();
    const res = await fetch("/api/documents/" + encodeURIComponent(doc.doc_id),
                            { method: "DELETE", headers: { Authorization: "Bearer " + key } });
    row.className = res.ok ? "upload-removed" : "upload-error";
    row.textContent = res.ok ? "Verwijderd: " + doc.title : doc.title + ": " + (await errorText(res));
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
