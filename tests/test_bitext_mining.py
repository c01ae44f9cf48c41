"""Pure-math parts of bitext mining: segmentation, kNN, margin, selection modes, filters, scorer, planning."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from transforms.bitext import (PairPlan, cell_groups, combine, encoder_cosines, knn_both, plan_pairs,
                              score_candidates, side_info)
from transforms.bitext_encoders import (
    encoder_languages,
    normalize_rows,
    register_encoder,
    validate_spec,
    word_encoder,
)
from transforms.bitext_mining import (
    best_candidates,
    final_punct,
    index_factory_string,
    knn,
    margin,
    near_identical,
    numbers_agree,
    numbers_of,
    select,
    sharded_knn,
)
from transforms.bitext_scoring import (
    content_words,
    feature_names,
    fit_logistic,
    fit_scorer,
    idf_weights,
    length_stats,
    LogisticScorer,
    scoring_rule,
    with_prefilter,
    word_alignment,
)
from transforms.bitext_segment import display_width, split_sentences
from transforms.config import BitextConfig


def texts(segments):
    return [s.text for s in segments]


# --- segmentation ------------------------------------------------------------------------------------


def test_abbreviations_and_initials_do_not_end_sentences():
    kept, _, _ = split_sentences("Dr. Smith met J. Brown at noon. They talked! Was it long?", "eng")
    assert texts(kept) == ["Dr. Smith met J. Brown at noon.", "They talked!", "Was it long?"]


def test_cjk_punctuation_and_line_breaks_split():
    kept, short, _ = split_sentences("我今天很忙。你明天有空吗？\n标题行很长的一行", "cmn")
    assert texts(kept) == ["我今天很忙。", "你明天有空吗？", "标题行很长的一行"]
    assert [s.index for s in kept] == [0, 1, 2] and short == 0


def test_thai_splits_at_spaces_and_glues_short_pieces():
    kept, _, _ = split_sentences("ฉันชอบกินข้าวมาก เขาไปโรงเรียนแล้ว ดี", "tha", min_chars=5)
    assert texts(kept) == ["ฉันชอบกินข้าวมาก", "เขาไปโรงเรียนแล้ว ดี"]


def test_width_counts_wide_characters_twice():
    assert display_width("ab中文") == 6


def test_no_boundary_document_is_one_sentence():
    kept, _, long_ = split_sentences("a line without any final punctuation at all", "eng")
    assert texts(kept) == ["a line without any final punctuation at all"] and long_ == 0


def test_100kb_sentence_is_dropped_and_counted():
    kept, short, long_ = split_sentences("word " * 20_000 + "\nA real sentence here.", "eng", max_chars=500)
    assert texts(kept) == ["A real sentence here."]
    assert long_ == 1 and short == 0
    assert kept[0].index == 1  # positions count the dropped segment too


# --- kNN ---------------------------------------------------------------------------------------------


def planted(n: int, dim: int, noise: float, seed: int = 0, clusters: int = 0):
    """Unit vectors x and their noisy copies y (translations); optionally grouped around cluster centres."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    if clusters:
        x = rng.normal(size=(clusters, dim))[rng.integers(clusters, size=n)] * 3 + x
    x = normalize_rows(x)
    y = normalize_rows(x + noise * rng.normal(size=(n, dim)))
    return x, y


def test_index_choice_is_exact_then_ivf_then_stopes_pq():
    assert index_factory_string(10_000, 512, 10_000) == "Flat"
    assert index_factory_string(50_000, 384, 10_000) == "IVF1024,Flat"
    assert index_factory_string(1_000_000, 512, 10_000) == "OPQ64,IVF4096,PQ64"
    assert index_factory_string(50_000, 384, 10_000, pq_min=50_000).startswith("OPQ64,IVF")


def test_flat_knn_is_exact_and_pads_missing_neighbours():
    x, y = planted(20, 16, 0.1)
    sims, ids = knn(x, y[:3], k=4)
    assert (ids[:, 3] == -1).all() and np.isneginf(sims[:, 3]).all()
    exact = x @ y[:3].T
    np.testing.assert_allclose(sims[:, :3], -np.sort(-exact, axis=1), rtol=1e-5)


