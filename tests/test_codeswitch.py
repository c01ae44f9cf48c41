"""Code-switch synthesis: metrics, aligner, switching methods, bad input and the Beam stage."""

from __future__ import annotations

import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to, is_not_empty
from pydantic import ValidationError

from transforms.codeswitch import (
    Replacement,
    Resources,
    SynthesizeCodeSwitch,
    markup_tag,
    render,
    switch_alignment,
    synthesize_group,
    tokenize,
    Truecaser,
)
from transforms.codeswitch_align import align_corpus, alignment_error_rate, grow_diag_final_and
from transforms.codeswitch_metrics import (
    burstiness,
    cmi,
    corpus_metrics,
    i_index,
    language_spans,
    sample_metrics,
)
from transforms.config import CodeSwitchConfig

# --- metrics -----------------------------------------------------------------------------------------

VECTOR = "EN EN HI HI UNIV UNIV HI HI EN EN EN HI HI".split()


def test_metrics_reproduce_anchor_test_vector():
    m = sample_metrics(VECTOR)
    assert round(m.cmi, 2) == 45.45
    assert round(m.m_index, 4) == 0.9836
    assert round(m.entropy, 4) == 0.9940
    assert round(m.burstiness, 4) == -0.4835
    assert round(m.i_index, 2) == 0.30


def test_metric_edge_cases():
    assert cmi(["UNIV", "UNIV"]) == 0.0
    assert cmi(["en", "en"]) == 0.0
    assert sample_metrics(["en", "en", "univ"]).m_index == 0.0
    assert i_index(["en"]) == 0.0
    assert burstiness([3]) == 0.0
    assert language_spans(["en", "univ", "en", "de"]) == [2, 1]
    # Perfect alternation: one switch after every token.
    assert i_index(["en", "de", "en", "de"]) == 1.0


def test_corpus_metrics_pool_samples():
    corpus = corpus_metrics([VECTOR, ["EN", "EN"]])
    assert corpus["samples"] == 2
    assert corpus["cmi"] == pytest.approx((100 * (1 - 6 / 11) + 0.0) / 2)
    assert corpus["i_index"] == pytest.approx(3 / (10 + 1))
    assert corpus_metrics([])["samples"] == 0


# --- aligner -----------------------------------------------------------------------------------------

LEX = {"hund": "dog", "katze": "cat", "sieht": "sees", "mag": "likes", "der": "the", "die": "the",
       "kleine": "small", "alte": "old", "frau": "woman", "mann": "man", "jagt": "chases", "ein": "a"}


def _toy_corpus(n: int = 80, seed: int = 3) -> tuple[list[list[str]], list[list[str]]]:
    """German-like/English-like sentence pairs with known word translations, in the same order."""
    rng = random.Random(seed)
    nouns, verbs, adjs = ["hund", "katze", "frau", "mann"], ["sieht", "mag", "jagt"], ["kleine", "alte"]
    src, tgt = [], []
    for _ in range(n):
        words = ["der", rng.choice(adjs), rng.choice(nouns), rng.choice(verbs), "ein", rng.choice(nouns)]
        if rng.random() < 0.5:
            words = words[:1] + words[2:]
        src.append(words)
        tgt.append([LEX[w] for w in words])
    return src, tgt


def test_aligner_recovers_known_translations():
    src, tgt = _toy_corpus()
    alignment = align_corpus(src, tgt)
    gold = [{(i, i) for i in range(len(s))} for s in src]
    aer = alignment_error_rate([set(x) for x in alignment.links], gold, gold)
    assert aer < 0.05
    assert max(alignment.lexicon_src_tgt["hund"], key=alignment.lexicon_src_tgt["hund"].get) == "dog"
    inter, union = alignment.agreement()
    assert inter / union > 0.9


def test_aligner_handles_empty_sentences():
    alignment = align_corpus([[], ["a"]], [["x"], []])
    assert alignment.links == [[], []]
    assert align_corpus([], []).links == []


def test_grow_diag_final_and():
    forward = {(0, 0), (1, 1), (2, 3)}
    backward = {(0, 0), (1, 1), (1, 2), (3, 3)}
    links = grow_diag_final_and(forward, backward)
    assert {(0, 0), (1, 1)} <= links  # intersection
    assert (1, 2) in links  # grown: neighbour of (1, 1), target 2 unaligned
    assert links == {(0, 0), (1, 1), (1, 2), (2, 3), (3, 3)}  # grown step by step along the diagonal
    # final-and: a union link far from the rest joins only while both its words are unaligned.
    assert grow_diag_final_and({(0, 0), (2, 3)}, {(0, 0), (3, 3)}) == {(0, 0), (2, 3)}


