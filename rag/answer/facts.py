"""The checkable facts of a sentence: numbers, months, names and quoted words, in Dutch and English.

The verification of an answer (``rag.answer.verify``) needs no model to say whether "vijftienduizend"
is 15000, whether "May" is "mei", or whether "Kharkiv" is the "Charkiv" of a Dutch passage:

* :func:`numbers`: the values a text states: digits ("15.000", "15,000", "1,5 miljoen", "(56)") and
  number words, Dutch compounds included ("achttien" 18, "tweeënzestig" 62, "vijftienduizend" 15000,
  "twenty-five" 25). Articles and "one" ("een", "één", "one", "a") are not read as numbers;
* :func:`months`: month numbers named ("mei", "May", "aug.");
* :func:`names`: capitalised words and runs of them ("Kim Jong-un", "Bury East", "Park"), not a
  sentence's first word when that is an ordinary word ("De", "In", "Ze");
* :func:`quoted`: words the text puts between quotation marks;
* :func:`name_in`: is a name in a text: each of its words there (folded, as a word's start, so
  "Kim Jong-uns" holds "Kim Jong-un"), through a small table of names that Dutch and English write
  differently ("North Korea" / "Noord-Korea", "Moscow" / "Moskou"), or spelled nearly alike ("Kharkiv" /
  "Charkiv", "Syria" / "Syrië").
"""

from __future__ import annotations

import difflib
import functools
import re

from rag.text import EXTRA_STOPWORDS, fold, stopword_list

# ----------------------------------------------------------------------------- numbers

_NL_SMALL = {"twee": 2, "drie": 3, "vier": 4, "vijf": 5, "zes": 6, "zeven": 7, "acht": 8, "negen": 9, "tien": 10,
             "elf": 11, "twaalf": 12, "dertien": 13, "veertien": 14, "vijftien": 15, "zestien": 16,
             "zeventien": 17, "achttien": 18, "negentien": 19}
_NL_UNITS = {"een": 1, "twee": 2, "drie": 3, "vier": 4, "vijf": 5, "zes": 6, "zeven": 7, "acht": 8, "negen": 9}
_NL_TENS = {"twintig": 20, "dertig": 30, "veertig": 40, "vijftig": 50, "zestig": 60, "zeventig": 70,
            "tachtig": 80, "negentig": 90}
_EN_SMALL = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
             "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
             "seventeen": 17, "eighteen": 18, "nineteen": 19}
_EN_UNITS = {"one": 1, **{k: v for k, v in _EN_SMALL.items() if v < 10}}
_EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
            "ninety": 90}
_BIG = (("miljard", 10 ** 9), ("miljoen", 10 ** 6), ("duizend", 1000), ("honderd", 100),
        ("billion", 10 ** 9), ("million", 10 ** 6), ("thousand", 1000), ("hundred", 100))
_SCALE_WORDS = {"miljard": 10 ** 9, "miljoen": 10 ** 6, "duizend": 1000, "honderd": 100, "billion": 10 ** 9,
                "million": 10 ** 6, "thousand": 1000, "hundred": 100, "mld": 10 ** 9, "mln": 10 ** 6}
# vague amounts: stated as words, checked as words ("honderdduizenden" is in the passage or not)
VAGUE = re.compile(r"^(?:\w*(?:honderden|duizenden|miljoenen|miljarden|tientallen)|hundreds|thousands|millions|"
                   r"billions|dozens|tens)$")


def _small(word: str) -> int | None:
    """A number word below 100 (Dutch "vijfenveertig", "tweeenzestig"; English "twenty-five")."""
    for table in (_NL_SMALL, _NL_TENS, _EN_SMALL, _EN_TENS):
        if word in table:
            return table[word]
    for tens, value in {**_NL_TENS}.items():
        if word.endswith(tens):
            head = word[:-len(tens)]
            for glue in ("en", "een"):  # "vijfenveertig"; folded "tweeënzestig" -> "tweeenzestig"
                if head.endswith(glue) and head[:-len(glue)] in _NL_UNITS:
                    return value + _NL_UNITS[head[:-len(glue)]]
    if "-" in word:
        tens, _, unit = word.partition("-")
        if tens in _EN_TENS and unit in _EN_UNITS:
            return _EN_TENS[tens] + _EN_UNITS[unit]
    return None


@functools.lru_cache(maxsize=4096)
def word_value(word: str) -> int | None:
    """The value of one number word (folded), or None: "vijftienduizend" -> 15000, "een" -> None."""
    if not word or word in ("een", "one", "a"):
        return None
    for big, scale in _BIG:
        if big in word:
            left, _, right = word.partition(big)
            lv = 1 if left in ("", "een") else word_value(left) if left not in ("een",) else 1
            rv = 0 if not right else word_value(right.removeprefix("en").removeprefix("-") or "") if right else 0
            if lv is None or (right and rv is None):
                return None
            return lv * scale + (rv or 0)
    return _small(word)


