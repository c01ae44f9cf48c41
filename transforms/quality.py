"""Quality filtering: Gopher quality, Gopher repetition, C4 and FineWeb rules, thresholds per language.

The rules are our own implementation of the published heuristics with datatrove's defaults and decision
order (tests/test_quality_datatrove.py checks that the keep/drop decisions match datatrove's classes on the
same documents and thresholds). Unlike datatrove, a document is segmented into words once and every filter
reuses the result, and n-gram repetition is computed on integer hashes with numpy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import apache_beam as beam
import numpy as np
import regex

from schemas.documents import QUALITY_SIGNALS, rejected
from transforms.config import C4Quality, FineWebQuality, GopherQuality, GopherRepetition, QualityConfig
from transforms.core import Counters
from transforms.text import script_of, segment_words, split_sentences

STAGE = "quality"
STOP_WORDS_FILE = Path(__file__).parent / "data" / "stopwords.json"
# Gopher's stop words for English (Rae et al. 2021); other languages come from STOP_WORDS_FILE.
ENGLISH_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

# every Sentence_Terminal lies in planes 0-1: fullwidth "．", "｡" and Brahmic dandas included
_TERMINAL = "".join(sorted(set(regex.findall(r"\p{Sentence_Terminal}", "".join(map(chr, range(0x20000)))))))
TERMINAL_PUNCTUATION = tuple(_TERMINAL + "។៕៖៙៚。！？")
_SYMBOL_RE = regex.compile(r"^[\p{P}\p{S}\p{C}\s]+$")
_LETTER_RE = regex.compile(r"\p{L}")  # what str.isalpha accepts
_PARAGRAPH_SPLIT = re.compile(r"\n{2,}")
_LINES_SPLIT = re.compile(r"\n+")
_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
_POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@lru_cache(maxsize=1)
def _stop_word_table() -> dict[str, list[str]]:
    return json.loads(STOP_WORDS_FILE.read_text(encoding="utf-8"))["languages"]


@lru_cache(maxsize=None)
def stop_words_for(language: str, script: str | None = None) -> frozenset[str] | None:
    """The language's stop-word list, or None when we have none (the stop-word rule is then skipped).

    A list written in another script than the document (Serbian in Cyrillic, say) is not used.
    """
    words = list(ENGLISH_STOP_WORDS) if language == "eng" else _stop_word_table().get(language)
    if not words or (script and script_of(" ".join(words)) != script):
        return None
    return frozenset(words)


@dataclass
class Verdict:
    """Why a document is dropped: the filter, the rule and the measured value against its threshold."""

    filter: str
    rule: str
    detail: str


# --- shared measurements -----------------------------------------------------------------------------


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated elements, characters in them), counting every occurrence after the first."""
    seen: set[str] = set()
    n_dup = chars = 0
    for item in items:
        if item in seen:
            n_dup += 1
            chars += len(item)
        else:
            seen.add(item)
    return n_dup, chars


def _ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """64-bit polynomial hash of every run of n word ids (wrapping arithmetic is intended)."""
    m = len(ids) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * np.uint64(1_000_003) + ids[j : j + m]
    return h


def _top_ngram_chars(ids: np.ndarray, lengths: np.ndarray, n: int) -> int:
    """Characters covered by the most frequent n-gram (words joined by spaces), first seen wins ties."""
    if len(ids) < n:
        return 0
    hashes = _ngram_hashes(ids, n)
    _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    top = counts.max()
    start = int(first[counts == top].min())
    return (int(lengths[start : start + n].sum()) + n - 1) * int(top)


def _duplicated_ngram_chars(ids: np.ndarray, lengths: np.ndarray, n: int) -> int:
    """Characters in repeated n-grams, scanning left to right and jumping over each repeat (Gopher)."""
    if len(ids) < n:
        return 0
    hashes = _ngram_hashes(ids, n)
    if len(np.unique(hashes)) == len(hashes):
        return 0  # nothing repeats: the common case, no scan needed
    span = np.convolve(lengths, np.ones(n, dtype=np.int64), mode="valid")
    seen: set[int] = set()
    total, i, last = 0, 0, len(hashes)
    hash_list = hashes.tolist()
    while i < last:
        h = hash_list[i]
        if h in seen:
            total += int(span[i])
            i += n
        else:
            seen.add(h)
            i += 1
    return total


class _Doc:
    """A document's lines, paragraphs and words, each computed on first use."""

    def __init__(self, text: str, script: str | None):
        self.text = text
        self.script = script
        self._words: list[str] | None = None

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = segment_words(self.text, self.script)
        return self._words