@pytest.mark.parametrize("spec", ["IVF32,Flat", "OPQ8,IVF32,PQ8"])
def test_ivf_search_finds_planted_pairs_with_exact_scores(spec):
    x, y = planted(3000, 32, 0.05, clusters=32)
    sims, ids = knn(x, y, k=4, flat_max=100, index_spec=spec, nprobe=4)
    assert np.mean(ids[:, 0] == np.arange(3000)) > 0.95
    np.testing.assert_allclose(sims[:, 0], np.einsum("ij,ij->i", x, y[ids[:, 0]]), rtol=1e-4)


def test_sharded_search_merges_to_the_unsharded_result():
    x, y = planted(200, 32, 0.5, seed=1)
    s1, i1 = knn(x, y, k=4)
    s2, i2 = sharded_knn(x, y, k=4, shard_size=37)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-6)


# --- margin and modes --------------------------------------------------------------------------------


def test_ratio_and_distance_margin():
    cos, mx, my = np.array([0.8]), np.array([0.5]), np.array([0.3])
    assert margin(cos, mx, my, "ratio")[0] == pytest.approx(0.8 / 0.4)
    assert margin(cos, mx, my, "distance")[0] == pytest.approx(0.4)


def test_margin_prefers_the_unambiguous_neighbour():
    # source 0 is close to everything (a hub); source 1 is close only to target 1
    fwd = (np.array([[0.9, 0.85], [0.8, 0.2]], np.float32), np.array([[0, 1], [1, 0]]))
    bwd = (np.array([[0.9, 0.1], [0.85, 0.8]], np.float32), np.array([[0, 1], [0, 1]]))
    c = best_candidates(fwd, bwd)
    # by cosine, target 1's nearest source is the hub (0.85 > 0.8); by margin it is source 1
    assert c.src[c.direction == 1].tolist() == [0, 1]
    assert c.margin[(c.src == 1) & (c.tgt == 1)].max() > 1.0


def test_selection_modes():
    src = np.array([0, 1, 0, 2])
    tgt = np.array([0, 0, 0, 1])
    direction = np.array([0, 0, 1, 1])
    score = np.array([2.0, 1.5, 2.0, 0.5])
    assert select(src, tgt, direction, score, "max", 1.0).tolist() == [0, 1][:1]
    assert sorted(select(src, tgt, direction, score, "fwd", 1.0).tolist()) == [0, 1]
    assert select(src, tgt, direction, score, "bwd", 1.0).tolist() == [2]
    assert select(src, tgt, direction, score, "intersect", 0.0).tolist() == [0]
    assert sorted(select(src, tgt, direction, score, "union", 0.0).tolist()) == [0, 1, 3]


def test_max_mode_is_one_to_one():
    src = np.array([0, 1, 1])
    tgt = np.array([0, 0, 1])
    chosen = select(src, tgt, np.zeros(3, np.int8), np.array([3.0, 2.0, 1.0]), "max", 0.0)
    assert chosen.tolist() == [0, 2]


# --- filters and features ----------------------------------------------------------------------------


def test_numbers():
    assert numbers_of("It is 3,000 meters and ３ km") == {"3000", "3"}
    assert numbers_agree("Il a 3 chats.", "He has 3 cats.")
    assert not numbers_agree("Il a 3 chats.", "He has 4 cats.")
    assert numbers_agree("Il a trois chats.", "He has 3 cats.")  # spelt out on one side


def test_near_identical_and_punctuation():
    assert near_identical("Hello world, how are you?", "Hello world, how are you!")
    assert not near_identical("Bonjour tout le monde.", "Hello everyone.")
    assert final_punct("你好吗？") == final_punct("How are you?") == "?"


def test_logistic_fit_separates_classes():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(1, 1, (200, 2)), rng.normal(-1, 1, (200, 2))])
    y = np.r_[np.ones(200), np.zeros(200)]
    model = fit_logistic(X, y, ["a", "b"])
    acc = np.mean((model.predict(X, ["a", "b"]) > 0.5) == y)
    assert acc > 0.85 and model.coef[0] > 0


