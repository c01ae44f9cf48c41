"""Text utilities shared by every stage: script detection, word segmentation, normalisation.

Language ID, quality filtering, dedup, bitext mining and code-switching must agree on what a "word" is,
so the one implementation lives here and stages import it; stages never import each other.
"""

from __future__ import annotations

import threading
import unicodedata
from functools import lru_cache

import numpy as np
import regex

# ISO 15924 codes we can tell apart. Index 0 means "no script" (Common, Inherited, unassigned).
SCRIPTS = (
    "Zyyy", "Latn", "Cyrl", "Grek", "Armn", "Hebr", "Arab", "Syrc", "Thaa", "Nkoo", "Deva", "Beng", "Guru",
    "Gujr", "Orya", "Taml", "Telu", "Knda", "Mlym", "Sinh", "Thai", "Laoo", "Tibt", "Mymr", "Geor", "Hang",
    "Ethi", "Cher", "Cans", "Khmr", "Mong", "Hira", "Kana", "Bopo", "Hani", "Yiii", "Tfng", "Olck", "Copt",
    "Glag", "Goth", "Java", "Bali", "Sund", "Tglg", "Ogam", "Runr", "Vaii", "Adlm", "Brai",
)
_SCRIPT_INDEX = {s: i for i, s in enumerate(SCRIPTS)}
_TABLE_SIZE = 0x30000

# Scripts written without spaces between words: these need a dictionary-based segmenter (ICU).
NO_SPACE_SCRIPTS = frozenset({"Hani", "Jpan", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt"})


@lru_cache(maxsize=1)
def _script_table() -> np.ndarray:
    """Code point -> index into SCRIPTS, built once per process from the Unicode data in `regex`."""
    table = np.zeros(_TABLE_SIZE, dtype=np.uint8)
    cps = [i for i in range(_TABLE_SIZE) if not 0xD800 <= i < 0xE000]
    chars = "".join(map(chr, cps))
    positions = np.asarray(cps, dtype=np.int64)
    for code, idx in _SCRIPT_INDEX.items():
        if code == "Zyyy":
            continue
        for m in regex.finditer(r"\p{sc=%s}+" % code, chars):
            table[positions[m.start():m.end()]] = idx
    return table


def script_counts(text: str, max_chars: int = 20_000) -> np.ndarray:
    """Counts of letters per script (indexed like SCRIPTS) over the first `max_chars` characters."""
    sample = text[:max_chars]
    cps = np.frombuffer(sample.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    cps = cps[cps < _TABLE_SIZE]
    return np.bincount(_script_table()[cps], minlength=len(SCRIPTS))


def script_of(text: str) -> str:
    """ISO 15924 script of a text, measured from its own characters.

    Japanese mixes kana and kanji and is `Jpan`; Korean is `Hang` (as FineWeb-2 labels it). A text with
    no letters at all is `Zyyy`.
    """
    counts = script_counts(text)
    counts[0] = 0
    if counts.sum() == 0:
        return "Zyyy"
    kana = counts[_SCRIPT_INDEX["Hira"]] + counts[_SCRIPT_INDEX["Kana"]]
    han = counts[_SCRIPT_INDEX["Hani"]]
    top = SCRIPTS[int(counts.argmax())]
    if top in ("Hani", "Hira", "Kana") and kana > 0.05 * (kana + han):
        return "Jpan"
    if top == "Bopo":
        return "Hani"
    return top


# --- word segmentation -------------------------------------------------------------------------------

# A word is a run of word characters, optionally joined by an apostrophe, hyphen or inner dot ("don't",
# "e-mail", "3.14"); any other non-space character is a token of its own, as spaCy's tokenizer does.
_WORD_RE = regex.compile(r"[\w\p{M}]+(?:['’\-.][\w\p{M}]+)*|[^\w\s\p{M}]", regex.UNICODE)
_icu_local = threading.local()


def _icu_break_iterator():
    # BreakIterator is not thread-safe and expensive to create: one per thread, reused.
    bi = getattr(_icu_local, "bi", None)
    if bi is None:
        import icu

        bi = icu.BreakIterator.createWordInstance(icu.Locale.getRoot())
        _icu_local.bi = bi
    return bi


def _icu_words(text: str) -> list[str]:
    import icu

    bi = _icu_break_iterator()
    ustr = icu.UnicodeString(text)
    bi.setText(ustr)
    astral = len(ustr) != len(text)  # ICU offsets are UTF-16 units
    out = []
    start = bi.first()
    for end in bi:
        piece = str(ustr[start:end]) if astral else text[start:end]
        if not piece.isspace():
            out.append(piece.strip())
        start = end
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` by ICU's sentence breaker (terminal punctuation of every script, CJK included)."""
    import icu

    bi = getattr(_icu_local, "sbi", None)
    if bi is None:
        bi = _icu_local.sbi = icu.BreakIterator.createSentenceInstance(icu.Locale.getRoot())
    ustr = icu.UnicodeString(text)
    bi.setText(ustr)
    astral = len(ustr) != len(text)
    out = []
    start = bi.first()
    for end in bi:
        piece = (str(ustr[start:end]) if astral else text[start:end]).strip()
        if piece:
            out.append(piece)
        start = end
    return out


def needs_segmenter(script: str | None, text: str) -> bool:
    if script is None:
        script = script_of(text)
    return script in NO_SPACE_SCRIPTS


def segment_words(text: str, script: str | None = None) -> list[str]:
    """Word and punctuation tokens of `text`.

    Chinese, Japanese, Thai, Lao, Khmer, Burmese and Tibetan go through ICU's dictionary-based word
    breaker; every other script is split on word characters, keeping punctuation as separate tokens.
    Pass the document's script when it is known, to skip detecting it again.
    """
    if not text:
        return []
    if needs_segmenter(script, text):
        return _icu_words(text)
    return _WORD_RE.findall(text)


def is_punctuation_token(token: str) -> bool:
    """True when a token has no letter or digit: it counts as a symbol, not a word."""
    return not any(ch.isalnum() for ch in token)


# --- normalisation -----------------------------------------------------------------------------------

_DIGITS_RE = regex.compile(r"\d+")
_NON_WORD_RE = regex.compile(r"[^\w\s]|_", regex.UNICODE)
_SPACE_RE = regex.compile(r"\s+")


def fold_accents(text: str) -> str:
    """Remove combining marks after NFKD decomposition ("é" -> "e"), then recompose."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)


def normalize_for_dedup(text: str) -> str:
    """Lowercase, fold accents, drop punctuation, map every number to 0, collapse whitespace.

    Used for exact-duplicate hashing and MinHash shingles, so that trivial edits do not hide duplicates.
    """
    text = fold_accents(text.lower())
    text = _NON_WORD_RE.sub(" ", text)
    text = _DIGITS_RE.sub("0", text)
    return _SPACE_RE.sub(" ", text).strip()


def safe_path_component(value: str, fallback: str = "und") -> str:
    """A data-derived value (language code, pair name) made safe to use as one folder name.

    Anything but ASCII letters, digits, '_' and '-' is removed, so no value can escape the output folder.
    """
    cleaned = regex.sub(r"[^A-Za-z0-9_\-]", "", value or "")[:64]
    return cleaned if cleaned.strip("-_") else fallback