# --- the four filters: each returns a Verdict or None, and records its signals -----------------------


def gopher_repetition(doc: _Doc, t: GopherRepetition, sig: dict) -> Verdict | None:
    text = doc.text
    paragraphs = _PARAGRAPH_SPLIT.split(text.strip())
    n_dup, chars = _duplicates(paragraphs)
    sig["dup_para_frac"] = n_dup / len(paragraphs)
    sig["dup_para_char_frac"] = chars / len(text)
    if t.dup_para_frac and sig["dup_para_frac"] > t.dup_para_frac:
        return Verdict("gopher_repetition", "dup_para_frac", f"{sig['dup_para_frac']:.3f} > {t.dup_para_frac}")
    if t.dup_para_char_frac and sig["dup_para_char_frac"] > t.dup_para_char_frac:
        return Verdict("gopher_repetition", "dup_para_char_frac", f"{sig['dup_para_char_frac']:.3f} > {t.dup_para_char_frac}")
    lines = _LINES_SPLIT.split(text)
    n_dup, chars = _duplicates(lines)
    sig["dup_line_frac"] = n_dup / len(lines)
    sig["dup_line_char_frac"] = chars / len(text)
    if t.dup_line_frac and sig["dup_line_frac"] > t.dup_line_frac:
        return Verdict("gopher_repetition", "dup_line_frac", f"{sig['dup_line_frac']:.3f} > {t.dup_line_frac}")
    if t.dup_line_char_frac and sig["dup_line_char_frac"] > t.dup_line_char_frac:
        return Verdict("gopher_repetition", "dup_line_char_frac", f"{sig['dup_line_char_frac']:.3f} > {t.dup_line_char_frac}")
    words = doc.words
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.uint64, count=len(words))
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    for n, limit in sorted(t.top_n_grams.items()):
        frac = _top_ngram_chars(ids, lengths, n) / len(text)
        if n == 2:
            sig["top_2gram_frac"] = frac
        if frac > limit:
            return Verdict("gopher_repetition", f"top_{n}_gram", f"{frac:.3f} > {limit}")
    dup_sizes = sorted(t.dup_n_grams.items())
    # a repeated n-gram contains a repeated shorter one: when the shortest never repeats, none does
    if dup_sizes and len(ids) >= dup_sizes[0][0]:
        shortest = _ngram_hashes(ids, dup_sizes[0][0])
        if len(np.unique(shortest)) == len(shortest):
            sig["dup_5gram_frac"] = 0.0
            dup_sizes = []
    for n, limit in dup_sizes:
        frac = _duplicated_ngram_chars(ids, lengths, n) / len(text)
        if n == 5:
            sig["dup_5gram_frac"] = frac
        if frac > limit:
            return Verdict("gopher_repetition", f"duplicated_{n}_n_grams", f"{frac:.3f} > {limit}")
    return None