def test_scorer_learns_which_dimensions_carry_translation_and_folds_them_into_one_dot_product():
    """Labels depend on the product of dimension 0 only: its weight must dominate, and the folded scorer (one
    weighted dot product) must give the same probabilities as the logistic regression on all product columns."""
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(600, 6)), rng.normal(size=(600, 6))
    X = rng.normal(size=(600, 1))
    y = (u[:, 0] * v[:, 0] + 0.3 * rng.normal(size=600) > 0).astype(float)
    scorer = fit_scorer(X, y, ["noise"], {"enc": u * v}, metric_l2=1.0)
    w = scorer.metric["enc"]
    assert abs(w[0]) > 5 * np.abs(w[1:]).max()
    assert scorer.features == ["noise", "metric:enc"]
    folded = scorer.predict(np.hstack([X, (u * v) @ w[:, None]]), ["noise", "metric:enc"])
    full = fit_logistic(np.hstack([X, u * v]), y, ["noise"] + [f"p{i}" for i in range(6)], np.ones(7))
    np.testing.assert_allclose(folded, full.predict(np.hstack([X, u * v]), full.features), atol=1e-5)
    assert np.mean((folded > 0.5) == y) > 0.8


def test_metric_channels_are_weighted_dot_products_per_encoder():
    a, b = planted(5, 8, 0.5, seed=2)
    c, d = planted(5, 4, 0.5, seed=3)
    w = np.array([0.25, 0.75])
    m = [np.linspace(0.5, 2.0, 8).astype(np.float32), np.array([1.0, -1.0, 2.0, 0.0], np.float32)]
    x, y = combine([a, c], w), combine([b, d], w)
    views = encoder_cosines(x, y, np.arange(5)[:, None], [8, 4], w, m)
    assert views.shape == (5, 1, 4)
    np.testing.assert_allclose(views[:, 0, 1], np.sum(c * d, 1), rtol=1e-4)
    np.testing.assert_allclose(views[:, 0, 2], (a * b) @ m[0], rtol=1e-4)
    np.testing.assert_allclose(views[:, 0, 3], (c * d) @ m[1], rtol=1e-4, atol=1e-6)


def test_length_stats_are_relative_to_english():
    cal = {"length": {"zho": [-0.2, 0.3], "fra": [0.1, 0.2], "default": [0, 0.4]}}
    mu, sd = length_stats(cal, "cmn", "eng")
    assert mu == pytest.approx(-0.2) and sd == pytest.approx(0.3)
    mu, _ = length_stats(cal, "cmn", "fra")
    assert mu == pytest.approx(-0.3)


def test_scoring_rule_uses_calibration_and_override():
    cal = {"margin_thresholds": {"usem3": {"ratio": {"threshold": 1.25, "per_language": {"fra": 1.3}}}}}
    assert scoring_rule(("usem3",), "fra", "eng", "ratio", False, None, cal).threshold == 1.3
    assert scoring_rule(("usem3",), "deu", "eng", "ratio", False, None, cal).threshold == 1.25
    assert scoring_rule(("usem3",), "deu", "eng", "ratio", False, 1.1, cal).threshold == 1.1
    assert scoring_rule(("e5-small",), "deu", "eng", "ratio", True, None, cal).threshold == 1.06


def _dictionary_encoder(groups: list[set[str]]):
    """Words of one group (a word and its translations) share a one-hot vector; any other word gets its own."""
    index = {w: g for g, words in enumerate(groups) for w in words}

    def encode(words: list[str]) -> np.ndarray:
        out = np.zeros((len(words), 64), np.float32)
        for r, w in enumerate(words):
            out[r, index.get(w, len(groups) + zlib.crc32(w.encode()) % (64 - len(groups)))] = 1.0
        return out

    return encode


