// The page's words in Dutch and English, and the choice between them (issue 19 point 5):
// Dutch when the browser is Dutch (navigator.language) or the last question was Dutch, English
// otherwise. Server messages are never translated here: errors are worded from their stable
// ``code`` / ``error`` kind, with the server's text kept only as a tooltip.
// Also: plainText(), which shows Markdown as plain words ("# Titel" -> "Titel").
"use strict";

(function () {
  const WORDS = {
    nl: {
      "page.title": "Noord-Korea in het nieuws — vraag & antwoord",
      "brand": "Noord-Korea in het nieuws",
      "subtitle": "Stel een vraag over de artikelen; elk antwoord noemt zijn bronnen.",
      "newChat": "Nieuw gesprek",
      "newChat.short": "Nieuw",
      "newChat.title": "Begin een nieuw gesprek",
      "status.loading": "Status laden…",
      "status.toggle": "Status",
      "status.toggle.title": "Toon de status van de server",
      "status.down": "Server niet bereikbaar",
      "status.ollama": "Antwoorden: Ollama ({model})",
      "status.extractive": "Geen taalmodel bereikbaar: antwoorden zijn letterlijke zinnen uit de artikelen",
      "status.extractive.short": "Zonder taalmodel",
      "count.articles": { one: "{n} artikel", other: "{n} artikelen" },
      "count.passages": { one: "{n} passage", other: "{n} passages" },
      "status.model": "Zoekmodel: {name} (lokaal)",
      "status.model.fallback": "Zoekmodel: {name} (lokaal, noodmodel)",
      "model.e5": "meertalig e5",
      "model.minilm": "MiniLM (Engels)",
      "intro": "Probeer bijvoorbeeld:",
      "ask.label": "Je vraag",
      "ask.placeholder": "Stel je vraag…",
      "ask.title": "Enter verstuurt, Shift+Enter geeft een nieuwe regel",
      "ask.send": "Vraag",
      "searching": "Zoeken in de artikelen…",
      "gen.ollama": "Beantwoord door Ollama",
      "gen.extractive": "Extractief antwoord (zonder taalmodel)",
      "support.uncertain": "Onzeker",
      "support.uncertain.title": "Geen zin beantwoordt de vraag precies; dit zijn de dichtstbijzijnde passages",
      "verdict.unsupported": "niet gevonden in de bron",
      "verdict.off_question": "geen antwoord op de vraag",
      "verdict.supports": "Steunt het antwoord:",
      "support.abstained": "Geen antwoord in de bronnen",
      "searchedAs": "Gezocht als: {q}",
      "sources": "Bronnen",
      "found": "Gevonden passages ({n})",
      "cite.title": "{title} — toon de passage",
      "cite.label": "Bron {n}: {title}",
      "page": "p. {n}",
      "date.source.front_matter": "Datum uit de kopgegevens (front matter) van het artikel",
      "date.source.text": "Datum uit de tekst van het artikel (\u201cverscheen op\u2026\u201d, \u201cGepubliceerd:\u2026\u201d)",
      "date.source.byline": "Datum uit de auteursregel van het artikel",
      "date.source.file_property": "Datum uit de eigenschappen van het bestand (PDF, Word of webpagina); niet in de tekst gevonden",
      "panel.kicker": "Bron",
      "panel.close": "Sluit het bronpaneel",
      "panel.loading": "Artikel laden…",
      "panel.failed": "Kon het artikel niet laden: {why}",
      "panel.missing": "De geciteerde passage staat niet (meer) letterlijk in dit artikel.",
      "panel.original": "origineel artikel",
      "error.prefix": "Er ging iets mis: {why}",
      "error.busy": "de server is bezig met andere vragen",
      "error.retry": "probeer het over {s} s opnieuw",
      "error.noIndex": "er is nog geen index van de artikelen (bouw hem met `rag index`)",
      "error.index": "de index kan niet gelezen worden (bouw hem opnieuw met `rag index --rebuild`)",
      "error.store": "de database met de artikelen antwoordt niet",
      "error.llm": "het taalmodel antwoordde niet goed",
      "error.llmTimeout": "het taalmodel antwoordde niet op tijd",
      "error.question": "deze vraag kan zo niet gesteld worden (te lang of leeg?)",
      "error.tooLarge": "het verzoek is te groot",
      "error.internal": "een onverwachte fout in de server",
      "error.http": "de server antwoordde met foutcode {status}",
      "error.unknown": "onbekende fout",
      "error.cut": "de verbinding werd verbroken voordat het antwoord klaar was",
      "error.offline": "geen verbinding met de server",
      "upload.toggle": "Artikel toevoegen",
      "upload.toggle.short": "+ Artikel",
      "upload.box": "Artikelen toevoegen",
      "upload.close": "Sluit",
      "upload.key": "Beheersleutel (RAG_API_KEY)",
      "upload.drop": "Sleep een bestand hierheen of klik om te kiezen",
      "upload.needKey": "Vul eerst de beheersleutel in.",
      "upload.busy": "Bezig met {name}…",
      "upload.ok": "Toegevoegd: {title} ({passages}) ",
      "upload.remove": "verwijderen",
      "upload.removed": "Verwijderd: {title}",
      "upload.offline": "{name}: server niet bereikbaar",
      "upload.code.empty_file": "‘{name}’ is leeg",
      "upload.code.binary_file": "‘{name}’ is geen tekstbestand (het bevat binaire gegevens)",
      "upload.code.not_text": "‘{name}’ is geen leesbare tekst (gebruik UTF-8)",
      "upload.code.no_text": "‘{name}’ bevat geen tekst",
      "upload.code.unsupported_type": "‘{name}’: dit soort bestand wordt niet ondersteund (gebruik {types})",
      "upload.code.too_large": "‘{name}’ is te groot",
      "upload.code.bad_name": "‘{name}’: deze bestandsnaam kan niet (geen mappen, niet met een punt beginnen)",
      "upload.code.duplicate": "‘{name}’ staat al in het archief",
      "upload.code.not_an_article": "‘{name}’ is niet als artikel te gebruiken (beschadigd of leeg?)",
      "upload.code.not_indexed": "‘{name}’ kon niet in de index worden opgenomen",
      "upload.code.last_article": "Dit is het laatste artikel; het archief kan niet leeg zijn",
      "upload.code.api_key_required": "De beheersleutel klopt niet; vul hem opnieuw in",
      "upload.code.uploads_off": "Artikelen toevoegen staat uit op deze server (geen RAG_API_KEY)",
      "upload.code.other": "‘{name}’ kon niet worden toegevoegd (foutcode {status})",
      "examples": ["Wie is Jihyun Park?", "Waarom blokkeerde Rusland het VN-panel?",
                   "Wat censureerde Noord-Korea in het tuinierprogramma?"],
    },
    en: {
      "page.title": "North Korea in the news — questions & answers",
      "brand": "North Korea in the news",
      "subtitle": "Ask about the articles; every answer names its sources.",
      "newChat": "New conversation",
      "newChat.short": "New",
      "newChat.title": "Start a new conversation",
      "status.loading": "Loading status…",
      "status.toggle": "Status",
      "status.toggle.title": "Show the server's status",
      "status.down": "Server not reachable",
      "status.ollama": "Answers: Ollama ({model})",
      "status.extractive": "No language model reachable: answers are exact sentences from the articles",
      "status.extractive.short": "No language model",
      "count.articles": { one: "{n} article", other: "{n} articles" },
      "count.passages": { one: "{n} passage", other: "{n} passages" },
      "status.model": "Search model: {name} (local)",
      "status.model.fallback": "Search model: {name} (local, fallback)",
      "model.e5": "multilingual e5",
      "model.minilm": "MiniLM (English)",
      "intro": "Try for example:",
      "ask.label": "Your question",
      "ask.placeholder": "Ask your question…",
      "ask.title": "Enter sends, Shift+Enter starts a new line",
      "ask.send": "Ask",
      "searching": "Searching the articles…",
      "gen.ollama": "Answered by Ollama",
      "gen.extractive": "Extractive answer (no language model)",
      "support.uncertain": "Uncertain",
      "support.uncertain.title": "No sentence answers the question exactly; these are the closest passages",
      "verdict.unsupported": "not found in the source",
      "verdict.off_question": "does not answer the question",
      "verdict.supports": "Supports the answer:",
      "support.abstained": "No answer in the sources",
      "searchedAs": "Searched as: {q}",
      "sources": "Sources",
      "found": "Passages found ({n})",
      "cite.title": "{title} — show the passage",
      "cite.label": "Source {n}: {title}",
      "page": "p. {n}",
      "date.source.front_matter": "Date from the article's front matter",
      "date.source.text": "Date from the article's text (\u201cappeared on\u2026\u201d, \u201cPublished:\u2026\u201d)",
      "date.source.byline": "Date from the article's byline",
      "date.source.file_property": "Date from the file's properties (PDF, Word or web page); none found in the text",
      "panel.kicker": "Source",
      "panel.close": "Close the source panel",
      "panel.loading": "Loading the article…",
      "panel.failed": "Could not load the article: {why}",
      "panel.missing": "The cited passage is no longer word for word in this article.",
      "panel.original": "original article",
      "error.prefix": "Something went wrong: {why}",
      "error.busy": "the server is busy with other questions",
      "error.retry": "try again in {s} s",
      "error.noIndex": "there is no index of the articles yet (build it with `rag index`)",
      "error.index": "the index cannot be read (rebuild it with `rag index --rebuild`)",
      "error.store": "the article database does not answer",
      "error.llm": "the language model did not answer properly",
      "error.llmTimeout": "the language model did not answer in time",
      "error.question": "this question cannot be asked like this (too long or empty?)",
      "error.tooLarge": "the request is too large",
      "error.internal": "an unexpected error in the server",
      "error.http": "the server answered with error code {status}",
      "error.unknown": "unknown error",
      "error.cut": "the connection broke before the answer was complete",
      "error.offline": "no connection to the server",
      "upload.toggle": "Add an article",
      "upload.toggle.short": "+ Article",
      "upload.box": "Add articles",
      "upload.close": "Close",
      "upload.key": "Admin key (RAG_API_KEY)",
      "upload.drop": "Drop a file here or click to choose one",
      "upload.needKey": "Enter the admin key first.",
      "upload.busy": "Adding {name}…",
      "upload.ok": "Added: {title} ({passages}) ",
      "upload.remove": "remove",
      "upload.removed": "Removed: {title}",
      "upload.offline": "{name}: server not reachable",
      "upload.code.empty_file": "‘{name}’ is empty",
      "upload.code.binary_file": "‘{name}’ is not a text file (it contains binary data)",
      "upload.code.not_text": "‘{name}’ is not readable text (use UTF-8)",
      "upload.code.no_text": "‘{name}’ contains no text",
      "upload.code.unsupported_type": "‘{name}’: this kind of file is not supported (use {types})",
      "upload.code.too_large": "‘{name}’ is too large",
      "upload.code.bad_name": "‘{name}’: this file name cannot be used (no folders, no leading dot)",
      "upload.code.duplicate": "‘{name}’ is already in the archive",
      "upload.code.not_an_article": "‘{name}’ cannot be used as an article (damaged or empty?)",
      "upload.code.not_indexed": "‘{name}’ could not be added to the index",
      "upload.code.last_article": "This is the last article; the archive cannot be empty",
      "upload.code.api_key_required": "The admin key is not right; enter it again",
      "upload.code.uploads_off": "Adding articles is off on this server (no RAG_API_KEY)",
      "upload.code.other": "‘{name}’ could not be added (error code {status})",
      "examples": ["Who is Jihyun Park?", "Why did Russia block the UN panel?",
                   "What did North Korea censor in the gardening programme?"],
    },
  };

  const LOCALES = { nl: "nl-NL", en: "en-GB" };
  const listeners = [];

  function browserLanguage() {
    const langs = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language]) || [];
    return String(langs[0] || "").toLowerCase().startsWith("nl") ? "nl" : "en";
  }

  // Function words that tell Dutch from English in a short question.
  const NL = new Set(("de het een en van is zijn was waren wie wat waar waarom hoe hoeveel hoelang welke welk " +
    "wanneer heeft hebben had er in op met voor dat die dit deze niet ook naar bij om uit over door ze hij zij " +
    "je jij u wordt werd kan kunnen zou noord-korea rusland nog al sinds tussen").split(" "));
  const EN = new Set(("the a an and of is are was were who what where why how many much which when has have had " +
    "there in on with for that this these not also to at from about by she he they you does did do can could " +
    "would north korea russia since between").split(" "));

  // "nl" | "en" | null (cannot tell) for a question.
  function detectLanguage(text) {
    const words = String(text || "").toLowerCase().match(/[\p{L}-]+/gu) || [];
    let nl = 0, en = 0;
    for (const w of words) {
      if (NL.has(w)) nl++;
      if (EN.has(w)) en++;
    }
    if (/[ëïéèö]|ij/.test(String(text).toLowerCase())) nl += 0.5;
    if (nl === en) return null;
    return nl > en ? "nl" : "en";
  }

  const state = { browser: browserLanguage(), question: null };

  // Dutch when the browser or the last question is Dutch.
  function current() {
    return state.browser === "nl" || state.question === "nl" ? "nl" : "en";
  }

  // t("count.articles", {n: 1}) -> "1 artikel": a word with forms {one, other} takes the one for vars.n.
  function t(key, vars, lang) {
    const words = WORDS[lang || current()] || WORDS.en;
    let s = key in words ? words[key] : WORDS.en[key];
    if (s === undefined) return key;
    if (s && typeof s === "object" && !Array.isArray(s)) s = Number((vars || {}).n) === 1 ? s.one : s.other;
    if (typeof s !== "string") return s;
    for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function has(key) { return key in WORDS.en; }

  // The question's language decides from now on (together with the browser's).
  function noteQuestion(text) {
    const before = current();
    const lang = detectLanguage(text);
    if (lang) state.question = lang;
    if (current() !== before) apply();
    return current();
  }

  // Fill the static page: [data-i18n] text, [data-i18n-title], [data-i18n-placeholder], [data-i18n-label].
  function apply() {
    const lang = current();
    document.documentElement.lang = lang;
    document.title = t("page.title");
    document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
    document.querySelectorAll("[data-i18n-title]").forEach((n) => { n.title = t(n.dataset.i18nTitle); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder); });
    document.querySelectorAll("[data-i18n-label]").forEach((n) => n.setAttribute("aria-label", t(n.dataset.i18nLabel)));
    const examples = t("examples");
    document.querySelectorAll(".example").forEach((b, i) => { if (examples[i]) b.textContent = examples[i]; });
    for (const fn of listeners) fn(lang);
  }

  function onChange(fn) { listeners.push(fn); }

  // "2024-03-28" -> "28 maart 2024" / "28 March 2024"; anything else unchanged.
  function formatDate(value, lang) {
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(value || ""));
    if (!m) return value || "";
    const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
    return d.toLocaleDateString(LOCALES[lang || current()], { year: "numeric", month: "long", day: "numeric", timeZone: "UTC" });
  }

  // Markdown as plain words: heading, quote and list markers, emphasis, code ticks, link syntax.
  function plainText(text) {
    return String(text || "")
      .replace(/^[ \t]*#{1,6}[ \t]+/gm, "")
      .replace(/[ \t]+#+[ \t]*$/gm, "")
      .replace(/^[ \t]*>[ \t]?/gm, "")
      .replace(/!?\[([^\]\n]*)\]\([^)\s]*\)/g, "$1")
      .replace(/(\*\*|__)(?=\S)([\s\S]*?\S)\1/g, "$2")
      .replace(/(^|[\s(„“"'])[*_](?=\S)([^*_\n]*?\S)[*_](?=$|[\s).,;:!?”"'])/gm, "$1$2")
      .replace(/`([^`\n]*)`/g, "$1")
      .replace(/\*\*|__/g, "");
  }

  window.I18N = { t, has, current, noteQuestion, detectLanguage, apply, onChange, formatDate, plainText, browserLanguage };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", apply);
  else apply();
})();