# --- tokenisation and rendering ----------------------------------------------------------------------


def test_protected_spans_are_never_words():
    s = tokenize("Siehe https://example.org/a-b und 3.14 oder `x_1` <b>fett</b>", "deu")
    words = [t for t, w in zip(s.tokens, s.word) if w]
    assert words == ["Siehe", "und", "oder", "fett"]


def test_render_spacing_for_cjk_and_latin():
    zh = tokenize("我喜欢苹果。", "cmn")
    k = zh.tokens.index("苹果")
    out = render(zh, [Replacement(k, k + 1, "apples", (("apples", "eng"),))], "eng")
    assert out.text == "我喜欢apples。"
    assert out.markup == "我喜欢<en>apples</en>。"
    assert out.tokens[k] == ("apples", "eng")
    # Latin matrix: its own spaces stay; two inserted spans separated by a space form one markup span.
    en = tokenize("I like red apples.", "eng")
    reps = [Replacement(2, 3, "rote", (("rote", "deu"),)), Replacement(3, 4, "Äpfel", (("Äpfel", "deu"),))]
    out = render(en, reps, "deu")
    assert out.text == "I like rote Äpfel."
    assert out.markup == "I like <de>rote Äpfel</de>."
    assert out.n_spans == 1 and out.n_switched == 2
    # Two spaced-script words that would touch in a CJK matrix get a space.
    zh2 = tokenize("我喜欢红苹果", "cmn")
    reps = [Replacement(i, i + 1, w, ((w, "eng"),)) for i, w in ((2, "red"), (3, "apples"))]
    assert zh2.tokens[2:4] == ["红", "苹果"]
    assert render(zh2, reps, "eng").text == "我喜欢red apples"


def test_markup_tags_use_two_letter_codes_where_they_exist():
    assert markup_tag("deu") == "de"
    assert markup_tag("cmn") == "zh"
    assert markup_tag("yue") == "yue"


# --- switching ---------------------------------------------------------------------------------------

SENTENCES = [
    ("Der kleine Hund sieht die alte Frau.", "The small dog sees the old woman."),
    ("Die alte Katze mag den kleinen Mann.", "The old cat likes the small man."),
    ("Der Mann sieht die Katze im Garten.", "The man sees the cat in the garden."),
    ("Die Frau mag den Hund sehr.", "The woman likes the dog very much."),
    ("Der kleine Mann jagt die Katze.", "The small man chases the cat."),
    ("Die alte Frau sieht den Hund im Garten.", "The old woman sees the dog in the garden."),
    ("Der Hund jagt die kleine Katze.", "The dog chases the small cat."),
    ("Die Katze sieht den alten Mann.", "The cat sees the old man."),
]


def _pairs(n_repeat: int = 4) -> list[dict]:
    rows = []
    for k, (de, en) in enumerate(SENTENCES * n_repeat):
        rows.append({"pair_id": f"p{k:03d}", "pair": "deu_Latn-eng_Latn", "src_lang": "deu", "tgt_lang": "eng",
                     "src_text": de, "tgt_text": en})
    return rows


def test_alignment_switching_hits_cmi_band_and_is_deterministic():
    config = CodeSwitchConfig(target_cmi=(15, 40), max_samples_per_pair=2, seed=7)
    pairs = _pairs()
    first = synthesize_group("deu_Latn-eng_Latn", pairs, config, Resources())
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    second = synthesize_group("deu_Latn-eng_Latn", shuffled, config, Resources())
    assert first.rows == second.rows and first.stats == second.stats
    assert len(first.rows) > len(pairs)
    for row in first.rows:
        assert 15 <= row["cmi"] <= 40
        assert row["method"] == "alignment" and row["n_spans"] >= 1
        assert f"<{markup_tag(row['embedded_lang'])}>" in row["markup"]
        langs = {t["lang"] for t in row["tokens"]}
        assert langs <= {"deu", "eng", "univ"}
        assert "".join(t["token"] for t in row["tokens"]) == row["text"].replace(" ", "")
    other_seed = synthesize_group("deu_Latn-eng_Latn", pairs, config.model_copy(update={"seed": 8}), Resources())
    assert [r["text"] for r in other_seed.rows] != [r["text"] for r in first.rows]