def test_word_alignment_finds_the_word_a_paraphrase_changes():
    encode = _dictionary_encoder([{"ayer", "yesterday"}, {"fue", "was"}, {"lunes", "monday"}])
    texts = [("Ayer fue lunes.", "Yesterday was Monday."), ("Ayer fue lunes.", "Yesterday was Saturday."),
             ("Ayer fue lunes 3.", "Yesterday was 3 Monday!"), ("¡!", "Hello")]
    pairs = [(content_words(a), content_words(b)) for a, b in texts]
    src_idf = idf_weights([a for a, _ in pairs])
    tgt_idf = idf_weights([b for _, b in pairs] + [content_words("Saturday, Monday was fine")])
    feats = word_alignment(pairs, src_idf, tgt_idf, encode)
    assert feats[0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert feats[2].tolist() == pytest.approx([1.0, 0.0, 0.0])  # digits and punctuation are not words
    align, unaligned_src, unaligned_tgt = feats[1]
    assert align < 0.8 and unaligned_src > 0 and unaligned_tgt > 0
    # "saturday" is rarer than "was" in the target pool, so it weighs more than a third of the target side
    assert unaligned_tgt > 1 / 3
    assert feats[3].tolist() == [0.5, 0.5, 0.5]  # no content word on one side: neutral


def test_word_encoder_embeds_each_distinct_word_once_per_process():
    seen: list[list[str]] = []

    class Counting:
        dim = 64

        def encode(self, texts):
            seen.append(list(texts))
            return _dictionary_encoder([])(texts)

    register_encoder("e5-small", Counting(), threads=97)  # a key no other test uses
    encode = word_encoder("e5-small", threads=97)
    first = encode(["ayer", "fue", "ayer"])
    second = encode(["fue", "lunes"])
    assert seen == [["ayer", "fue"], ["lunes"]]
    assert np.array_equal(first[1], second[0]) and np.array_equal(first[0], first[2])
    assert encode([]).shape == (0, 64)


def _recording_encoder(seen: list[str]):
    """A word encoder class whose instances append every text they embed to `seen`."""

    class Recording:
        dim = 64

        def encode(self, texts):
            seen.extend(texts)
            return _dictionary_encoder([])(texts)

    return Recording


def test_words_are_embedded_only_when_the_scorer_reads_them():
    seen: list[str] = []
    Counting = _recording_encoder(seen)

    texts = ["ayer fue lunes", "hoy es martes", "tengo un gato"]
    english = ["yesterday was monday", "today is tuesday", "i have a cat"]
    src = side_info(texts, [("spa", 0.9, 0.9)] * 3, "spa", BitextConfig())
    tgt = side_info(english, [("eng", 0.9, 0.9)] * 3, "eng", BitextConfig())
    a, b = planted(3, 16, 0.1, seed=4)
    c, d = planted(3, 16, 0.1, seed=5)
    encoders = ("usem3", "e5-small")
    model = {"features": feature_names(encoders), "coef": [0.0] * len(feature_names(encoders)), "intercept": 0.0,
             "mean": [0.0] * len(feature_names(encoders)), "scale": [1.0] * len(feature_names(encoders))}
    calibration = {"scorers": {"usem3+e5-small": {"ratio": {"model": model, "threshold": 0.5}}}}
    for scorer, features, embeds in (("margin", False, False), ("margin", True, True), ("learned", False, True)):
        seen.clear()
        register_encoder("e5-small", Counting(), threads=96)  # a key no other test uses; empties the word cache
        config = BitextConfig(encoders=list(encoders), scorer=scorer, encoder_threads=96, k=2)
        knn = knn_both([a, c], [b, d], encoders, config, calibration)
        cands, feats, score, _ = score_candidates(*knn, src, tgt, encoders, config, calibration, features=features)
        assert (feats is not None) == embeds and bool(seen) == embeds
        if feats is not None:
            assert feats.shape == (len(cands.src), len(feature_names(encoders)))
        if scorer == "margin":
            np.testing.assert_array_equal(score, cands.margin)


def test_prefilter_keeps_every_row_the_scorer_accepts_and_scores_the_rest_zero():
    """The prefilter reads every feature but the expensive one; no row the full scorer gives >= the floor may be
    ruled out, and ruled-out rows score 0 without their expensive feature being looked at."""
    rng = np.random.default_rng(7)
    y = (rng.random(2000) < 0.2).astype(float)
    cheap = y * 2.0 + rng.normal(size=2000)
    costly = y * 1.5 + rng.normal(size=2000)
    X = np.stack([cheap, costly], 1)
    names = ["cheap", "costly"]
    full = fit_logistic(X, y, names)
    cascaded = with_prefilter(full, X, y, names, ["costly"], floor=0.1)
    keep = cascaded.screen(X, names)
    assert cascaded.prefilter.features == ["cheap"]
    assert keep[full.predict(X, names) >= 0.1].all()
    assert keep.mean() < 0.8  # it rules out a real share of the rows
    X_lazy = X.copy()
    X_lazy[~keep, 1] = np.nan  # what the stage leaves uncomputed
    score = cascaded.predict(X_lazy, names)
    np.testing.assert_allclose(score[keep], full.predict(X, names)[keep], rtol=1e-6)
    assert (score[~keep] == 0).all()
    again = LogisticScorer.from_dict(cascaded.to_dict())  # as shipped: 6 decimals
    np.testing.assert_array_equal(again.screen(X, names), keep)
    np.testing.assert_allclose(again.predict(X_lazy, names), score, atol=1e-5)


def test_words_are_embedded_only_for_candidates_the_prefilter_passes():
    seen: list[str] = []
    Counting = _recording_encoder(seen)

    texts = ["ayer fue lunes", "hoy es martes", "tengo un gato"]
    english = ["yesterday was monday", "today is tuesday", "i have a cat", "zebras eat grass"]
    src = side_info(texts, [("spa", 0.9, 0.9)] * 3, "spa", BitextConfig())
    tgt = side_info(english, [("eng", 0.9, 0.9)] * 4, "eng", BitextConfig())
    a, b = planted(3, 16, 0.1, seed=4)
    c, d = planted(3, 16, 0.1, seed=5)
    rng = np.random.default_rng(6)
    b, d = (np.vstack([m, normalize_rows(rng.normal(size=(1, 16)))]).astype(np.float32) for m in (b, d))
    encoders = ("usem3", "e5-small")
    names = feature_names(encoders)
    n = len(names)
    cheap = [f for f in names if not f.startswith(("align", "unaligned"))]
    prefilter = {"features": cheap, "mean": [0.0] * len(cheap), "scale": [1.0] * len(cheap), "intercept": -40.0,
                 "coef": [80.0 if f == "cos" else 0.0 for f in cheap]}  # passes a cosine above ~0.5
    model = {"features": names, "coef": [1.0] * n, "intercept": 0.0, "mean": [0.0] * n, "scale": [1.0] * n,
             "prefilter": {"model": prefilter, "cut": 0.5}}
    calibration = {"scorers": {"usem3+e5-small": {"ratio": {"model": model, "threshold": 0.5}}}}
    register_encoder("e5-small", Counting(), threads=95)  # a key no other test uses; empties the word cache
    config = BitextConfig(encoders=list(encoders), encoder_threads=95, k=2)
    knn = knn_both([a, c], [b, d], encoders, config, calibration)
    cands, _, score, _ = score_candidates(*knn, src, tgt, encoders, config, calibration)
    passed = cands.cos > 0.5
    assert passed.any() and not passed.all()
    assert "zebras" not in seen  # the unrelated English sentence only ever sits in ruled-out candidates
    assert set(seen) == {w for i, j in zip(cands.src[passed], cands.tgt[passed]) for w in
                         content_words(texts[i]) + content_words(english[j])}
    assert (score[~passed] == 0).all() and (score[passed] > 0).all()
    # evaluation computes every candidate's features; it must score exactly as the stage does
    _, feats, full_score, _ = score_candidates(*knn, src, tgt, encoders, config, calibration, features=True)
    assert not np.isnan(feats).any()
    np.testing.assert_array_equal(full_score, score)


def test_only_e5_contributes_word_alignment_features():
    assert not any(n.startswith("align") for n in feature_names(("usem3",)))
    both = feature_names(("usem3", "e5-small"))
    assert both[-3:] == ["align:e5-small", "unaligned_src:e5-small", "unaligned_tgt:e5-small"]


# --- combination and planning ------------------------------------------------------------------------


def test_combined_cosine_is_the_weighted_mean_and_splits_back():
    a, b = planted(5, 8, 0.5, seed=2)
    c, d = planted(5, 4, 0.5, seed=3)
    w = np.array([0.25, 0.75])
    x, y = combine([a, c], w), combine([b, d], w)
    expected = 0.25 * np.sum(a * b, 1) + 0.75 * np.sum(c * d, 1)
    np.testing.assert_allclose(np.sum(x * y, 1), expected, rtol=1e-5)
    per = encoder_cosines(x, y, np.arange(5)[:, None], [8, 4], w)
    np.testing.assert_allclose(per[:, 0, 0], np.sum(a * b, 1), rtol=1e-4)
    np.testing.assert_allclose(per[:, 0, 1], np.sum(c * d, 1), rtol=1e-4)


def test_pivot_planning_picks_encoders_by_coverage():
    parts = {"fra_Latn": "fra", "eng_Latn": "eng", "xho_Latn": "xho", "tlh_Latn": "tlh", "und_Zyyy": "und"}
    both = ["usem3", "e5-small"]
    plans = {p.name: p.encoders for p in plan_pairs(parts, BitextConfig(encoders=both))}
    assert plans == {"fra_Latn-eng_Latn": ("usem3", "e5-small"), "xho_Latn-eng_Latn": ("e5-small",)}
    single = plan_pairs(parts, BitextConfig(encoders=both, combine_encoders=False))
    assert [p.encoders for p in single] == [("usem3",), ("e5-small",)]
    assert {p.name: p.encoders for p in plan_pairs(parts, BitextConfig())} == plans  # the shipped default
    usem = {p.name: p.encoders for p in plan_pairs(parts, BitextConfig(encoders=["usem3"]))}
    assert usem == {"fra_Latn-eng_Latn": ("usem3",)}  # USE-m alone does not cover xho


def test_cell_groups_pack_source_shards_that_share_a_target_and_encoders():
    parts = {"fra_Latn": "fra", "deu_Latn": "deu", "xho_Latn": "xho", "eng_Latn": "eng"}
    plans = plan_pairs(parts, BitextConfig(encoders=["usem3", "e5-small"]))
    counts = {"fra_Latn": 250, "deu_Latn": 240, "xho_Latn": 90, "eng_Latn": 1000}
    groups = cell_groups(plans, counts, shard_size=150)
    # deu: 2 shards of 120, fra: 2 of 125, xho: 1 of 90; filled in name order up to 150 sentences a group.
    # xho is covered by e5-small only, so its pair is in another encoder set and never shares a group.
    both = "eng_Latn|usem3+e5-small"
    assert groups == {("deu_Latn-eng_Latn", 0): f"{both}|0", ("deu_Latn-eng_Latn", 1): f"{both}|1",
                      ("fra_Latn-eng_Latn", 0): f"{both}|2", ("fra_Latn-eng_Latn", 1): f"{both}|3",
                      ("xho_Latn-eng_Latn", 0): "eng_Latn|e5-small|0"}
    wide = cell_groups(plans, counts, shard_size=1000)  # deu 240 + fra 250 fit in one group
    assert wide[("deu_Latn-eng_Latn", 0)] == wide[("fra_Latn-eng_Latn", 0)] == f"{both}|0"


def test_all_pairs_planning():
    parts = {"fra_Latn": "fra", "eng_Latn": "eng", "deu_Latn": "deu"}
    plans = plan_pairs(parts, BitextConfig(pivot=None, encoders=["usem3"]))
    assert [p.name for p in plans] == ["deu_Latn-eng_Latn", "deu_Latn-fra_Latn", "eng_Latn-fra_Latn"]
    assert isinstance(plans[0], PairPlan)


def test_sentence_transformer_languages_must_be_declared():
    with pytest.raises(ValueError, match="declare the languages"):
        encoder_languages("st:/models/labse")
    assert encoder_languages("st:/m", {"st:/m": ["cmn", "eng"]}) == {"zho", "eng"}
    with pytest.raises(ValueError, match="unknown encoder"):
        validate_spec("laser")
    with pytest.raises(ValueError):
        BitextConfig(encoders=["nope"])


@pytest.mark.parametrize("spec", [None, "IVF16,Flat"])
def test_knn_does_not_depend_on_faiss_thread_count(spec):
    import faiss

    rng = np.random.default_rng(0)
    x = normalize_rows(rng.normal(size=(300, 512)).astype(np.float32))
    y = normalize_rows(rng.normal(size=(700, 512)).astype(np.float32))
    results = []
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        results.append(knn(x, y, 4, index_spec=spec))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    (s1, i1), (s2, i2) = results
    assert np.array_equal(i1, i2) and s1.tobytes() == s2.tobytes()