_DIGITS = re.compile(r"(?<![\w.,])(\d{1,3}(?:[.,]\d{3})+|\d+(?:[.,]\d+)?)(?![\w])")
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def _digit_value(token: str) -> float:
    """"15.000" and "15,000" -> 15000 (groups of three), "1,5" and "1.5" -> 1.5."""
    if re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+", token):
        return float(re.sub(r"[.,]", "", token))
    return float(token.replace(",", "."))


def numbers(text: str) -> set[float]:
    """Every value the text states (see the module doc); a scale word after a number multiplies it
    ("2,5 miljoen" -> 2500000, "15 duizend" -> 15000), and the number itself counts too."""
    folded = fold(text)
    out: set[float] = set()
    for m in _DIGITS.finditer(folded):
        value = _digit_value(m.group(1))
        out.add(value)
        after = re.match(r"\s*([a-z]+)", folded[m.end():])
        if after and after.group(1) in _SCALE_WORDS:
            out.add(value * _SCALE_WORDS[after.group(1)])
    for m in _WORD.finditer(folded):
        w = m.group(0)
        if VAGUE.match(w) or (w in _SCALE_WORDS and re.search(r"\d\s*$", folded[:m.start()])):
            continue  # a magnitude, or the scale of the number before it (counted with it above)
        v = word_value(w)
        if v is not None:
            out.add(float(v))
    return out


def vague_amounts(text: str) -> set[str]:
    """Amounts stated only as a magnitude ("honderdduizenden", "tientallen", "thousands")."""
    return {w for w in _WORD.findall(fold(text)) if VAGUE.match(w)}


# ----------------------------------------------------------------------------- months

_MONTHS = {m: i for i, names in enumerate((
    ("januari", "january", "jan"), ("februari", "february", "feb"), ("maart", "march", "mrt"),
    ("april", "apr"), ("mei", "may"), ("juni", "june", "jun"), ("juli", "july", "jul"),
    ("augustus", "august", "aug"), ("september", "sept", "sep"), ("oktober", "october", "okt", "oct"),
    ("november", "nov"), ("december", "dec")), start=1) for m in names}
_AMBIGUOUS_MONTHS = {"may", "march", "jan", "dec", "mei"}  # also ordinary words: only next to a number


def months(text: str) -> set[int]:
    """Month numbers the text names; "may"/"mei"/"march" only beside a day or a year ("2 mei", "May 2024")."""
    folded = fold(text)
    out = set()
    for m in re.finditer(r"[a-z]+", folded):
        w = m.group(0)
        if w not in _MONTHS:
            continue
        if w in _AMBIGUOUS_MONTHS:
            near = folded[max(0, m.start() - 4):m.end() + 6]
            if not re.search(r"\d", near):
                continue
        out.add(_MONTHS[w])
    return out


# ----------------------------------------------------------------------------- names

# names that Dutch and English write differently (folded); each group names one thing
_SAME = [  # a country, its people and its adjective count as one name
    ("north korea", "noord-korea", "north korean", "noord-koreaans", "noord-koreaanse", "noord-koreanen"),
    ("south korea", "zuid-korea", "south korean", "zuid-koreaans", "zuid-koreaanse", "zuid-koreanen"),
    ("korean", "koreaans", "koreaanse"), ("russia", "rusland", "russian", "russisch", "russische", "russen"),
    ("ukraine", "oekraine", "ukrainian", "oekraiens", "oekraiense"), ("china", "chinese", "chinees"),
    ("japan", "japanese", "japans", "japanse"), ("british", "brits", "britse"),
    ("american", "amerikaans", "amerikaanse", "amerikanen"),
    ("united states", "verenigde staten", "vs", "us", "usa", "amerika", "america"),
    ("united kingdom", "verenigd koninkrijk", "vk", "uk", "britain", "groot-brittannie", "great britain"),
    ("england", "engeland"), ("english", "engels", "engelse"), ("united nations", "verenigde naties", "vn", "un"),
    ("european union", "europese unie", "eu"), ("moscow", "moskou"), ("the hague", "den haag"),
    ("syria", "syrie", "syrian", "syrische"), ("mongolia", "mongolie"), ("security council", "veiligheidsraad"),
    ("international criminal court", "internationaal strafhof"), ("conservative party", "conservatieve partij"),
    ("the netherlands", "nederland", "dutch", "nederlands", "nederlandse"), ("europe", "europa", "european",
                                                                           "europees", "europese"),
    ("middle east", "midden-oosten"), ("gobi desert", "gobi-woestijn"), ("beijing", "peking"),
    ("germany", "duitsland", "german", "duits", "duitse"), ("putin", "poetin"), ("france", "frankrijk"),
    ("belgium", "belgie"), ("iran", "iranian", "iraanse"), ("israel", "israeli", "israelische"),
]
SAME_NAME: dict[str, frozenset[str]] = {n: frozenset(g) for g in _SAME for n in g}
_NAME = re.compile(r"[A-ZÀ-ÖØ-Þ][\w’'\-]*(?:[ \-](?:[A-ZÀ-ÖØ-Þ][\w’'\-]*|\d+))*")
_NOT_NAMES = frozenset({"ik", "i", "jij", "u", "we", "wij", "zij", "ze", "hij", "het", "de", "een", "dit", "dat",
                        "deze", "die", "er", "daar", "hier", "toen", "nu", "ook", "maar", "en", "of", "in", "op",
                        "the", "a", "an", "this", "that", "he", "she", "they", "it", "there", "yes", "no", "ja",
                        "nee", "volgens", "according", "passage", "passages", "artikel", "article", "bron", "source"})


