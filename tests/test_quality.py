"""transforms.quality: every Gopher / C4 / FineWeb rule fires on a document made to break it, the verdict names
the filter and the rule, per-language overrides change decisions, and the Beam stage records drops."""

from __future__ import annotations

import random
import string

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from conftest import SENTENCES, make_document
from schemas.documents import QUALITY_SIGNALS, new_document
from transforms.config import QualityConfig, QualityThresholds
from transforms.quality import QualityFilter, assess
from transforms.text import script_of

GOOD = make_document("eng", 40, paragraph_every=5)


def pseudo_words(n: int, length: int | tuple[int, int] = (4, 9), seed: int = 0) -> list[str]:
    """Distinct made-up lowercase words (no stop words, no repeats)."""
    rng = random.Random(seed)
    lo, hi = (length, length) if isinstance(length, int) else length
    words: list[str] = []
    seen = set()
    while len(words) < n:
        w = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(lo, hi)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def english_lines(n: int, start: int = 0) -> list[str]:
    pool = SENTENCES["eng"]
    return [f"{pool[(start + 2 * i) % len(pool)]} {pool[(start + 2 * i + 1) % len(pool)]}" for i in range(n)]


def thresholds(**sections) -> QualityThresholds:
    """Default thresholds with some sections changed, e.g. thresholds(c4={"enabled": True})."""
    return QualityConfig(defaults=QualityThresholds.model_validate(sections)).defaults


def verdict(text: str, language: str = "eng", t: QualityThresholds | None = None):
    _, v, _ = assess(text, script_of(text), language, t or QualityThresholds())
    return (v.filter, v.rule) if v else None


def test_good_document_passes_and_signals_are_recorded():
    text, v, sig = assess(GOOD, "Latn", "eng", QualityThresholds())
    assert v is None and text == GOOD
    assert sig["n_words"] > 200 and 3 < sig["avg_word_length"] < 6 and sig["stop_words"] >= 2
    assert sig["dup_line_frac"] == 0 and 0 <= sig["line_punct_ratio"] <= 1


# --- Gopher repetition -------------------------------------------------------------------------------