def test_switch_rate_control():
    config = CodeSwitchConfig(switch_rate=0.2, matrix="src")
    result = synthesize_group("p", _pairs(), config, Resources())
    assert result.rows
    for row in result.rows:
        assert row["matrix_lang"] == "deu"
        matrix_words = sum(t["lang"] == "deu" for t in row["tokens"]) + row["n_switched"]
        assert 1 <= row["n_switched"] <= np.ceil(0.2 * matrix_words)  # never past the rate


def test_urls_and_numbers_survive_switching():
    pairs = _pairs()
    pairs.append({"pair_id": "url", "pair": "p", "src_lang": "deu", "tgt_lang": "eng",
                  "src_text": "Der Hund sieht https://hund.example/katze 42 mal.",
                  "tgt_text": "The dog sees https://hund.example/katze 42 times."})
    config = CodeSwitchConfig(target_cmi=(0, 45), max_samples_per_pair=4)
    rows = [r for r in synthesize_group("p", pairs, config, Resources()).rows if r["pair_id"] == "url"]
    assert rows
    for row in rows:
        assert "https://hund.example/katze 42" in row["text"]


def test_bad_input_is_skipped_and_counted():
    pairs = _pairs(1) + [
        {"pair_id": "empty", "pair": "p", "src_lang": "deu", "tgt_lang": "eng", "src_text": "", "tgt_text": "Hi."},
        {"pair_id": "punct", "pair": "p", "src_lang": "deu", "tgt_lang": "eng", "src_text": "!!! 123", "tgt_text": "?? 123"},
        {"pair_id": "same", "pair": "p", "src_lang": "deu", "tgt_lang": "eng", "src_text": "Tom Tom.", "tgt_text": "Tom Tom."},
        {"pair_id": "bad", "pair": "p", "src_lang": None, "tgt_lang": "eng", "src_text": "x", "tgt_text": "y"},
        {"pair_id": "mono", "pair": "p", "src_lang": "eng", "tgt_lang": "eng", "src_text": "a b", "tgt_text": "a b"},
    ]
    result = synthesize_group("p", pairs, CodeSwitchConfig(matrix="src"), Resources())
    stats = result.stats
    assert stats["pairs_in"] == len(pairs)
    assert stats["skipped_empty_text"] == 1
    assert stats["skipped_no_words"] == 1
    assert stats["skipped_bad_pair"] == 1
    assert stats["skipped_same_language"] == 1
    assert stats["skipped_no_switchable_span"] >= 1  # "Tom Tom." has nothing that differs
    assert not any(r["pair_id"] in {"empty", "punct", "same", "bad", "mono"} for r in result.rows)
    # An empty alignment is a skip, not an error.
    de, en = tokenize("Der Hund.", "deu"), tokenize("The dog.", "eng")
    reps, reason = switch_alignment(de, en, [], set(), CodeSwitchConfig(), np.random.default_rng(0), Truecaser([en]))
    assert reps is None and reason == "empty_alignment"
    # A language pair with no usable pair at all produces nothing.
    assert synthesize_group("p", pairs[-5:], CodeSwitchConfig(), Resources()).rows == []


def test_dictionary_method_with_user_lexicon(tmp_path):
    lexicon = tmp_path / "lex.tsv"
    lexicon.write_text("lang\tword\tembedded_lang\ttranslation\nde\thund\ten\tdog\nde\tkatze\ten\tcat\n")
    config = CodeSwitchConfig(methods={"dictionary": 1.0}, matrix="src", cross=1.0, lexicon_path=str(lexicon))
    result = synthesize_group("p", _pairs(1), config, Resources.from_config(config))
    texts = {r["pair_id"]: r["text"] for r in result.rows}
    assert texts["p000"] == "Der kleine dog sieht die alte Frau."
    assert texts["p001"] == "Die alte cat mag den kleinen Mann."
    assert len(texts) == len(SENTENCES)  # every sentence has Hund or Katze
    never = config.model_copy(update={"ratio": 0.0})
    none = synthesize_group("p", _pairs(1), never, Resources.from_config(never))
    assert none.rows == [] and none.stats["skipped_not_selected"] == len(SENTENCES)


def test_dictionary_method_with_alignment_lexicon():
    config = CodeSwitchConfig(methods={"dictionary": 1.0}, matrix="src", cross=0.5, seed=1)
    result = synthesize_group("p", _pairs(), config, Resources())
    assert result.rows
    switched = set()
    for row in result.rows:
        switched |= {t["token"] for t in row["tokens"] if t["lang"] == "eng"}
    assert switched & {"dog", "cat", "woman", "man", "sees", "small", "old"}