def gopher_quality(doc: _Doc, t: GopherQuality, stop_words: frozenset[str] | None, sig: dict) -> Verdict | None:
    text, words = doc.text, doc.words
    real_words = [w for w in words if not _SYMBOL_RE.match(w)]
    n_tokens, n_words = len(words), len(real_words)
    sig["n_words"] = n_words
    if t.min_doc_words and n_words < t.min_doc_words:
        return Verdict("gopher_quality", "min_doc_words", f"{n_words} < {t.min_doc_words}")
    if t.max_doc_words and n_words > t.max_doc_words:
        return Verdict("gopher_quality", "max_doc_words", f"{n_words} > {t.max_doc_words}")
    if n_words == 0:
        return Verdict("gopher_quality", "min_doc_words", "no words")
    avg = sum(map(len, real_words)) / n_words
    sig["avg_word_length"] = avg
    if t.min_avg_word_length and avg < t.min_avg_word_length:
        return Verdict("gopher_quality", "min_avg_word_length", f"{avg:.2f} < {t.min_avg_word_length}")
    if t.max_avg_word_length and avg > t.max_avg_word_length:
        return Verdict("gopher_quality", "max_avg_word_length", f"{avg:.2f} > {t.max_avg_word_length}")
    hashes = text.count("#") / n_tokens
    ellipses = (text.count("...") + text.count("…")) / n_tokens
    sig["symbol_word_ratio"] = max(hashes, ellipses)
    if t.max_symbol_word_ratio and hashes > t.max_symbol_word_ratio:
        return Verdict("gopher_quality", "max_symbol_word_ratio", f"'#' {hashes:.3f} > {t.max_symbol_word_ratio}")
    if t.max_symbol_word_ratio and ellipses > t.max_symbol_word_ratio:
        return Verdict("gopher_quality", "max_symbol_word_ratio", f"ellipsis {ellipses:.3f} > {t.max_symbol_word_ratio}")
    lines = text.splitlines()
    bullets = sum(ln.lstrip().startswith(("•", "-")) for ln in lines) / len(lines)
    sig["bullet_lines_ratio"] = bullets
    if t.max_bullet_lines_ratio and bullets > t.max_bullet_lines_ratio:
        return Verdict("gopher_quality", "max_bullet_lines_ratio", f"{bullets:.3f} > {t.max_bullet_lines_ratio}")
    ellipsis_lines = sum(ln.rstrip().endswith(("...", "…")) for ln in lines) / len(lines)
    sig["ellipsis_lines_ratio"] = ellipsis_lines
    if t.max_ellipsis_lines_ratio and ellipsis_lines > t.max_ellipsis_lines_ratio:
        return Verdict("gopher_quality", "max_ellipsis_lines_ratio", f"{ellipsis_lines:.3f} > {t.max_ellipsis_lines_ratio}")
    alpha = sum(1 for w in words if _LETTER_RE.search(w)) / n_tokens
    sig["non_alpha_words_ratio"] = 1 - alpha
    # datatrove names this threshold "max_non_alpha_words_ratio" but compares the alpha share against it
    if t.max_non_alpha_words_ratio and alpha < t.max_non_alpha_words_ratio:
        return Verdict("gopher_quality", "max_non_alpha_words_ratio", f"alpha words {alpha:.3f} < {t.max_non_alpha_words_ratio}")
    if stop_words is not None:
        found = len(stop_words.intersection(words))
        sig["stop_words"] = found
        if t.min_stop_words and found < t.min_stop_words:
            return Verdict("gopher_quality", "min_stop_words", f"{found} < {t.min_stop_words}")
    return None


def c4_lines(text: str, t: C4Quality) -> tuple[str | None, Verdict | None]:
    """C4's line filter: returns the text with bad lines removed, or a Verdict dropping the document."""
    n_sentences = 0
    kept = []
    for line in text.splitlines():
        line = line.strip()
        words = line.split()
        if t.max_word_length and any(len(w) > t.max_word_length for w in words):
            continue
        line = _CITATION_RE.sub("", line)
        if t.filter_no_terminal_punct and (not line.endswith(_C4_END_PUNCTUATION) or line.endswith("...")):
            continue
        if t.min_words_per_line and len(words) < t.min_words_per_line:
            continue
        lowered = line.lower()
        if t.filter_lorem_ipsum and "lorem ipsum" in lowered:
            return None, Verdict("c4", "lorem_ipsum", "contains 'lorem ipsum'")
        if t.filter_javascript and "javascript" in lowered:
            continue
        if t.filter_curly_bracket and "{" in line:
            return None, Verdict("c4", "curly_bracket", "contains '{'")
        if t.filter_policy and any(p in lowered for p in _POLICY_PHRASES):
            continue
        if t.min_num_sentences:
            n_sentences += len(split_sentences(line))
        kept.append(line)
    if t.min_num_sentences and n_sentences < t.min_num_sentences:
        return None, Verdict("c4", "min_num_sentences", f"{n_sentences} < {t.min_num_sentences}")
    return "\n".join(kept).strip(), None


def fineweb(doc: _Doc, t: FineWebQuality, sig: dict) -> Verdict | None:
    text = doc.text
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return Verdict("fineweb", "empty", "no non-blank line")
    stops = TERMINAL_PUNCTUATION + tuple(t.extra_stop_chars)
    punct = sum(ln.endswith(stops) for ln in lines) / len(lines)
    sig["line_punct_ratio"] = punct
    if t.line_punct_thr is not None and punct < t.line_punct_thr and not (punct == 0 and t.line_punct_exclude_zero):
        return Verdict("fineweb", "line_punct_ratio", f"{punct:.3f} < {t.line_punct_thr}")
    short = sum(len(ln) <= t.short_line_length for ln in lines) / len(lines)
    sig["short_line_ratio"] = short
    if t.short_line_thr is not None and short > t.short_line_thr:
        return Verdict("fineweb", "short_line_ratio", f"{short:.3f} > {t.short_line_thr}")
    chars = len(text.replace("\n", ""))
    dup = _duplicates(lines)[1] / chars if chars else 0.0
    sig["char_dup_ratio"] = dup
    if t.char_duplicates_ratio is not None and dup > t.char_duplicates_ratio:
        return Verdict("fineweb", "char_dup_ratio", f"{dup:.4f} > {t.char_duplicates_ratio}")
    n_words = len(doc.words)
    ratio = text.count("\n") / n_words if n_words else float("inf")
    sig["new_line_ratio"] = ratio
    if t.new_line_ratio is not None and ratio > t.new_line_ratio:
        return Verdict("fineweb", "list_ratio", f"{ratio:.3f} > {t.new_line_ratio}")
    return None