@functools.lru_cache(maxsize=1)
def _ordinary() -> frozenset[str]:
    return frozenset(stopword_list("dutch")) | frozenset(stopword_list("english")) | EXTRA_STOPWORDS | _NOT_NAMES


def names(text: str) -> list[str]:
    """Names in the text (capitalised words and runs of them), folded, in order, without repeats. At a
    sentence's start, leading ordinary words are not part of the name ("De Verenigde Naties" -> "verenigde
    naties"; "Park" stays, "De" goes)."""
    out: list[str] = []
    for m in _NAME.finditer(text):
        words = m.group(0).strip(" -’'").split()
        if _sentence_start(text, m.start()):
            while words and fold(words[0]) in _ordinary():
                words = words[1:]
        while words and (fold(words[0]) in _NOT_NAMES or _not_a_name(words[0])):
            words = words[1:]
        while words and _not_a_name(words[-1]):
            words = words[:-1]
        # "VN-sanctiepanel": a name joined to an ordinary word; the name is its capitalised head
        words = [w.split("-")[0] if re.fullmatch(r"[A-ZÀ-Þ]{2,}-[a-zà-ÿ][\w\-]*", w) else w for w in words]
        name = re.sub(r"['’]s\b", "", fold(" ".join(words))).strip("’'-")
        if len(name) < 2 or name.replace(" ", "").isdigit() or name in out:
            continue
        out.append(name)
    return out


def _not_a_name(word: str) -> bool:
    """Number words, months and digits are facts of their own, not names."""
    w = fold(word).strip("’'.,")
    return w.isdigit() or w in _MONTHS or word_value(w) is not None


def _sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(" „“\"'‘«(*>")
    return not before or before[-1] in ".!?:\n[]" or before.endswith("]")


_TOKEN = re.compile(r"[\w][\w\-’']*")


@functools.lru_cache(maxsize=2048)
def _tokens(folded: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(folded))


def name_in(name: str, text: str) -> bool:
    """Is ``name`` (folded, from :func:`names`) in ``text``? (See the module doc.)"""
    folded = fold(text)
    if name in folded:
        return True
    for variant in SAME_NAME.get(name, ()):
        if re.search(r"(?<!\w)" + re.escape(variant) + r"(?!\w)", folded):
            return True
    tokens = _tokens(folded)
    return all(_word_in(w, tokens, folded) for w in name.split() if len(w) > 1)


def name_part_in(name: str, text: str) -> bool:
    """Like :func:`name_in`, but for a name of several words one of them is enough ("Kim" for "Kim
    Jong-un", "Park" for "Jihyun Park"): a text refers to a person by one of their names -- unless the text
    names someone else with that word ("Kim Jong-il" is not the "Kim" of "Kim Yo-jong")."""
    if name_in(name, text):
        return True
    words = [w for w in name.split() if len(w) > 2]
    if len(words) < 2:
        return False
    others = [n for n in names(text) if " " in n and not name_in(name, n)]
    return any(name_in(w, text) and not any(w in o.split() for o in others) for w in words)


def _word_in(word: str, tokens: tuple[str, ...], folded: str) -> bool:
    if any(t.startswith(word) for t in tokens):
        return True
    if len(word) >= 4 and word.endswith("s") and any(t == word[:-1] for t in tokens):  # "Kims" -> "Kim"
        return True
    if any(v in folded for v in SAME_NAME.get(word, ())):
        return True
    if len(word) < 4:
        return False
    return any(abs(len(t) - len(word)) <= 2 and difflib.SequenceMatcher(None, word, t).ratio() >= 0.75
               for t in tokens if t[:1] in (word[:1], "c", "k", "o", "j", "y") or word[:1] in "ckoyj")


# ----------------------------------------------------------------------------- quotations

_QUOTED = re.compile(r"[„“\"«]([^„“”\"«»]{3,200})[”\"»]|‘([^‘’]{3,120})’")


def quoted(text: str) -> list[str]:
    """What the text puts between quotation marks (folded, white space squeezed)."""
    return [" ".join(fold(a or b).split()) for a, b in _QUOTED.findall(text)]
