"""Search text: one normalisation for names and queries, the indexed search key, and matching.

Everything here is pure (no Flask, no database). The same ``normalise`` runs when a station
or place is imported and when a query arrives, so both sides always agree.

The search key (stored per station and per place, indexed by pg_trgm on PostgreSQL and by
FTS5's trigram tokenizer on SQLite) is plain ASCII ``[a-z0-9 ]``, so it behaves the same in
every database locale (pg_trgm drops characters its locale does not call alphanumeric, and
this cluster's ``C.UTF-8`` would drop every Chinese character). For each searchable field
(normalised text ``t`` of units u₁…uₙ, a unit being one character with its reading) it holds
four forms, separated by spaces:

- ``chars``: ``t`` with every character outside ``[a-z0-9]`` written as a 4-character code
  (``code``), so one Chinese character is already a 4-character pattern a trigram index
  can serve — 1 and 2 character queries (人, 人民) are the most common ones;
- ``pinyin``: the readings run together (长沙路 → ``changshalu``), for full pinyin;
- ``syllables``: each reading after a ``9`` (``9chang9sha9lu``), for 2-letter queries
  that start a syllable (``lu``);
- ``initials``: each reading's first letter after a ``9`` (``9c9s9l``), for initials
  (``csl`` → ``9c9s9l``; 2 letters ``cs`` → ``9c9s``, still 4 characters).

Readings come from pypinyin with its phrase data (长沙路 cháng, 重庆路 chóng, 银行 háng);
a character without pinyin (Latin letters, digits, punctuation) reads as itself. ü is
written ``v`` (as pypinyin and Chinese keyboards do): ``lü``, ``lu:`` and ``lv`` are one query.

A query becomes one or more patterns (``patterns``) that every true match's key contains;
a pattern may have several parts (``pattern_parts``), all of which such a key holds. The
database returns rows holding any pattern (through its index), and ``match`` then decides,
on the real text, whether and how each row matches.
"""
from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
from dataclasses import dataclass

from pypinyin import Style, lazy_pinyin, pinyin
from pypinyin.seg.simpleseg import simple_seg

# Longest normalised query served; longer ones are refused (no name is that long).
MAX_QUERY_CHARS = 64
# Separates readings in the syllables and initials forms (any ASCII alphanumeric would do:
# a stray 9 in a name costs a false candidate, never a missed one).
SEP = "9"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_DIGITS, _LETTERS = "0123456789", "abcdefghijklmnopqrstuvwxyz"
_CODES = 10 * 26 * 10 * 26  # digit-letter-digit-letter: 67,600 codes, more than the 20,992 basic CJK characters
_WHITESPACE = re.compile(r"\s+")
_U_UMLAUT = str.maketrans({"ü": "v", "ǖ": "v", "ǘ": "v", "ǚ": "v", "ǜ": "v"})


@functools.lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """The one normal form: NFKC (full-width ｒｍｌ → rml, ２ → 2), lower case, no whitespace
    (``ren min lu`` = ``renminlu``; Chinese names have none), no tone marks (``rénmín`` →
    ``renmin``), ü → v."""
    text = unicodedata.normalize("NFKC", text).lower().replace("u:", "v").translate(_U_UMLAUT)
    text = _WHITESPACE.sub("", text)
    # Tone marks are combining accents after NFD; NFC puts the rest (e.g. Hangul) back together.
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


# Separates the parts of a pattern (never in a key, which is [a-z0-9 ]).
PART_SEP = "\t"


def pattern_parts(pattern: str) -> list[str]:
    """The substrings a key must all hold to hold ``pattern``."""
    return pattern.split(PART_SEP)


def key_holds(key: str, pattern: str) -> bool:
    """Whether a key (with the space queries put before it) holds ``pattern``: every part."""
    return all(part in key for part in pattern_parts(pattern))