def test_entity_method(tmp_path):
    table = tmp_path / "entities.tsv"
    table.write_text(
        "id\tlang\tlabel\nQ183\tde\tDeutschland\nQ183\ten\tGermany\nQ64\tdeu\tBerlin\nQ64\teng\tBerlin\n"
        "Q90\tde\tParis\n"
    )
    pairs = [
        {"pair_id": "a", "pair": "p", "src_lang": "deu", "tgt_lang": "eng",
         "src_text": "Deutschland liegt nahe bei Berlin.", "tgt_text": "Germany is close to Berlin."},
        {"pair_id": "b", "pair": "p", "src_lang": "deu", "tgt_lang": "eng",
         "src_text": "Wir fahren nach Paris.", "tgt_text": "We go to Paris."},
        {"pair_id": "c", "pair": "p", "src_lang": "deu", "tgt_lang": "eng",
         "src_text": "Der Hund schläft.", "tgt_text": "The dog sleeps."},
    ]
    config = CodeSwitchConfig(methods={"entity": 1.0}, matrix="src", entity_table=str(table))
    result = synthesize_group("p", pairs, config, Resources.from_config(config))
    assert [r["markup"] for r in result.rows] == ["<en>Germany</en> liegt nahe bei <en>Berlin</en>."]
    assert result.stats["skipped_entity_label_missing"] == 1  # Paris has no English label in the table
    assert result.stats["skipped_no_entity"] == 1


def test_config_validation():
    with pytest.raises(ValidationError):
        CodeSwitchConfig(target_cmi=(10, 60))
    with pytest.raises(ValidationError):
        CodeSwitchConfig(methods={"entity": 1.0})
    with pytest.raises(ValidationError):
        CodeSwitchConfig(methods={"alignment": 0.0})
    with pytest.raises(ValidationError):
        CodeSwitchConfig(unknown=1)


def test_method_mix_uses_every_method(tmp_path):
    lexicon = tmp_path / "lex.tsv"
    lexicon.write_text("lang\tword\tembedded_lang\ttranslation\nde\thund\ten\tdog\nen\tdog\tde\tHund\n")
    config = CodeSwitchConfig(methods={"alignment": 1.0, "dictionary": 1.0}, cross=1.0,
                              lexicon_path=str(lexicon), target_cmi=(0, 45))
    rows = synthesize_group("p", _pairs(), config, Resources.from_config(config)).rows
    assert {r["method"] for r in rows} == {"alignment", "dictionary"}


# --- Beam glue ---------------------------------------------------------------------------------------


def test_beam_stage_outputs_rows_and_stats():
    pairs = _pairs(2) + [{"pair_id": "x", "pair": None, "src_text": "a", "tgt_text": "b"}]
    expected = synthesize_group("deu_Latn-eng_Latn", _pairs(2), CodeSwitchConfig(), Resources())
    with TestPipeline() as p:
        out = p | beam.Create(pairs) | SynthesizeCodeSwitch(CodeSwitchConfig())
        assert_that(out["codeswitch"] | "ids" >> beam.Map(lambda r: r["sample_id"]),
                    equal_to([r["sample_id"] for r in expected.rows]), label="rows")
        stats = out["stats"] | "names" >> beam.Map(lambda kv: (kv[0][2], kv[1]))
        assert_that(
            stats | "pick" >> beam.Filter(lambda kv: kv[0] in ("pairs_in", "skipped_bad_pair", "samples")),
            equal_to([("pairs_in", 16), ("skipped_bad_pair", 1), ("samples", len(expected.rows))]),
            label="stats",
        )
        assert_that(stats, is_not_empty(), label="any")


def test_schema_accepts_rows():
    import pyarrow as pa

    from schemas.codeswitch import CODESWITCH_SCHEMA

    rows = synthesize_group("p", _pairs(1), CodeSwitchConfig(), Resources()).rows
    table = pa.Table.from_pylist(rows, schema=CODESWITCH_SCHEMA)
    assert table.num_rows == len(rows) and table.column("tokens").type.value_type.names == ["token", "lang"]


def test_sample_ids_are_unique():
    rows = synthesize_group("p", _pairs(), CodeSwitchConfig(max_samples_per_pair=3), Resources()).rows
    ids = [r["sample_id"] for r in rows]
    assert len(ids) > len(_pairs()) and len(ids) == len(set(ids))
