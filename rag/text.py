"""Text analysis shared by indexing, search, citations and answers: folding, stop words, the BM25
analyzer and language detection. One definition of each; the other modules import from here.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

# ----------------------------------------------------------------------------- folding


def fold(text: str) -> str:
    """Lower-case, straighten curly apostrophes and drop diacritics ("Échte’" -> "echte'"), so
    spelling variants meet."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# ----------------------------------------------------------------------------- stop words

# Words that carry no content in a question or answer sentence, beyond the stop words of the index.
EXTRA_STOPWORDS = frozenset(
    """
    hoeveel welke welk waarom wanneer waar waarvoor waardoor waarmee hoelang hoezeer wat wie hoe
    volgens artikel artikelen passage passages bron bronnen tekst noemt noemen genoemd staat
    gaat ging komt kwam werden wordt worden zegt zei zeggen schrijft schreef auteur
    what who whom whose which why when where how many much does did do done is are was were be been being
    the a an and or of to in on at by for from with about as into than then that this these those it its
    he she they them his her their him there here has have had not no can could would should will shall
    according article articles passage passages source sources text mentioned mention say says said
    """.split()
)

_LANGUAGE_ALIASES = {"nl": "dutch", "en": "english", "de": "german", "fr": "french", "es": "spanish"}


@lru_cache(maxsize=None)
def stopword_list(language: str | None) -> tuple[str, ...]:
    """bm25s's stop-word list for a language name ("dutch", "english", "nl" ...); empty for none."""
    if not language or language == "none":
        return ()
    import bm25s.stopwords as sw

    name = _LANGUAGE_ALIASES.get(language, language)
    words = getattr(sw, f"STOPWORDS_{name.upper()}", None)
    if words is None and name == "english":
        words = sw.STOPWORDS_EN
    return tuple(words or ())


# ----------------------------------------------------------------------------- BM25 analysis

def bm25s_module():
    """Import bm25s and quiet its logger (it sets itself to DEBUG on import)."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class BM25Analyzer:
    """Tokenises documents and queries the same way: fold, stop words, Snowball stemming.

    Shared between server threads: it is never changed after construction, and PyStemmer's
    stemmer (not thread-safe) is made per call."""

    def __init__(self, language: str = "dutch") -> None:
        self.language = language
        self.stemming = bool(language and language != "none")
        self.stopwords: tuple[str, ...] = stopword_list(language)

    def _stemmer(self):
        if not self.stemming:
            return None
        import Stemmer

        return Stemmer.Stemmer(self.language).stemWords

    def tokenize(self, texts: list[str], return_ids: bool, stopwords=None):
        """``stopwords`` overrides the analyzer's list for this call only."""
        return bm25s_module().tokenize(
            [fold(t) for t in texts], stopwords=list(self.stopwords if stopwords is None else stopwords),
            stemmer=self._stemmer(), return_ids=return_ids, show_progress=False,
        )


# ----------------------------------------------------------------------------- language

_NL = frozenset(
    """de het een en van wat wie hoe waarom welke welk hoeveel wanneer waar zijn heeft hebben er op die dat
    niet ook met voor bij naar zij hij ze je ik we wij worden wordt werd waren kan kon om tot nog al door als dan
    maar deze dit zich haar hun hem wel geen nu uit aan te zo zou moet meer veel jaar oud welk noemt""".split()
)
_EN = frozenset(
    """the a an and what who how why which when where are were does did do has have had it its he she they them
    this that these those not also with for by to from at be been can could would should his her their there
    about after many much old any some than then into be will""".split()
)
# "in", "is", "was", "of", "over" ... are words in both languages and count for neither.
DUTCH_MARKERS, ENGLISH_MARKERS = _NL, _EN


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower().replace("’", "'"))


def detect_language(text: str) -> str:
    """``"nl"`` or ``"en"`` by counting stop words; Dutch (the articles' language) when undecided."""
    words = _words(text)
    nl = sum(w in _NL for w in words)
    en = sum(w in _EN for w in words)
    return "en" if en > nl else "nl"


# ----------------------------------------------------------------------------- Markdown to plain text

_MD_LINE = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+(?=\S))")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPH = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def plain_text(markdown: str) -> str:
    """Markdown shown as plain text: headings, blockquote and list markers, emphasis, code ticks and
    link syntax removed, the words kept ("# Titel" -> "Titel", "[NRC](https://…)" -> "NRC")."""
    lines = [_MD_LINE.sub("", ln) for ln in str(markdown).splitlines()]
    text = _MD_LINK.sub(r"\1", "\n".join(lines))
    return _MD_EMPH.sub(r"\2", text)


# ----------------------------------------------------------------------------- citation look-alikes

_MARKER = re.compile(r"[\[［]\s*((?:(?:bron|bronnen|source|sources|noot|note|passage|artikel)\s*)?"
                     r"\d{1,6}(?:\s*(?:[,;&–—-]|\ben\b|\band\b)\s*\d{1,6})*)\s*[\]］]", re.IGNORECASE)


def neutral_markers(text: str) -> str:
    """An article's own bracketed numbers -- footnote markers copied from web pages, "[1]", "［2］",
    "[ 3 ]", "[bron 4]" -- written with parentheses ("(1)", "(bron 4)"), so that in an answer or a
    prompt only the check's citations are "[n]". The reader still sees the marker."""
    return _MARKER.sub(lambda m: "(" + " ".join(m.group(1).split()) + ")", text)