def like_escape(pattern: str) -> str:
    """A LIKE pattern's wildcards (% _ and the escape character \\) taken literally (ESCAPE '\\')."""
    return pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def code(char: str) -> str:
    """A character outside [a-z0-9] as 4 ASCII characters (digit, letter, digit, letter).

    Characters beyond the first 67,600 code points share codes with earlier ones: a shared
    code only adds a candidate that ``match`` then rejects."""
    n = ord(char) % _CODES
    return _DIGITS[n // 6760] + _LETTERS[n // 260 % 26] + _DIGITS[n // 26 % 10] + _LETTERS[n % 26]


def encode(text: str) -> str:
    return "".join(c if c in _ALNUM else code(c) for c in text)


@dataclass(frozen=True, slots=True)
class Unit:
    """One character of a normalised text and how it reads (pinyin, or itself)."""

    char: str
    reading: str
    pinyin: bool  # read through pypinyin (a Chinese character)


def units(text: str) -> tuple[Unit, ...]:
    """The normalised ``text`` as units, read with pypinyin's phrase data.

    pypinyin reads each run of Chinese characters apart (its ``simple_seg``; phrases never
    cross a run), so the runs are read and cached one by one: an address's road repeats across
    thousands of stations, its house number does not, and a search checks every candidate's
    fields as it answers."""
    return tuple(itertools.chain.from_iterable(_run_units(run) for run in simple_seg(text) if run))


@functools.lru_cache(maxsize=65536)
def _run_units(text: str) -> tuple[Unit, ...]:
    out: list[Unit] = []
    i = 0
    for item in lazy_pinyin(text, style=Style.NORMAL, errors="default", v_to_u=False):
        if i < len(text) and text[i:i + len(item)] == item and not _is_han(text[i]):
            out.extend(Unit(c, c, False) for c in item)  # a run pypinyin left as it was
            i += len(item)
        else:
            out.append(Unit(text[i], item, True))
            i += 1
    return tuple(out)


def _is_han(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\U00020000" <= char <= "\U0002ffff" or "\uf900" <= char <= "\ufaff"


def field_key(text: str | None) -> str:
    """The four indexed forms of one field's text (see the module docstring); '' for none."""
    if not text:
        return ""
    norm = normalise(text)
    if not norm:
        return ""
    us = units(norm)
    pinyin = "".join(encode(u.reading) for u in us)
    syllables = "".join(SEP + encode(u.reading) for u in us)
    initials = "".join(SEP + encode(u.reading)[0] if u.pinyin else SEP + encode(u.char) for u in us)
    return f"{encode(norm)} {pinyin} {syllables} {initials}"


def search_key(*texts: str | None) -> str:
    """The search key of a row whose searchable fields are ``texts`` (e.g. name, address,
    operator). Queries test it with a space before it, so a pattern after a space is a form's
    start, the first form's too."""
    return " ".join(k for k in (field_key(t) for t in texts) if k)


def key_units(key: str, texts: tuple[str | None, ...]) -> list[tuple[Unit, ...] | None]:
    """Each of ``texts``' units as its stored search key (``search_key(*texts)``) spells them,
    so that checking a candidate never runs pypinyin again (a few hundred µs a field; addresses
    rarely repeat). None for a field whose forms do not read back exactly (a key written by an
    older release, a reading outside [a-z]): ``match`` then reads the text itself."""
    words = key.split(" ")
    out: list[tuple[Unit, ...] | None] = []
    at = 0
    for text in texts:
        norm = normalise(text) if text else ""
        if not norm:
            out.append(())
            continue
        out.append(_units_from_syllables(norm, words[at + 2]) if at + 3 < len(words) else None)
        at += 4
    return out


def _units_from_syllables(norm: str, syllables: str) -> tuple[Unit, ...] | None:
    """The units of ``norm`` read back from its ``syllables`` form (each unit's reading after
    a 9: a pinyin syllable in letters, or the character itself, encoded); None if they differ."""
    out: list[Unit] = []
    i, end = 0, len(syllables)
    for char in norm:
        if i >= end or syllables[i] != SEP:
            return None
        i += 1
        if char in _ALNUM:
            if syllables[i:i + 1] != char:
                return None
            out.append(Unit(char, char, False))
            i += 1
        elif i < end and syllables[i] in _LETTERS:
            j = i
            while j < end and syllables[j] in _LETTERS:
                j += 1
            out.append(Unit(char, syllables[i:j], True))
            i = j
        else:
            return None  # read as itself (no pinyin, punctuation): rare, left to pypinyin
    return tuple(out) if i == end else None


# -- queries ---------------------------------------------------------------------

_NON_ALNUM_RUN = re.compile(r"[^a-z0-9]+")


def patterns(query: str) -> tuple[str, ...]:
    """Substrings of the search key that every match of the normalised ``query`` contains (any
    of them): each is at least 3 characters, so a trigram index serves it. Empty: a single
    letter or digit, which would match nearly everything (answered with nothing).

    - Characters outside [a-z0-9] (Chinese, punctuation, emoji) and then letters or digits
      (人民d, typed while a keyboard still composes): the characters, encoded (the ``chars``
      form), and with them their readings and the first letter, in the ``pinyin`` form
      (``renmind``), one pattern per way the characters may read (``readings``). Such
      characters only ever match themselves, and the unit after them is the letter itself,
      or a syllable or initial starting with it; either part alone is far more common than
      both (人民 is in 1 key in 40 of the benchmark's, 人民 then d in 1 in 800).
    - Other queries with such characters: the longest run of them, encoded (a match's
      ``chars`` form holds it).
    - Letters and digits only: the query in the ``pinyin`` form (full pinyin, and Latin text
      read as itself) — or, for 2 characters, the ``syllables`` form (a syllable's start) —
      and its letters as ``initials``.
    """
    runs = _NON_ALNUM_RUN.findall(query)
    if runs:
        return _read_patterns(query, runs) or (encode(max(runs, key=len)),)
    if len(query) < 2:
        return ()
    initials = "".join(SEP + c for c in query)
    if len(query) == 2:
        return (SEP + query, initials)
    return (query, initials)


# The most ways a query's characters may read that ``_read_patterns`` spells out; beyond, the
# characters alone are the pattern.
MAX_READ_PATTERNS = 16


def _read_patterns(query: str, runs: list[str]) -> tuple[str, ...]:
    """For characters then letters or digits: each reading of the characters with the first
    letter, in the pinyin form (empty for any other shape, or too many readings)."""
    if len(runs) != 1 or not query.startswith(runs[0]) or query == runs[0]:
        return ()
    run, letter = runs[0], query[len(runs[0])]
    options = [readings(c) for c in run]
    if math.prod(len(o) for o in options) > MAX_READ_PATTERNS:
        return ()
    found = tuple(dict.fromkeys(encode("".join(r)) + letter for r in itertools.product(*options)))
    if not all(len(p) >= 3 for p in found):
        return ()
    return tuple(encode(run) + PART_SEP + p for p in found)


# Readings pypinyin's phrase data gives a character that its list of the character's readings
# lacks (乐亭 lào tíng). tests/test_search.py recomputes this from pypinyin's data.
PHRASE_ONLY_READINGS = {"乐": ("lao",), "着": ("zhu",), "干": ("qian",), "燵": ("ta",)}


@functools.lru_cache(maxsize=8192)
def readings(char: str) -> tuple[str, ...]:
    """Every reading ``units`` may give ``char`` in some text: pypinyin's readings of it and
    those of its phrase data; a character without pinyin reads as itself."""
    if not _is_han(char):
        return (char,)
    found = pinyin(char, style=Style.NORMAL, heteronym=True, errors="default", v_to_u=False)[0]
    return tuple(dict.fromkeys(found + list(PHRASE_ONLY_READINGS.get(char, ()))))


def prefix_patterns(query: str) -> tuple[str, ...]:
    """Patterns, each after a space, that a field matched at its start (the exact and prefix
    tiers) holds at the start of one of its forms: a space before a pattern means the start of
    a form, or of the key. Empty when the query starts with a letter or digit but holds other
    characters too (``r民``: no form need start with a pattern of ≥ 3 characters).

    - Characters outside [a-z0-9] then letters or digits: ``patterns``, whose parts then start
      the ``chars`` and the ``pinyin`` form (人民d → 人民 encoded, and ``renmind``).
    - Other queries starting with such characters: their first run, encoded (人民g路 → 人民
      starts the ``chars`` form: the field's first characters are the query's).
    - Letters and digits only: ``patterns``, which then start the ``pinyin``, ``syllables`` or
      ``initials`` form (or the ``chars`` form of a Latin name).
    """
    runs = _NON_ALNUM_RUN.findall(query)
    if runs and not query.startswith(runs[0]):
        return ()
    found = (_read_patterns(query, runs) or (encode(runs[0]),)) if runs else patterns(query)
    return tuple(PART_SEP.join(" " + part for part in pattern_parts(p)) for p in found)


# -- matching a candidate --------------------------------------------------------

# Tiers, best first: the query is the whole text; it starts the text; anything else.
EXACT, PREFIX, OTHER, FUZZY = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Match:
    kind: str  # exact, prefix, substring, pinyin, initials, fuzzy
    tier: int


def match(query: str, text: str | None, read: tuple[Unit, ...] | None = None) -> Match | None:
    """How the normalised ``query`` matches a field's ``text`` (None: it does not).

    Characters first (exact, prefix, substring), then by reading: each query character is,
    unit by unit, the unit's own character, or (pinyin) its whole syllable — the last one
    may be a syllable's start, since people type left to right — or (initials) its first
    letter. 人民g matches 人民广场 (pinyin); rml, ｒｍｌ and 人m路 match 人民路.
    """
    if not text:
        return None
    norm = normalise(text)
    if query == norm:
        return Match("exact", EXACT)
    if norm.startswith(query):
        return Match("prefix", PREFIX)
    if query in norm:
        return Match("substring", OTHER)
    us = read or units(norm)
    for form in ("pinyin", "initials"):
        for start in range(len(us)):
            end = _aligned(query, us, start, form)
            if end is not None:
                whole = start == 0 and end == len(us)
                return Match(form, EXACT if whole else PREFIX if start == 0 else OTHER)
    return None


def _aligned(query: str, us: tuple[Unit, ...], start: int, form: str) -> int | None:
    """Where the units consumed by ``query`` from ``start`` end, if it reads them in ``form``."""
    j, k = 0, start
    while j < len(query):
        if k == len(us):
            return None
        unit, rest = us[k], query[j:]
        if rest[0] == unit.char:
            j += 1
        elif not unit.pinyin:
            return None
        elif form == "initials":
            if rest[0] != unit.reading[0]:
                return None
            j += 1
        elif rest.startswith(unit.reading):
            j += len(unit.reading)
        elif unit.reading.startswith(rest):
            j = len(query)  # the syllable being typed
        else:
            return None
        k += 1
    return k


# -- the typo-tolerant fallback (letters and digits only) --------------------------


def fuzzy_patterns(query: str) -> tuple[str, ...]:
    """Windows of a Latin query (3 characters up to 5 letters, else 4), any of which a
    one-typo variant still contains (in the ``pinyin`` form): the fallback's candidates."""
    if _NON_ALNUM_RUN.search(query) or len(query) < 4:
        return ()
    width = 3 if len(query) <= 5 else 4
    return tuple(dict.fromkeys(query[i:i + width] for i in range(len(query) - width + 1)))


def fuzzy_match(query: str, text: str | None, read: tuple[Unit, ...] | None = None) -> Match | None:
    """A near miss: the query within a small edit distance (one typo per 4 characters, at
    least one) of some stretch of the text's pinyin (or Latin) form."""
    if not text:
        return None
    norm = normalise(text)
    allowed = max(1, len(query) // 4)
    reading = "".join(u.reading for u in (read or units(norm)))
    if _best_edit_distance(query, reading) <= allowed:
        return Match("fuzzy", FUZZY)
    return None


def _best_edit_distance(query: str, text: str) -> int:
    """The least edit distance between ``query`` and any substring of ``text`` (Sellers)."""
    previous = [0] * (len(text) + 1)
    for i, qc in enumerate(query, 1):
        current = [i] + [0] * len(text)
        for j, tc in enumerate(text, 1):
            current[j] = min(previous[j - 1] + (qc != tc), previous[j] + 1, current[j - 1] + 1)
        previous = current
    return min(previous)
