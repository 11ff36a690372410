"""HTML markup inside Markdown and plain-text articles, taken out as the file is read.

Articles copied from web pages carry inline HTML: ``<script>`` and ``<style>`` elements, tags with
``on…=`` handlers, ``<div>``/``<span>`` wrappers, comments. None of it is the article's text, and
whatever is in the text can be quoted into an answer. So ``strip_markup`` removes

* whole elements whose content is not text: ``script``, ``style``, ``noscript``, ``template``,
  ``iframe``, ``object``, ``svg`` (open tag, content and closing tag);
* comments, ``<!DOCTYPE …>`` and ``<?…?>`` declarations;
* every other tag, attributes and all (a block tag such as ``<p>``, ``<br>``, ``<div>`` leaves a line
  break, an inline tag such as ``<b>`` or ``<span>`` nothing), also a tag cut off at the end of a line
  (``<img src=x onerror=…`` without its ``>``);
* character references for spaces and punctuation (``&nbsp;``, ``&#8217;``) become the characters;
  ``&lt;``, ``&gt;`` and ``&amp;`` stay as written, so an escaped tag never turns into a real one.

The article's own text is kept: fenced code blocks (```` ``` ````) are left as they are (there, markup
is the content; but script and style elements go wherever they are), and so are things that only
look a little like a tag --
``a < b``, ``<3``, ``<https://…>`` and ``<name@example.org>`` autolinks. Offsets are those of the
stripped text: chunks are cut from it, so ``document.text[start:end] == chunk.text`` holds.
"""

from __future__ import annotations

import html
import re

__all__ = ["strip_markup"]

_DROP_ELEMENTS = ("script", "style", "noscript", "template", "iframe", "object", "svg")
_OPEN = re.compile(rf"<({'|'.join(_DROP_ELEMENTS)})\b[^<>]*>", re.I)
_CLOSE = {name: re.compile(rf"</{name}\s*>", re.I) for name in _DROP_ELEMENTS}
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)|<![A-Za-z\[][^<>]*>|<\?[^<>]*>", re.S)
_BLOCK = ("address|article|aside|blockquote|br|dd|details|div|dl|dt|figcaption|figure|footer|form|h[1-6]|header|"
          "hr|li|main|nav|ol|p|pre|section|summary|table|tbody|td|tfoot|th|thead|tr|ul")
# a tag: <name ...> or </name>, the name a letter then letters, digits, '-' or ':'; attributes may be
# quoted and may run over lines. No part runs past a '<' or '>': every attempt ends at the next one,
# so a hostile file cannot make this quadratic.
_ATTRS = r"""(?:\s+(?:[^\s"'<>/=]+(?:\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s<>]+))?|/))*\s*/?"""
_TAG = re.compile(rf"</?([A-Za-z][A-Za-z0-9:-]*){_ATTRS}>")
# a tag cut off before its '>' (at the end of the line or the text), that has at least one attribute
_CUT_TAG = re.compile(r"<[A-Za-z][A-Za-z0-9:-]*\s+[^<>\n]*=[^<>\n]*$", re.M)
_BLOCK_NAME = re.compile(rf"(?:{_BLOCK})\Z", re.I)
_FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?(?:^\1[^\n]*$|\Z)", re.M | re.S)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_SPACES = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n{3,}")


def _drop_elements(text: str) -> str:
    """``text`` without script, style ... elements (open tag to closing tag); an element that is never
    closed loses its open tag only (``_TAG`` would take it anyway)."""
    out, pos, unclosed = [], 0, set()
    while (m := _OPEN.search(text, pos)) is not None:
        out.append(text[pos:m.start()])
        name = m.group(1).lower()
        close = None if name in unclosed else _CLOSE[name].search(text, m.end())
        if close is None:
            unclosed.add(name)  # no closing tag after this one: none after any later one either
        pos = close.end() if close is not None else m.end()
    out.append(text[pos:])
    return "".join(out)


def _entity(m: re.Match) -> str:
    """A character reference as its character, unless that is '<', '>' or '&' (or unknown)."""
    char = html.unescape(m.group(0))
    if char == m.group(0) or any(c in "<>&" for c in char):
        return m.group(0)
    return char.replace("\u00a0", " ")


def _tag(m: re.Match) -> str:
    return "\n" if _BLOCK_NAME.match(m.group(1)) else ""


def _strip_prose(text: str) -> str:
    if "<" in text:
        text = _COMMENT.sub("", text)
        text = _TAG.sub(_tag, text)
        text = _CUT_TAG.sub("", text)
    if "&" in text:
        text = _ENTITY.sub(_entity, text)
    return text


def strip_markup(text: str) -> str:
    """``text`` without its HTML markup (see the module docstring); text without ``<`` or ``&`` is
    returned as it is."""
    if "<" not in text and "&" not in text:
        return text
    out = _drop_elements(text) if "<" in text else text  # everywhere: a script's own backticks are no code span
    parts, last = [], 0
    for m in _FENCE.finditer(out):  # fenced code stays as written
        parts.append(_strip_prose(out[last:m.start()]))
        parts.append(m.group(0))
        last = m.end()
    parts.append(_strip_prose(out[last:]))
    out = "".join(parts)
    if out == text:
        return text
    out = _SPACES.sub("\n", out)
    return _BLANK_RUNS.sub("\n\n", out)
