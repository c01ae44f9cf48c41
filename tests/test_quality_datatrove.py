"""Our quality rules make the same keep/drop decisions as datatrove 0.10's filter classes.

About 300 documents (real Tatoeba text in 22 languages plus synthetic repetitive, boilerplate, bullet, short-line
and symbol-heavy pages, with intensities spread around every threshold) go through datatrove's
GopherRepetitionFilter -> GopherQualityFilter -> [C4QualityFilter] -> FineWebQualityFilter and through
`transforms.quality.assess`, with the same thresholds. datatrove is given a WordTokenizer wrapping
`transforms.text.segment_words` (its filters accept a tokenizer instance as `language`), so the test checks the
rule logic, not the tokenizers: decisions, the filter and the rule must be identical. Agreement with datatrove's
stock per-language tokenizers is measured and printed, not asserted (tokenizers legitimately differ).
"""

from __future__ import annotations

import random
import string
from collections import Counter

import pytest

from conftest import EXPECTED_LID, SENTENCES, make_document
from transforms.config import QualityConfig, QualityThresholds
from transforms.quality import TERMINAL_PUNCTUATION, assess, stop_words_for
from transforms.text import script_of, segment_words, split_sentences

dt_text = pytest.importorskip("datatrove.utils.text")
from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (  # noqa: E402
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer  # noqa: E402

# datatrove's reason strings -> our rule names
RULES = {
    "gopher_short_doc": "min_doc_words", "gopher_long_doc": "max_doc_words",
    "gopher_below_avg_threshold": "min_avg_word_length", "gopher_above_avg_threshold": "max_avg_word_length",
    "gopher_too_many_hashes": "max_symbol_word_ratio", "gopher_too_many_ellipsis": "max_symbol_word_ratio",
    "gopher_too_many_bullets": "max_bullet_lines_ratio", "gopher_too_many_end_ellipsis": "max_ellipsis_lines_ratio",
    "gopher_below_alpha_threshold": "max_non_alpha_words_ratio", "gopher_enough_stop_words": "min_stop_words",
    "too_few_sentences": "min_num_sentences",
}
FILTERS = {GopherRepetitionFilter: "gopher_repetition", GopherQualityFilter: "gopher_quality", C4QualityFilter: "c4",
           FineWebQualityFilter: "fineweb"}


class SegmentWordsTokenizer(WordTokenizer):
    """datatrove's tokenizer interface over our segmenter, so both sides see the same words and sentences."""

    def word_tokenize(self, text: str) -> list[str]:
        return segment_words(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return split_sentences(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, pos = [], 0
        for sentence in split_sentences(text):
            start = text.index(sentence, pos)
            pos = start + len(sentence)
            spans.append((start, pos))
        return spans


# --- the shared documents ----------------------------------------------------------------------------


def _pseudo(rng: random.Random, n: int, lo: int = 3, hi: int = 9) -> list[str]:
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def _lines(rng: random.Random, lang: str, n: int) -> list[str]:
    pool = SENTENCES[lang]
    joiner = "" if lang in ("cmn", "jpn", "tha") else " "
    start = rng.randrange(len(pool))
    return [joiner.join(pool[(start + 2 * i + j) % len(pool)] for j in range(rng.randint(1, 3))) for i in range(n)]


def build_documents(seed: int = 7) -> list[tuple[str, str]]:
    """(language, text) pairs: real documents of every fixture language, then synthetic web-like pages."""
    rng = random.Random(seed)
    docs: list[tuple[str, str]] = []
    for lang in SENTENCES:
        for n, layout in ((3, 0), (10, 2), (20, 4), (35, 1), (50, 5), (70, 3)):
            docs.append((lang, make_document(lang, n, start=rng.randrange(80), paragraph_every=layout)))
    latin = ["eng", "fra", "deu", "spa", "ita", "por", "nld", "pol", "tur", "vie", "ind"]
    for i in range(170):
        lang = latin[i % len(latin)] if i % 5 else rng.choice(list(SENTENCES))
        lines = _lines(rng, lang, rng.randint(6, 30))
        kind = i % 17
        k = ((i // 17) % 10 + rng.random()) / 10  # intensities spread evenly over each kind's ten pages
        if kind == 0:  # repeated boilerplate paragraphs
            paragraphs = ["\n".join(lines[j:j + 2]) for j in range(0, len(lines), 2)]
            copies = 1 + int(k * len(paragraphs))
            paragraphs += [rng.choice(["Share this page.", "Subscribe to our newsletter today!"])] * copies
            rng.shuffle(paragraphs)
            text = "\n\n".join(paragraphs)
        elif kind == 1:  # repeated navigation lines
            nav = rng.choice(["Home", "Read more", "Log in | Sign up", lines[1]])
            text = "\n".join(lines + [nav] * int(k * len(lines) * 0.8))
        elif kind == 2:  # keyword spam: a phrase repeated inside the text
            phrase = rng.choice(["cheap flights", "best price online", "buy now and save big"])
            words = " ".join(lines).split()
            for _ in range(int(k * len(words) / 3)):
                words.insert(rng.randrange(len(words) + 1), phrase)
            text = " ".join(words)
        elif kind == 3:  # copied sentences (duplicated n-grams)
            text = " ".join(s + (" " + s if rng.random() < k else "") for s in lines)
        elif kind == 4:  # bullet lists
            text = "\n".join((rng.choice(["- ", "• ", "  - "]) if rng.random() < 0.75 + k / 4 else "") + s for s in lines)
        elif kind == 5:  # truncated teasers ending in ellipses
            text = "\n".join(s.rstrip(".!?") + (rng.choice(["...", "…"]) if rng.random() < k * 0.7 else ".")
                             for s in lines)
        elif kind == 6:  # hashtags
            text = " ".join((f"#{w}" if rng.random() < k * 0.3 else w) for w in " ".join(lines).split())
        elif kind == 7:  # numbers and prices
            text = " ".join(w + (f" {rng.randint(1, 9999)}" if rng.random() < k else "") for w in " ".join(lines).split())
        elif kind == 8:  # menus: short lines
            menu = [w.capitalize() for w in _pseudo(rng, int(k * 40) + 1)]
            text = "\n".join(lines + menu)
        elif kind == 9:  # lines without terminal punctuation
            text = "\n".join(s.rstrip(".!?。！？") if rng.random() < 0.7 + k * 0.3 else s for s in lines)
        elif kind == 10:  # link lists: one short word or two long ones per line, few sentences
            m = rng.randint(30, 45)
            short = [w.capitalize() for w in _pseudo(rng, int(m * (0.5 + k * 0.15)), 3, 5)]
            pairs = zip(_pseudo(rng, m - len(short), 14, 15), _pseudo(rng, m - len(short), 15, 16))
            long = [f"{a.capitalize()} {b}" + ("." if j % 3 == 0 else "") for j, (a, b) in enumerate(pairs)]
            text = "\n".join(rng.sample(lines[:3] + short + long, len(short) + len(long) + len(lines[:3])))
        elif kind == 11:  # C4 line boilerplate
            extra = ["Please enable JavaScript to continue.", "This site uses cookies to improve your experience.",
                     "Read our privacy policy and terms of use.", "See the reference [1] and [edit] it."]
            text = "\n".join(lines + rng.sample(extra, rng.randint(1, 4)))
        elif kind == 12:  # C4 document killers
            killer = ["Lorem ipsum dolor sit amet, consectetur adipiscing.", "var config = { debug: true }; is set.",
                      lines[0]][(i // 17) % 3]
            text = "\n".join(lines + [killer])
        elif kind == 13:  # very short pages
            text = " ".join(lines[: rng.randint(1, 4)])
        elif kind == 14:  # long tokens: compounds, identifiers, blobs
            lo = (1, 1, 2, 4, 6, 8, 11, 13, 15, 17)[(i // 17) % 10]
            text = " ".join(lines[:2]) + " " + " ".join(_pseudo(rng, rng.randint(40, 90), lo, lo + 2)) + "."
        elif kind == 15:  # footers with symbols and prices
            footer = f"© 2024 Shop · Prices from €{rng.randint(5, 99)} · 20°C · ★★★★☆ · {rng.randint(1, 99)}% off"
            text = "\n".join(lines + [footer] * rng.randint(1, 3))
        else:  # pseudo-words without stop words
            text = " ".join(_pseudo(rng, rng.randint(30, 200))) + "."
        docs.append((lang, text))
    return docs


DOCUMENTS = build_documents()


# --- running both implementations --------------------------------------------------------------------


def _datatrove_filters(t: QualityThresholds, stop_words, language) -> list:
    gr, gq, c4, fw = t.gopher_repetition, t.gopher_quality, t.c4, t.fineweb
    filters = []
    if gr.enabled:
        filters.append(GopherRepetitionFilter(
            dup_line_frac=gr.dup_line_frac, dup_para_frac=gr.dup_para_frac, dup_line_char_frac=gr.dup_line_char_frac,
            dup_para_char_frac=gr.dup_para_char_frac, top_n_grams=tuple(sorted(gr.top_n_grams.items())),
            dup_n_grams=tuple(sorted(gr.dup_n_grams.items())), language=language))
    if gq.enabled:
        filters.append(GopherQualityFilter(
            min_doc_words=gq.min_doc_words, max_doc_words=gq.max_doc_words, min_avg_word_length=gq.min_avg_word_length,
            max_avg_word_length=gq.max_avg_word_length, max_symbol_word_ratio=gq.max_symbol_word_ratio,
            max_bullet_lines_ratio=gq.max_bullet_lines_ratio, max_ellipsis_lines_ratio=gq.max_ellipsis_lines_ratio,
            max_non_alpha_words_ratio=gq.max_non_alpha_words_ratio,
            min_stop_words=gq.min_stop_words if stop_words is not None else None,
            stop_words=sorted(stop_words or ()), language=language))
    if c4.enabled:
        filters.append(C4QualityFilter(
            filter_no_terminal_punct=c4.filter_no_terminal_punct, min_num_sentences=c4.min_num_sentences or -1,
            min_words_per_line=c4.min_words_per_line or -1, max_word_length=c4.max_word_length or -1,
            filter_lorem_ipsum=c4.filter_lorem_ipsum, filter_javascript=c4.filter_javascript,
            filter_curly_bracket=c4.filter_curly_bracket, filter_policy=c4.filter_policy, language=language))
    if fw.enabled:
        # datatrove has no "off" for these thresholds: a bound no ratio can cross is the same thing
        off = float("inf")
        filters.append(FineWebQualityFilter(
            line_punct_thr=fw.line_punct_thr if fw.line_punct_thr is not None else -off,
            line_punct_exclude_zero=fw.line_punct_exclude_zero,
            stop_chars=tuple(dt_text.TERMINAL_PUNCTUATION) + tuple(fw.extra_stop_chars),
            short_line_thr=fw.short_line_thr if fw.short_line_thr is not None else off,
            short_line_length=fw.short_line_length,
            char_duplicates_ratio=fw.char_duplicates_ratio if fw.char_duplicates_ratio is not None else off,
            new_line_ratio=fw.new_line_ratio if fw.new_line_ratio is not None else off, language=language))
    return filters


def datatrove_decision(text: str, filters: list):
    doc = Document(text=text, id="x")
    for f in filters:
        result = f.filter(doc)
        if result is not True:
            reason = result[1] if isinstance(result, tuple) else "dropped"
            return FILTERS[type(f)], RULES.get(reason, reason)
    return None


def our_decision(text: str, lang: str, t: QualityThresholds):
    _, verdict, _ = assess(text, script_of(text), lang, t)
    return (verdict.filter, verdict.rule) if verdict else None


def _thresholds(config: QualityConfig, lang: str, text: str, with_c4: bool) -> QualityThresholds:
    t = config.thresholds_for(f"{lang}_{script_of(text)}")
    if with_c4:
        t = t.model_copy(update={"c4": t.c4.model_copy(update={"enabled": True})})
    return t


def _stop_words(lang: str, text: str, t: QualityThresholds):
    if t.gopher_quality.stop_words is not None:
        return frozenset(t.gopher_quality.stop_words)
    return stop_words_for(lang, script_of(text))


@pytest.mark.parametrize("with_c4", [False, True], ids=["fineweb_recipe", "with_c4"])
def test_same_decisions_as_datatrove_with_the_same_tokenizer(with_c4):
    config = QualityConfig()
    tokenizer = SegmentWordsTokenizer()
    mismatches, ours_all = [], []
    for i, (lang, text) in enumerate(DOCUMENTS):
        t = _thresholds(config, lang, text, with_c4)
        ours = our_decision(text, lang, t)
        theirs = datatrove_decision(text, _datatrove_filters(t, _stop_words(lang, text, t), tokenizer))
        ours_all.append(ours)
        if ours != theirs:
            mismatches.append((i, lang, ours, theirs, text[:120]))
    assert len(DOCUMENTS) >= 300
    assert not mismatches, f"{len(mismatches)} of {len(DOCUMENTS)} differ: {mismatches[:5]}"
    # the set exercises every filter and most rules, and keeps a good share of documents
    fired = Counter(d for d in ours_all if d)
    rules = {rule for _, rule in fired}
    assert sum(1 for d in ours_all if d is None) >= 40
    expected = {"dup_para_frac", "dup_line_frac", "top_2_gram", "duplicated_5_n_grams", "min_doc_words",
                "min_avg_word_length", "max_avg_word_length", "max_symbol_word_ratio", "max_bullet_lines_ratio",
                "max_ellipsis_lines_ratio", "max_non_alpha_words_ratio", "min_stop_words", "line_punct_ratio",
                "short_line_ratio", "char_dup_ratio", "list_ratio"}
    if with_c4:  # C4 removes lines of fewer than 3 words, so list pages no longer reach FineWeb's list rule
        expected = (expected - {"list_ratio"}) | {"lorem_ipsum", "curly_bracket", "min_num_sentences"}
    assert expected <= rules, expected - rules
    print(f"\n{len(DOCUMENTS)} documents, {'with' if with_c4 else 'without'} C4: kept {ours_all.count(None)}; "
          f"drops {dict(sorted(Counter(r for _, r in fired.elements()).items()))}")


def test_terminal_punctuation_covers_datatrove_list():
    missing = set(dt_text.TERMINAL_PUNCTUATION) - set(TERMINAL_PUNCTUATION)
    assert not missing, sorted(missing)


# loading a stock tokenizer takes 1-3 s per language: measure on a spread of scripts
STOCK_LANGUAGES = ("eng", "deu", "spa", "rus", "ell", "ara", "cmn", "jpn", "tha")


def test_agreement_with_stock_datatrove_tokenizers_is_measured():
    """Measured, not asserted: datatrove's own tokenizers (spaCy, per language) against our ICU/regex words."""
    config = QualityConfig()
    agree = total = 0
    by_lang: dict[str, list[int]] = {}
    unavailable: set[str] = set()
    tokenizers: dict[str, WordTokenizer] = {}
    for lang, text in DOCUMENTS:
        t = _thresholds(config, lang, text, False)
        if lang in unavailable or lang not in STOCK_LANGUAGES:
            continue
        try:
            if lang not in tokenizers:  # datatrove builds a new tokenizer per call by name: build each once
                tokenizers[lang] = load_word_tokenizer(EXPECTED_LID[lang])
            theirs = datatrove_decision(text, _datatrove_filters(t, _stop_words(lang, text, t), tokenizers[lang]))
        except Exception:  # a tokenizer whose package or model is not installed here
            unavailable.add(lang)
            continue
        same = our_decision(text, lang, t) == theirs
        agree += same
        total += 1
        by_lang.setdefault(lang, [0, 0])
        by_lang[lang][0] += same
        by_lang[lang][1] += 1
    assert total > 0
    worst = sorted(by_lang.items(), key=lambda kv: kv[1][0] / kv[1][1])[:5]
    print(f"\nagreement with stock datatrove tokenization: {agree}/{total} = {agree / total:.3f}; "
          f"lowest: {[(k, f'{a}/{n}') for k, (a, n) in worst]}; no stock tokenizer here: {sorted(unavailable)}")
