"""What a question asks for: the kind of answer, the names it is about, its other content words.

:func:`asked` reads a Dutch or English question by its question words:

=============  =====================================================================================
kind           question words
=============  =====================================================================================
``number``     hoeveel, hoe oud/lang/vaak/groot/hoog/ver/duur, how many/much/old/long/often/big/far ...
``date``       wanneer, sinds wanneer, in welk jaar, welke datum/dag/maand, when, (in) what/which year ...
``place``      waar, waarheen, waarvandaan, in welke stad/plaats/gemeente/land/regio, where, which town ...
``name``       hoe heet, onder welke naam, what is X called, what is the name ...
``person``     wie (not "wie is/was <name>?", which asks who someone is), door wie, who (not "who is X?")
``reason``     waarom, hoe komt het, why, how come
``yesno``      a question that opens with a verb: heeft, is, zijn, kan, wordt ..., does, did, is, can ...
``other``      the rest (wat, welke, hoe, what, which, how ...)
=============  =====================================================================================

The check (``rag.answer.verify``) asks of an answer that it holds the kind asked for and speaks of the
question's names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.answer.facts import months, names, numbers

_OPEN = r"^\W*(?:(?:en|maar|and|but|so)\s+)?(?:volgens\s+\S+(?:\s+\S+)?,?\s+)?"
_KINDS = [
    ("date", re.compile(_OPEN + r"(?:sinds\s+wanneer|wanneer|tot\s+wanneer|in\s+welk\s+jaar|welk\s+jaar|"
                        r"op\s+welke\s+(?:dag|datum)|welke\s+(?:datum|dag|maand)|in\s+welke\s+maand|"
                        r"since\s+when|when|until\s+when|(?:in\s+)?(?:what|which)\s+(?:year|month)|"
                        r"on\s+(?:what|which)\s+(?:day|date)|what\s+date)\b", re.I)),
    ("number", re.compile(_OPEN + r"(?:hoeveel|hoe\s+(?:oud|lang|vaak|groot|hoog|ver|duur|snel|zwaar|veel)|"
                          r"how\s+(?:many|much|old|long|often|big|large|high|far|fast|heavy))\b", re.I)),
    ("place", re.compile(_OPEN + r"(?:waar(?:heen|vandaan|naartoe)?|in\s+welke\s+(?:stad|plaats|gemeente|land|"
                         r"regio|provincie|wijk|streek|steden|plaatsen|gemeenten|gemeentes|landen|regio's)|"
                         r"welke\s+(?:stad|plaats|gemeente|land|regio|steden|plaatsen|landen)|"
                         r"where|(?:in|to|from)\s+(?:what|which)\s+(?:town|city|country|place|region|area)|"
                         r"(?:what|which)\s+(?:town|city|country|place|region))\b", re.I)),
    ("name", re.compile(_OPEN + r"(?:hoe\s+(?:heet|heette|heten|noemt|noemde)|onder\s+welke\s+naam|welke\s+naam|"
                        r"what\s+(?:is|was|are|were)\s+\S+(?:\s+\S+){0,4}\s+called|what\s+(?:is|was)\s+the\s+name|"
                        r"under\s+what\s+name)\b", re.I)),
    ("place", re.compile(_OPEN + r"(?:welk\s+land|which\s+country)\b", re.I)),
    ("reason", re.compile(_OPEN + r"(?:waarom|hoe\s+komt\s+het|om\s+welke\s+reden|why|how\s+come|"
                          r"for\s+what\s+reason)\b", re.I)),
    ("person", re.compile(_OPEN + r"(?:door\s+wie|met\s+wie|van\s+wie|wie|by\s+whom|with\s+whom|who(?:m|se)?)\b", re.I)),
    ("yesno", re.compile(r"^\W*(?:heeft|hebben|had|is|zijn|was|waren|kan|kon|kunnen|wordt|werd|zal|zou|moet|"
                         r"mag|gaat|ging|komt|staat|does|do|did|is|are|was|were|has|have|had|can|could|will|"
                         r"would|should)\b", re.I)),
]
# "Wie is Remco Breuker?" / "Who is Jihyun Park?": asks what someone is, not for a person
_WHO_IS = re.compile(r"^\W*(?i:wie\s+(?:is|was|zijn|waren)|who\s+(?:is|was|are|were))\s+(?i:de\s+|het\s+|the\s+)?"
                     r"[A-ZÀ-Ö][\w\-]*(?:\s+[A-ZÀ-Ö][\w\-]*)*\s*\??\s*$")


# what a number must come with to answer "hoe oud", "hoe lang", "hoeveel procent" ...: its unit, close by
_UNITS = [
    (re.compile(r"\b(?:hoe\s+oud|how\s+old|op\s+welke\s+leeftijd|at\s+what\s+age)\b", re.I),
     r"jaar|jarig|oud|leeftijd|years?|old|aged|age|\(\s*\d{1,3}\s*\)|inmiddels|now"),
    (re.compile(r"\b(?:hoe\s+lang|how\s+long)\b", re.I),
     r"seconden?|minuut|minuten|uur|uren|dagen?|weken?|maanden?|jaar|jaren|eeuwen?|decennia|decennium|"
     r"meter|kilometer|km|mijl|seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|miles?|metres?|meters?"),
    (re.compile(r"\b(?:hoe\s+vaak|how\s+often|how\s+many\s+times|hoeveel\s+keer|hoeveel\s+maal)\b", re.I),
     r"keer|maal|times|twice|once|eenmaal|tweemaal|driemaal|dagelijks|wekelijks|jaarlijks"),
    (re.compile(r"\b(?:hoeveel\s+procent|welk\s+percentage|what\s+percentage|how\s+many\s+percent)\b", re.I),
     r"procent|percent|%"),
    (re.compile(r"\b(?:hoeveel\s+(?:geld|kost|kostte|verdien\w*|dollar|euro)|how\s+much\s+(?:money|did|does|do|is|was)|"
                r"wat\s+kost\w*)\b", re.I),
     r"dollar|euro|won|yuan|yen|roebel|pond|\$|€|£|miljoen|miljard|million|billion|mln|mld"),
]


def unit_of(question: str) -> str | None:
    """The pattern of the unit a number must come with to answer the question, or None."""
    return next((units for rx, units in _UNITS if rx.search(question)), None)


@dataclass(frozen=True)
class Asked:
    kind: str  # number | date | place | person | name | reason | yesno | other
    names: tuple[str, ...]  # the question's names, folded (rag.answer.facts.names)
    question: str
    counted: str | None = None  # "hoeveel kinderen" -> "kinderen": what a number question counts (Dutch)

    @property
    def core_names(self) -> tuple[str, ...]:
        """The names the answer must speak of: not the adjectives of a nationality ("Noord-Koreaanse")."""
        return tuple(n for n in self.names if not _ADJECTIVE.search(n))


_ADJECTIVE = re.compile(r"(?:aanse?|aans|ees|ese|ische?|se|sche|ean|ian|ish|ch)$")
_COUNTED = re.compile(r"\bhoeveel\s+((?:[\w\-]+\s+){0,2}[\w\-]+)", re.I)


def _counted(question: str) -> str | None:
    """The lower-case words right after "hoeveel", up to the verb: "hoeveel diplomatieke posten heeft" ->
    "diplomatieke posten"; "hoeveel Noord-Koreaanse soldaten" -> "soldaten"."""
    from rag.text import stopword_list

    m = _COUNTED.search(question)
    if not m:
        return None
    stop = set(stopword_list("dutch")) | _PRICE_VERBS
    words = []
    for w in m.group(1).split():
        if w.lower() in stop:
            break
        if w[:1].islower():
            words.append(w)
    return " ".join(words) or None


# "hoeveel kost ...?", "hoeveel verdient ...?": an amount of money, not a count of things named
_PRICE_VERBS = frozenset("kost kostte kosten kostten verdient verdiende verdienen bedraagt bedroeg weegt woog "
                         "telt telde brengt bracht levert leverde".split())


def asked(question: str) -> Asked:
    q = " ".join(question.split())
    kind = "other"
    if not _WHO_IS.match(q):
        kind = next((name for name, rx in _KINDS if rx.search(q)), "other")
    # a question opens with a question word or a verb: a capitalised first word ("Gelden", "Namens") is no name
    first = re.match(r"\W*(\w[\w\-]*)", q)
    found = names(q)
    if first and found:
        head = re.sub(r"['’]s$", "", first.group(1).lower())
        parts = found[0].split()
        if parts[0] == head or parts[0].startswith(head + "-"):
            found = ([" ".join(parts[1:])] if parts[1:] else []) + found[1:]
    return Asked(kind, tuple(found), q, _counted(q) if kind == "number" else None)


_YEAR = re.compile(r"\b(?:1[5-9]\d\d|20\d\d)\b")
_RELATIVE_TIME = re.compile(r"\b(?:vorig|afgelopen|komend|volgend|gisteren|vandaag|morgen|toen|last|next|ago|"
                            r"yesterday|today|tomorrow|\d+\s*(?:jaar|jaren|maanden|weken|dagen|years?|months?|"
                            r"weeks?|days?)\s+(?:geleden|later|ago|earlier))\b", re.I)


_WEEKDAY = re.compile(r"\b(?:maandag|dinsdag|woensdag|donderdag|vrijdag|zaterdag|zondag|monday|tuesday|wednesday|"
                      r"thursday|friday|saturday|sunday)(?:avond|ochtend|middag|nacht)?\b", re.I)


def _weekdays(text: str) -> set[str]:
    """The days of the week the text names ("op donderdag", "on Thursday"): a date as an article gives it."""
    return {m.group(0).lower() for m in _WEEKDAY.finditer(text)}


def _number_with_unit(text: str, units: str) -> bool:
    """A number (digits or a number word) within three words of one of ``units``."""
    words = re.findall(r"\(\s*\d+\s*\)|[\w$€£%]+", text)
    unit = re.compile(r"^(?:" + units + r")$", re.I)
    for i, w in enumerate(words):
        if re.fullmatch(r"\(\s*\d{1,3}\s*\)", w) and unit.search(w):
            return True
        if numbers(w) and not _YEAR.fullmatch(w):
            if any(unit.search(x) for x in words[max(0, i - 3):i + 4] if x is not w):
                return True
    return False


def holds_kind(text: str, kind: str, question_names: tuple[str, ...] = (), question: str = "") -> bool:
    """Does ``text`` (an answer sentence, citations removed) hold the kind of answer asked for? A number or
    year the question itself states ("... in 2021?") does not count as the answer."""
    echoed = numbers(question) if question else set()
    if kind == "number":  # a count, an age, a length: a year ("in 2022") is none of these
        years = {float(y) for y in _YEAR.findall(text)}
        if not numbers(text) - echoed - years:  # a magnitude ("duizenden") is not a count: it answers
            return False  # "hoeveel gesneuveld" with "duizenden vechten" as readily (measured on eval/qa.jsonl)
        units = unit_of(question) if question else None
        return units is None or _number_with_unit(text, units)
    if kind == "date":
        years = {float(y) for y in _YEAR.findall(text)} - echoed
        return bool(years or months(text) - months(question) or _RELATIVE_TIME.search(text)
                    or _weekdays(text) - _weekdays(question))
    if kind in ("person", "place", "name"):  # a name of its own: not the question's, not an adjective
        own = [n for n in names(text) if not any(n in q or q in n for q in question_names)
               and not _ADJECTIVE.search(n)]
        return bool(own)
    return True
