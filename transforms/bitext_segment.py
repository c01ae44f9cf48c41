"""Sentence segmentation for bitext mining, language by language.

Rules (the README documents them):

- A line break always ends a sentence: web text puts headings, list items and table cells on their own lines.
- Inside a line, ICU's sentence BreakIterator (locale of the document's language) finds the boundaries. It knows
  CJK full stops (。！？), Devanagari danda, Khmer, Burmese and Armenian sentence marks.
- ICU breaks after every "abbrev." it does not know. A break right after a known abbreviation of the language
  (pysbd's lists, 22 languages), a single-letter initial ("J. Smith") or a number-abbreviation ("No. 5") is
  undone, so "Dr. Smith arrived." stays one sentence.
- Thai, Lao and Khmer mark sentence ends with a space, not punctuation: their lines are also split at spaces, and
  a piece shorter than the minimum is glued to the next one.
- Length is measured in display width: East Asian wide characters count 2, so the same bounds fit Chinese and
  English. A sentence narrower than `min_chars` is dropped (menu items, numbers). A sentence wider than
  `max_chars` is dropped too, not cut: a cut has no translation on the other side, and a 500-character
  "sentence" is in practice a list, a table or text without punctuation. Dropped sentences are counted.
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import regex

from transforms.langid import ISO639_1_TO_3
from transforms.text import script_of

# ISO 639-3 -> the locale ICU and pysbd know the language by: the inverse of language ID's ISO 639-1 table,
# plus the individual languages whose macrolanguage has the two-letter code.
_LOCALES = {**{three: two for two, three in ISO639_1_TO_3.items()},
            "arb": "ar", "cmn": "zh", "zho": "zh", "yue": "zh", "wuu": "zh", "pes": "fa"}
_SPACE_DELIMITED_SCRIPTS = frozenset({"Thai", "Laoo", "Khmr"})
_WORD_BEFORE_DOT = regex.compile(r"(\w+)\.\s*$")
_INITIAL = regex.compile(r"(?:^|\s)\p{Lu}\.\s*$")
_icu_local = threading.local()


@dataclass(frozen=True)
class Segment:
    """A sentence of a document: its position among the document's segments, and its text."""

    index: int
    text: str


def display_width(text: str) -> int:
    """Characters, with East Asian wide and full-width characters counted twice."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _locale_of(language: str) -> str:
    return _LOCALES.get(language, language if len(language) == 2 else "root")


@lru_cache(maxsize=64)
def _abbreviations(language: str) -> frozenset[str]:
    """Lower-cased abbreviations (without the dot) that do not end a sentence, from pysbd's per-language lists."""
    import pysbd.languages

    lang = pysbd.languages.LANGUAGE_CODES.get(_locale_of(language))
    if lang is None:
        return frozenset()
    abbr = lang.Abbreviation
    words = set(abbr.ABBREVIATIONS) | set(abbr.PREPOSITIVE_ABBREVIATIONS) | set(abbr.NUMBER_ABBREVIATIONS)
    return frozenset(w.lower().rstrip(".") for w in words)


def _break_iterator(locale: str):
    # BreakIterator is not thread-safe and costly to build: one per thread and locale.
    cache = getattr(_icu_local, "cache", None)
    if cache is None:
        cache = _icu_local.cache = {}
    bi = cache.get(locale)
    if bi is None:
        import icu

        bi = cache[locale] = icu.BreakIterator.createSentenceInstance(icu.Locale(locale))
    return bi


def _icu_sentences(line: str, locale: str) -> list[str]:
    import icu

    bi = _break_iterator(locale)
    ustr = icu.UnicodeString(line)
    bi.setText(ustr)
    astral = len(ustr) != len(line)  # ICU offsets count UTF-16 units
    pieces, start = [], bi.first()
    for end in bi:
        pieces.append(str(ustr[start:end]) if astral else line[start:end])
        start = end
    return pieces


def _ends_with_abbreviation(piece: str, abbreviations: frozenset[str]) -> bool:
    if _INITIAL.search(piece):
        return True
    m = _WORD_BEFORE_DOT.search(piece)
    return bool(m) and m.group(1).lower() in abbreviations


def split_line(line: str, language: str, script: str | None, min_width: int) -> list[str]:
    """Sentences of one line of text (no line breaks inside), before length filtering."""
    pieces = _icu_sentences(line, _locale_of(language))
    abbreviations = _abbreviations(language)
    merged: list[str] = []
    for piece in pieces:
        if merged and _ends_with_abbreviation(merged[-1], abbreviations):
            merged[-1] += piece
        else:
            merged.append(piece)
    script = script or script_of(line)
    if script in _SPACE_DELIMITED_SCRIPTS:
        merged = _split_at_spaces(merged, min_width)
    return [s.strip() for s in merged if s.strip()]


def _split_at_spaces(pieces: list[str], min_width: int) -> list[str]:
    out: list[str] = []
    carry = ""
    for piece in pieces:
        for chunk in piece.split():
            carry = f"{carry} {chunk}" if carry else chunk
            if display_width(carry) >= min_width:
                out.append(carry)
                carry = ""
    if carry:
        if out:
            out[-1] = f"{out[-1]} {carry}"
        else:
            out.append(carry)
    return out


def split_sentences(
    text: str, language: str, script: str | None = None, min_chars: int = 5, max_chars: int = 500
) -> tuple[list[Segment], int, int]:
    """Sentences of a document that pass the length rule, and the counts dropped as too short / too long.

    `Segment.index` numbers every segment of the document, kept or not, so it points back into the text the
    same way whatever the length bounds.
    """
    kept: list[Segment] = []
    too_short = too_long = 0
    index = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        for sentence in split_line(line, language, script, min_chars):
            # ICU is linear in the text; a 100 kB "sentence" costs no more than 100 kB of short ones.
            width = display_width(sentence) if len(sentence) <= max_chars else max_chars + 1
            if width < min_chars:
                too_short += 1
            elif width > max_chars:
                too_long += 1
            else:
                kept.append(Segment(index, sentence))
            index += 1
    return kept, too_short, too_long