def _top_ngram_doc(phrase: str, n_repeats: int, frac: float) -> str:
    """One line: `phrase` repeated between unique filler words so that it covers about `frac` of the chars."""
    filler_chars = int(len(phrase) * n_repeats / frac) - len(phrase) * n_repeats
    per_gap = max(1, filler_chars // (n_repeats * 8))
    words = iter(pseudo_words(n_repeats * per_gap, 7, seed=1))
    return " ".join(f"{phrase} " + " ".join(next(words) for _ in range(per_gap)) for _ in range(n_repeats)) + "."


def test_gopher_repetition_rules():
    lines = english_lines(20)
    paragraphs = ["\n".join(lines[i:i + 2]) for i in range(0, 20, 2)]
    assert verdict("\n\n".join(paragraphs)) is None
    cases = {
        "dup_para_frac": "\n\n".join(paragraphs[:6] + ["Share this."] * 5),
        "dup_para_char_frac": "\n\n".join(paragraphs[:8] + [paragraphs[0] * 3] * 2),
        "dup_line_frac": "\n".join(lines[:12] + ["Read more"] * 8),
        "dup_line_char_frac": "\n".join(lines[:16] + [lines[0] * 4] * 2),
        "top_2_gram": _top_ngram_doc("big dog", 30, 0.3),
        "top_3_gram": _top_ngram_doc("a b extraordinary", 30, 0.19),
        "top_4_gram": _top_ngram_doc("a b c supercalifragilistic", 30, 0.17),
        "duplicated_5_n_grams": " ".join(s + " " + s for s in english_lines(15, start=40)),
    }
    for rule, text in cases.items():
        assert verdict(text) == ("gopher_repetition", rule), rule


def test_top_ngram_just_under_the_threshold_is_kept():
    assert verdict(_top_ngram_doc("big dog", 30, 0.17), t=thresholds(gopher_quality={"enabled": False},
                                                                     fineweb={"enabled": False})) is None


# --- Gopher quality ----------------------------------------------------------------------------------


def _with_stop_words(words: list[str]) -> str:
    return " ".join(words[:10]) + " the cat and the dog. " + " ".join(words[10:]) + "."


def test_gopher_quality_rules():
    only_quality = thresholds(gopher_repetition={"enabled": False}, fineweb={"enabled": False})
    lines = english_lines(30)
    cases = {
        "min_doc_words": "The cat and the dog are here today.",
        "min_avg_word_length": _with_stop_words(pseudo_words(120, (1, 2))),
        "max_avg_word_length": _with_stop_words(pseudo_words(120, (14, 18))),
        "max_symbol_word_ratio": " ".join(f"#{w}" for w in GOOD.split()),
        "max_bullet_lines_ratio": "\n".join(f"- {ln}" for ln in lines),
        "max_ellipsis_lines_ratio": "\n".join(ln + ("..." if i % 2 else "") for i, ln in enumerate(lines)),
        "max_non_alpha_words_ratio": " ".join(f"{w} {i} {i * 7}" for i, w in enumerate(GOOD.split())),
        "min_stop_words": " ".join(pseudo_words(200, (4, 8))) + ".",
    }
    for rule, text in cases.items():
        assert verdict(text, t=only_quality) == ("gopher_quality", rule), rule
    ellipsis_words = " ".join(w + "..." for w in GOOD.split())
    assert verdict(ellipsis_words, t=only_quality) == ("gopher_quality", "max_symbol_word_ratio")
    long_doc = " ".join([GOOD] * 3)
    capped = thresholds(gopher_repetition={"enabled": False}, gopher_quality={"max_doc_words": 300})
    assert verdict(long_doc, t=capped) == ("gopher_quality", "max_doc_words")


def test_stop_words_follow_the_language():
    french = make_document("fra", 40, paragraph_every=5)
    t = thresholds(gopher_quality={"stop_words": ["le", "la", "les", "et", "de"]})
    assert verdict(french, "fra", t) is None
    t_wrong = thresholds(gopher_quality={"stop_words": ["the", "and"]})
    assert verdict(french, "fra", t_wrong) == ("gopher_quality", "min_stop_words")


# --- C4 and FineWeb ----------------------------------------------------------------------------------


def test_c4_rules_and_line_removal():
    c4 = thresholds(c4={"enabled": True})
    assert verdict(GOOD, t=c4) is None
    assert verdict(GOOD + "\nLorem ipsum dolor sit amet, consectetur.", t=c4) == ("c4", "lorem_ipsum")
    assert verdict(GOOD + "\nfunction f() { return 1; } is code here.", t=c4) == ("c4", "curly_bracket")
    assert verdict(GOOD, t=thresholds(c4={"enabled": True, "min_num_sentences": 10_000})) == ("c4", "min_num_sentences")
    assert verdict("One two three four. Five six seven eight.", t=thresholds(
        c4={"enabled": True}, gopher_repetition={"enabled": False}, gopher_quality={"enabled": False})) == (
        "c4", "min_num_sentences")
    noisy = "\n".join([GOOD, "Please enable JavaScript to view the comments.", "We use cookies on this site ok.",
                       "Too short", "A " + "x" * 1200 + " word line."])
    text, v, _ = assess(noisy, "Latn", "eng", c4)
    assert v is None
    assert "JavaScript" not in text and "cookies" not in text and "Too short" not in text and "xxxx" not in text
    assert text.startswith(SENTENCES["eng"][0])
    punct = thresholds(c4={"enabled": True, "filter_no_terminal_punct": True})
    text, v, _ = assess(GOOD + "\nno final punctuation on this line", "Latn", "eng", punct)
    assert v is None and "no final punctuation" not in text


def test_fineweb_rules():
    only_fineweb = thresholds(gopher_repetition={"enabled": False}, gopher_quality={"enabled": False})
    long_words = pseudo_words(200, (9, 12), seed=3)
    longer_words = pseudo_words(120, (14, 18), seed=4)
    cases = {
        "line_punct_ratio": "\n".join(" ".join(long_words[i:i + 5]) for i in range(0, 200, 5)),
        "short_line_ratio": "\n".join(f"{w.capitalize()} is here." for w in long_words[:60]),
        "char_dup_ratio": "\n".join(english_lines(30) + english_lines(2)),
        "list_ratio": "\n".join(f"{a.capitalize()} {b}." for a, b in zip(*[iter(longer_words)] * 2)),
    }
    for rule, text in cases.items():
        assert verdict(text, t=only_fineweb) == ("fineweb", rule), rule
    # the same document with the rule's threshold relaxed is kept
    relaxed = thresholds(gopher_repetition={"enabled": False}, gopher_quality={"enabled": False},
                         fineweb={"line_punct_thr": None})
    assert verdict(cases["line_punct_ratio"], t=relaxed) is None
    zero_ok = thresholds(gopher_repetition={"enabled": False}, gopher_quality={"enabled": False},
                         fineweb={"line_punct_exclude_zero": True})
    assert verdict(cases["line_punct_ratio"], t=zero_ok) is None


def test_fineweb_terminal_punctuation_of_other_scripts():
    only_fineweb = thresholds(gopher_repetition={"enabled": False}, gopher_quality={"enabled": False})
    for lang in ("cmn", "jpn", "hin", "ara", "tha"):
        lines = [make_document(lang, 3, start=3 * i) for i in range(12)]
        text = "\n".join(ln for ln in lines if len(ln) > 30) or "\n".join(lines)
        assert verdict(text, lang, only_fineweb) in (None, ("fineweb", "short_line_ratio")), lang


# --- per-language thresholds -------------------------------------------------------------------------


def test_per_language_overrides_change_the_decision():
    config = QualityConfig(languages={
        "fra": {"gopher_quality": {"min_doc_words": 5, "stop_words": ["le", "la", "et", "de"]}},
        "fra_Latn": {"fineweb": {"short_line_thr": 1.0}},
        "deu_Latn": {"gopher_quality": {"min_doc_words": 10_000}},
    })
    short_french = "\n".join(SENTENCES["fra"][:6])
    assert verdict(short_french, "fra", QualityConfig().thresholds_for("fra_Latn"))[1] == "min_doc_words"
    fra = config.thresholds_for("fra_Latn")
    assert fra.gopher_quality.min_doc_words == 5 and fra.fineweb.short_line_thr == 1.0
    assert fra.gopher_quality.max_doc_words == 100_000  # untouched fields keep the default
    assert config.thresholds_for("fra_Cyrl").fineweb.short_line_thr == 0.67  # script-level key applies to its script
    german = make_document("deu", 40, paragraph_every=5)
    assert verdict(german, "deu", config.thresholds_for("deu_Latn")) == ("gopher_quality", "min_doc_words")
    assert config.thresholds_for("eng_Latn") == QualityConfig().thresholds_for("eng_Latn")


def test_bad_override_is_rejected():
    with pytest.raises(ValueError):
        QualityConfig(languages={"fra": {"gopher_quality": {"min_doc_wordz": 5}}})
    with pytest.raises(ValueError):
        QualityConfig(languages={"fra": {"no_such_filter": {}}})
    with pytest.raises(ValueError):
        QualityConfig(languages={"fra": {"fineweb": {"short_line_length": "long"}}})


@pytest.mark.parametrize("lang", ["cmn", "jpn", "tha"])
def test_cjk_and_thai_documents_are_not_dropped_for_word_length_by_shipped_defaults(lang):
    """Shipped per-language defaults (transforms/data/quality_languages.yaml) must cover no-space scripts."""
    from transforms.config import load_config

    config = load_config(None).quality
    text = make_document(lang, 40, start=0, paragraph_every=5)
    script = script_of(text)
    _, v, sig = assess(text, script, lang, config.thresholds_for(f"{lang}_{script}"))
    assert v is None or v.rule not in ("min_avg_word_length", "max_avg_word_length", "min_doc_words"), (v, sig)


# --- the Beam stage ----------------------------------------------------------------------------------


def _doc(doc_id: str, text: str, language: str = "eng") -> dict:
    doc = new_document(doc_id, text, "t.jsonl")
    script = script_of(text)
    doc.update(language=language, script=script, partition=f"{language}_{script}", language_score=0.9)
    return doc


def test_quality_stage_keeps_and_rejects_with_filter_and_rule():
    docs = [_doc("good", GOOD), _doc("short", " ".join(SENTENCES["eng"][:4])), _doc("rep", "\n".join(["Buy now!"] * 20)),
            _doc("und", GOOD, "und")]
    signal_names = {f.name for f in QUALITY_SIGNALS}
    with BeamTestPipeline() as p:
        out = p | beam.Create(docs) | QualityFilter(QualityConfig(drop_undetermined=True))
        kept = out["documents"] | "Kept" >> beam.Map(
            lambda d: (d["id"], set(d["quality_signals"]) == signal_names, 0 <= d["quality_score"] <= 1))
        assert_that(kept, equal_to([("good", True, True)]), label="kept")
        dropped = out["rejected"] | "Dropped" >> beam.Map(
            lambda r: (r["id"], r["stage"], r["reason"], r["detail"].split(":")[0]))
        assert_that(dropped, equal_to([("short", "quality", "gopher_quality", "min_doc_words"),
                                       ("rep", "quality", "gopher_repetition", "dup_line_frac"),
                                       ("und", "quality", "undetermined_language", "language is und")]),
                    label="dropped")
