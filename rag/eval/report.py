"""Presenting an evaluation report (the dict from ``rag.eval.evaluation.run_eval``): a rich table for the
terminal, a hit@k plot (matplotlib, PNG) and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from rich.console import Console
from rich.table import Table

MODE_COLOURS = {"bm25": "#1f77b4", "dense": "#ff7f0e", "hybrid": "#2ca02c"}


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _retrieval_keys(report: dict) -> list[str]:
    k = report["k"]
    return ["hit@1", f"hit@{k}", f"recall@{k}", "mrr@10"]


# ============================================================================ terminal

def print_summary(report: dict, console: Console) -> None:
    keys = _retrieval_keys(report)
    main_mode = report.get("mode")
    t = Table(title=f"Retrieval (answerable questions, k={report['k']})", title_justify="left")
    t.add_column("mode")
    t.add_column("questions")
    for key in keys:
        t.add_column(key, justify="right")
    for mode, block in report.get("modes", {}).items():
        label = f"[bold]{mode}[/]" + (" *" if mode == main_mode and len(report["modes"]) > 1 else "")
        t.add_row(label, f"all ({report['n_answerable']})", *[_fmt(block["retrieval"].get(key)) for key in keys])
        for lang, lb in block.get("per_lang", {}).items():
            t.add_row("", f"{lang} ({lb['n']})", *[_fmt(lb["retrieval"].get(key)) for key in keys], style="dim")
    console.print(t)

    if report["answer"].get("token_f1") is None and report["abstention"].get("correct_abstain") is None:
        return
    a = Table(title=f"Answers (mode {main_mode}, generator {report.get('generator')}"
                    f"{_used(report)})", title_justify="left")
    for col in ("questions", "token F1", "cited evidence", "1st sentence", "correct abstain", "false abstain"):
        a.add_column(col, justify="right" if col != "questions" else "left")
    rows = [("all", report)] + [(lang, b) for lang, b in report.get("per_lang", {}).items()]
    for name, b in rows:
        n = b["n"]
        a.add_row(f"{name} ({n})", _fmt(b["answer"]["token_f1"]), _fmt(b["answer"]["cited_evidence"]),
                  _fmt(b["answer"].get("first_sentence_evidence")),
                  _fmt(b["abstention"]["correct_abstain"]), _fmt(b["abstention"]["false_abstain"]),
                  style=None if name == "all" else "dim")
    console.print(a)
    kinds = report["abstention"].get("by_kind") or {}
    if kinds:
        console.print("unanswerable, abstained: " + ", ".join(
            f"{kind} {_fmt(v['correct_abstain'])} ({v['n']})" for kind, v in kinds.items()))
    support = report["abstention"].get("support") or {}
    if support:
        st = Table(title="Support (share of each kind of question answered / uncertain / abstained)",
                   title_justify="left")
        for col in ("questions", "answered", "uncertain", "abstained"):
            st.add_column(col, justify="right" if col != "questions" else "left")
        for kind, row in support.items():
            for name, r in [(kind, row)] + [(f"  {lang}", v) for lang, v in row.items() if isinstance(v, dict)]:
                st.add_row(f"{name} ({r['n']})", *[_fmt(r[x]) for x in ("answered", "uncertain", "abstained")],
                           style=None if r is row else "dim")
        console.print(st)
    for name, v in (report.get("verification") or {}).items():
        if v.get("sentences"):
            flags = ", ".join(f"{r} {_fmt(x)}" for r, x in v["flags"].items()) or "none"
            console.print(f"Sentence check ({name}, {v['answers']} answers, {v['sentences']} sentences): supported "
                          f"{_fmt(v['supported_share'])}, unsupported {_fmt(v['unsupported_share'])}, off the question "
                          f"{_fmt(v['off_question_share'])}; answers flagged {_fmt(v['flagged_answers'])} ({flags})")
    ctx = report.get("context")
    if ctx:
        b, w = ctx["budget"], ctx["whole_chunks"]
        console.print(f"Context recall (what the LLM reads holds an evidence phrase): {_fmt(b['recall'])} with "
                      f"RAG_CONTEXT_TOKENS={ctx.get('budget_tokens')} (median {b['median_passage_tokens']} passage "
                      f"tokens), {_fmt(w['recall'])} with whole chunks (median {w['median_passage_tokens']})")
    if report.get("errors"):
        console.print(f"[yellow]{report['errors']} question(s) failed with an error (see per_question)[/]")
    j = report.get("judge")
    if j:
        judge_model = (report.get("settings") or {}).get("judge_model")
        console.print(f"LLM judge{f' {judge_model}' if judge_model else ''} (separate from the measured metrics): "
                      f"faithfulness {_fmt(j['faithfulness'])} over {j['n_judged']} answer(s)"
                      + ("" if j["n_judged"] else f" — {j['note']}"))
    llm = report.get("settings") or {}
    if llm.get("llm_backend"):
        console.print(f"[dim]LLM: {llm['llm_backend']} {llm.get('llm_model')} at {llm.get('llm_url')}[/]")


def _used(report: dict) -> str:
    used = report.get("generators_used") or {}
    if not used:
        return ""
    return "; used " + ", ".join(f"{g} ×{n}" for g, n in used.items())


# ============================================================================ plot

def hit_curve_png(report: dict) -> bytes:
    """hit@k for k = 1..10, one line per mode, as PNG bytes."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(6.4, 3.8), dpi=110)
    ax = fig.add_subplot()
    for mode, curve in report.get("hit_at_k_curve", {}).items():
        ks = [i for i, v in enumerate(curve, 1) if v is not None]
        vs = [v for v in curve if v is not None]
        ax.plot(ks, vs, marker="o", label=mode, color=MODE_COLOURS.get(mode),
                linewidth=2.4 if mode == report.get("mode") else 1.6)
    ax.axvline(report["k"], color="#999", linestyle=":", linewidth=1)
    ax.set_xlabel("k (passages retrieved)")
    ax.set_ylabel("hit@k (share of answerable questions)")
    ax.set_xticks(range(1, 11))
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Evidence found in the top k")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# ============================================================================ HTML

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.3rem .6rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.sub td{color:#666;font-size:.9em}.meta{color:#555;font-size:.9em}
table.pq{font-size:.86em;width:100%}table.pq td{max-width:28rem}
.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}.abst{color:#8250df;font-weight:600}
.cite{display:block;margin:.15rem 0;color:#444}.cite b{color:#222}.small{font-size:.85em;color:#666}
details summary{cursor:pointer;color:#555}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def render_html(report: dict, *, title: str = "RAG evaluation") -> str:
    keys = _retrieval_keys(report)
    k = report["k"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    s = report.get("settings") or {}
    meta = [f"{report['n']} questions ({report['n_answerable']} answerable, {report['n_unanswerable']} unanswerable)",
            f"k = {k}", f"mode {report.get('mode')}", f"generator {report.get('generator')}{_used(report)}"]
    for key in ("qa_file", "embed_model", "embed_fallback", "bm25_weight", "dense_weight", "chunks", "llm_backend",
                "llm_model", "llm_url", "judge_model"):
        if s.get(key) is not None:
            meta.append(f"{key} {s[key]}")
    parts.append("<p class='meta'>" + " · ".join(_e(m) for m in meta) + "</p>")

    # ---- summary: retrieval per mode
    parts.append("<h2>Retrieval</h2><p class='small'>Answerable questions only. A passage is relevant when it "
                 "contains one of the question's evidence phrases (case and white space folded).</p>")
    parts.append("<table><tr><th>mode</th><th>questions</th>" + "".join(f"<th>{_e(x)}</th>" for x in keys) + "</tr>")
    for mode, block in report.get("modes", {}).items():
        star = " ★" if mode == report.get("mode") and len(report["modes"]) > 1 else ""
        parts.append(f"<tr><td><b>{_e(mode)}</b>{star}</td><td>all ({report['n_answerable']})</td>"
                     + "".join(f"<td class='num'>{_fmt(block['retrieval'].get(x))}</td>" for x in keys) + "</tr>")
        for lang, lb in block.get("per_lang", {}).items():
            parts.append(f"<tr class='sub'><td></td><td>{_e(lang)} ({lb['n']})</td>"
                         + "".join(f"<td class='num'>{_fmt(lb['retrieval'].get(x))}</td>" for x in keys) + "</tr>")
    parts.append("</table>")

    # ---- plot
    png = base64.b64encode(hit_curve_png(report)).decode("ascii")
    parts.append("<h2>hit@k for k = 1..10</h2>"
                 f"<img id='hit-curve' alt='hit@k for k = 1 to 10 per retrieval mode' src='data:image/png;base64,{png}'>")
    curve = report.get("hit_at_k_curve", {})
    if curve:
        parts.append("<details><summary>values</summary><table><tr><th>mode</th>"
                     + "".join(f"<th>{i}</th>" for i in range(1, 11)) + "</tr>")
        for mode, vals in curve.items():
            parts.append(f"<tr><td>{_e(mode)}</td>" + "".join(f"<td class='num'>{_fmt(v)}</td>" for v in vals) + "</tr>")
        parts.append("</table></details>")

    # ---- answers
    has_answers = report["answer"].get("token_f1") is not None or report["abstention"].get("correct_abstain") is not None
    if has_answers:
        parts.append(f"<h2>Answers</h2><p class='small'>Mode {_e(report.get('mode'))}. Token F1 against the reference "
                     "answer and cited evidence over answerable questions; correct abstain over unanswerable ones; "
                     "false abstain over answerable ones.</p>")
        parts.append("<table><tr><th>questions</th><th>token F1</th><th>cited evidence</th><th>correct abstain</th>"
                     "<th>false abstain</th></tr>")
        for name, b in [("all", report)] + list(report.get("per_lang", {}).items()):
            cls = "" if name == "all" else " class='sub'"
            parts.append(f"<tr{cls}><td>{_e(name)} ({b['n']})</td>"
                         f"<td class='num'>{_fmt(b['answer']['token_f1'])}</td>"
                         f"<td class='num'>{_fmt(b['answer']['cited_evidence'])}</td>"
                         f"<td class='num'>{_fmt(b['abstention']['correct_abstain'])}</td>"
                         f"<td class='num'>{_fmt(b['abstention']['false_abstain'])}</td></tr>")
        parts.append("</table>")
        support = report["abstention"].get("support") or {}
        if support:
            parts.append("<h3>Support</h3><table><tr><th>questions</th><th>answered</th><th>uncertain</th>"
                         "<th>abstained</th></tr>")
            for kind, row in support.items():
                for name, r in [(kind, row)] + [(lang, v) for lang, v in row.items() if isinstance(v, dict)]:
                    cls = "" if r is row else " class='sub'"
                    parts.append(f"<tr{cls}><td>{_e(name)} ({r['n']})</td>" + "".join(
                        f"<td class='num'>{_fmt(r[x])}</td>" for x in ("answered", "uncertain", "abstained")) + "</tr>")
            parts.append("</table>")
        if report.get("errors"):
            parts.append(f"<p class='bad'>{report['errors']} question(s) failed with an error.</p>")
    j = report.get("judge")
    if j:
        parts.append(f"<h2>LLM judge</h2><p>Faithfulness to the cited passages: <b>{_fmt(j['faithfulness'])}</b> "
                     f"(mean score {_fmt(j['score_mean'])} of 5, {j['n_judged']} answers judged).</p>"
                     f"<p class='small'>{_e(j['note'])}</p>")

    # ---- per question
    main = report.get("mode")
    parts.append("<h2>Per question</h2>")
    parts.append(f"<table class='pq' id='per-question'><tr><th>id</th><th>question</th><th>reference</th>"
                 f"<th>answer</th><th>citations</th><th>evidence in top {k}<br><span class='small'>(first relevant rank)"
                 f"</span></th><th>F1</th></tr>")
    for q in report.get("per_question", []):
        parts.append(_question_row(q, main, k))
    parts.append("</table></body></html>")
    return "\n".join(parts)


def _question_row(q: dict, main_mode: str | None, k: int) -> str:
    cells = [f"<td>{_e(q['id'])}<br><span class='small'>{_e(q['lang'])}"
             f"{'' if q['answerable'] else ' · unanswerable'}</span></td>",
             f"<td>{_e(q['question'])}</td>", f"<td>{_e(q['reference'])}</td>"]
    # answer
    if "answer" in q:
        if q.get("error"):
            ans = f"<span class='bad'>error</span> {_e(q['error'])}"
        else:
            tag = ""
            if q.get("abstained"):
                tag = ("<span class='ok'>abstained ✓</span> " if not q["answerable"]
                       else "<span class='bad'>abstained ✗</span> ")
            elif not q["answerable"]:
                tag = "<span class='bad'>answered ✗</span> "
            ans = tag + _e(q.get("answer")) + f"<br><span class='small'>{_e(q.get('generator'))}</span>"
    else:
        ans = "<span class='small'>not run</span>"
    cells.append(f"<td>{ans}</td>")
    # citations
    cites = []
    for c in q.get("citations", []) or []:
        mark = ""
        if q["answerable"]:
            mark = " <span class='ok'>✓ evidence</span>" if c.get("has_evidence") else ""
        text = " ".join((c.get("text") or "").split())
        cites.append(f"<span class='cite'><b>[{_e(c.get('n'))}]</b> {_e(c.get('title'))} "
                     f"<span class='small'>{_e(c.get('chunk_id'))}</span>{mark}<br>"
                     f"<span class='small'>{_e(text[:300])}{'…' if len(text) > 300 else ''}</span></span>")
    cells.append("<td>" + ("".join(cites) or "<span class='small'>none</span>") + "</td>")
    # evidence found
    if q["answerable"] and "retrieval" in q:
        lines = []
        for mode, r in q["retrieval"].items():
            found = r["evidence_found"]
            ok = any(found)
            rank = r.get("first_relevant_rank")
            label = f"{sum(found)}/{len(found)}"
            cls = "ok" if all(found) else ("" if ok else "bad")
            style = " style='font-weight:700'" if mode == main_mode else ""
            lines.append(f"<span{style}>{_e(mode)}: <span class='{cls}'>{'yes' if ok else 'no'} {label}</span>"
                         f" <span class='small'>(#{rank if rank else '–'})</span></span>")
        ev = "<br>".join(lines)
        ev += "<details><summary>phrases</summary>" + "".join(f"<div class='small'>“{_e(p)}”</div>" for p in q["evidence"]) + "</details>"
    else:
        ev = "<span class='small'>–</span>"
    cells.append(f"<td>{ev}</td>")
    cells.append(f"<td class='num'>{_fmt(q.get('token_f1'))}</td>")
    return "<tr>" + "".join(cells) + "</tr>"