# --- the whole stage ---------------------------------------------------------------------------------

# Signals whose headroom under their threshold makes up quality_score (higher = further from every limit).
_SCORED = {
    "dup_line_frac": ("gopher_repetition", "dup_line_frac"),
    "dup_para_frac": ("gopher_repetition", "dup_para_frac"),
    "dup_5gram_frac": ("gopher_repetition", None),
    "symbol_word_ratio": ("gopher_quality", "max_symbol_word_ratio"),
    "short_line_ratio": ("fineweb", "short_line_thr"),
    "char_dup_ratio": ("fineweb", "char_duplicates_ratio"),
}


def assess(text: str, script: str | None, language: str, thresholds) -> tuple[str, Verdict | None, dict]:
    """Run the enabled filters in FineWeb's order: Gopher repetition, Gopher quality, C4, FineWeb.

    Returns the (possibly C4-edited) text, the first failing rule or None, and the measured signals.
    """
    sig: dict = {}
    doc = _Doc(text, script)
    if thresholds.gopher_repetition.enabled:
        verdict = gopher_repetition(doc, thresholds.gopher_repetition, sig)
        if verdict:
            return text, verdict, sig
    if thresholds.gopher_quality.enabled:
        gq = thresholds.gopher_quality
        stop_words = frozenset(gq.stop_words) if gq.stop_words is not None else stop_words_for(language, script)
        verdict = gopher_quality(doc, gq, stop_words, sig)
        if verdict:
            return text, verdict, sig
    if thresholds.c4.enabled:
        edited, verdict = c4_lines(text, thresholds.c4)
        if verdict:
            return text, verdict, sig
        if edited != text:
            text, doc = edited, _Doc(edited, script)
    if thresholds.fineweb.enabled:
        verdict = fineweb(doc, thresholds.fineweb, sig)
        if verdict:
            return text, verdict, sig
    return text, None, sig


def quality_score(sig: dict, thresholds) -> float:
    """Mean headroom (1 - value/limit, clipped to 0..1) over the repetition and noise signals."""
    parts = []
    for name, (section, attr) in _SCORED.items():
        if name not in sig:
            continue
        limits = getattr(thresholds, section)
        limit = getattr(limits, attr) if attr else limits.dup_n_grams.get(5)
        if limit:
            parts.append(min(1.0, max(0.0, 1.0 - sig[name] / limit)))
    return float(np.mean(parts)) if parts else 1.0


class _QualityFn(beam.DoFn):
    def __init__(self, config: QualityConfig):
        self.config = config

    def setup(self):
        self.counters = Counters(STAGE)
        self._thresholds = {}

    def _thresholds_for(self, partition: str):
        if partition not in self._thresholds:
            self._thresholds[partition] = self.config.thresholds_for(partition)
        return self._thresholds[partition]

    def process(self, doc: dict):
        partition = doc.get("partition") or "und_Zyyy"
        language = doc.get("language") or "und"
        if language == "und" and self.config.drop_undetermined:
            self.counters.inc("dropped.undetermined_language")
            yield beam.pvalue.TaggedOutput("rejected", rejected(doc, STAGE, "undetermined_language", "language is und"))
            return
        thresholds = self._thresholds_for(partition)
        text, verdict, sig = assess(doc["text"], doc.get("script"), language, thresholds)
        if verdict:
            self.counters.inc(f"dropped.{verdict.filter}.{verdict.rule}")
            yield beam.pvalue.TaggedOutput(
                "rejected", rejected(doc, STAGE, verdict.filter, f"{verdict.rule}: {verdict.detail}")
            )
            return
        self.counters.inc("kept")
        signals = {name: sig.get(name) for name in _SIGNAL_NAMES}
        yield dict(doc, text=text, quality_signals=signals, quality_score=quality_score(sig, thresholds))


_SIGNAL_NAMES = tuple(f.name for f in QUALITY_SIGNALS)


class QualityFilter(beam.PTransform):
    """Keep documents that pass every enabled filter; the rest go to `rejected` with filter and rule."""

    def __init__(self, config: QualityConfig):
        super().__init__()
        self.config = config

    def expand(self, documents):
        results = documents | "Filter" >> beam.ParDo(_QualityFn(self.config)).with_outputs("rejected", main="documents")
        return {"documents": results.documents, "rejected": results.rejected}
