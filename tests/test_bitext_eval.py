"""The BUCC-style task of tools/eval_bucc.py: one English pool per language pair, 5x distractors on each side,
no distractor taken from a mined language's dev file, calibration and evaluation halves kept apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.eval_bucc import DISTRACTOR_FACTOR, N_ROUNDS, Corpus, build_round, distractor_files, norm

MINED = ("aaa", "bbb")
LINES = 24  # 12 per half: 2 gold lines per round


def write_dev(data: Path, language: str, n: int) -> None:
    rows = [f"{language} sentence number {i} here\t{language} english line {i} about topic {i % 5}" for i in range(n)]
    (data / f"{language}-eng.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    data = tmp_path_factory.mktemp("dev")
    for lang in MINED:
        write_dev(data, lang, LINES)
    for lang in ("xxa", "xxb", "xxc", "xxd"):
        write_dev(data, lang, 40)
    return Corpus(cache=data / "cache", data=data)


@pytest.mark.parametrize("part", ["calib", "eval"])
def test_each_pair_has_its_own_pool_with_five_times_distractors(corpus, part):
    files = distractor_files(list(MINED), 30, corpus.data)
    assert files == ["xxa", "xxb", "xxc", "xxd"]
    parity = 0 if part == "calib" else 1
    seen_distractors: set = set()
    for rnd_index in range(N_ROUNDS):
        rnd = build_round(corpus, list(MINED), files, part, rnd_index)
        assert set(rnd.eng) == set(MINED)
        for lang in MINED:
            gold, src, pool = rnd.gold[lang], rnd.src[lang], rnd.eng[lang]
            assert all(line % 2 == parity for line in src)  # the other half is never touched
            assert len(gold) == LINES // 2 // N_ROUNDS
            assert len(src) - len(gold) >= DISTRACTOR_FACTOR * len(gold)  # source side
            distractors = [(f, line) for f, line in pool if f != lang]
            assert len(distractors) == DISTRACTOR_FACTOR * len(gold)  # English side
            assert sorted(line for f, line in pool if f == lang) == gold  # only this pair's gold English
            assert all(f in files for f, _ in distractors)
            mined_english = {norm(e) for m in MINED for e in corpus.pairs(m)[1]}
            assert not {norm(corpus.pairs(f)[1][line]) for f, line in distractors} & mined_english
            seen_distractors.update((lang, d) for d in distractors)
        pools = [set(rnd.eng[lang]) for lang in MINED]
        assert not pools[0] & pools[1]  # a distractor serves one pool
    assert len({d for _, d in seen_distractors}) == len(seen_distractors)


def _report(part: str, per_language: dict[str, tuple[int, int, int]]) -> dict:
    return {"task": {"part": part, "calibration": f"fit on the other half than {part}"},
            "systems": {"cos:usem3": {"per_language": {
                lang: {"at_default": {"tp": tp, "mined": mined, "true": true}}
                for lang, (tp, mined, true) in per_language.items()}}}}


def test_cross_fitted_reports_pool_counts_not_f1s():
    from tools.eval_bucc import combine_reports

    combined = combine_reports([_report("eval", {"deu": (80, 100, 100), "fra": (10, 10, 100)}),
                                _report("calib", {"deu": (40, 100, 100), "fra": (90, 90, 100)})])
    deu = combined["systems"]["cos:usem3"]["per_language"]["deu"]
    assert (deu["p"], deu["r"], deu["f1"], deu["true"]) == (0.6, 0.6, 0.6, 200)
    fra = combined["systems"]["cos:usem3"]["per_language"]["fra"]
    assert (fra["p"], fra["r"]) == (1.0, 0.5)  # averaging the folds' F1s (0.18, 0.95) would give 0.565
    assert combined["systems"]["cos:usem3"]["pooled"]["true"] == 400


def test_cross_fitting_refuses_two_reports_on_the_same_half():
    from tools.eval_bucc import combine_reports

    with pytest.raises(SystemExit, match="different halves"):
        combine_reports([_report("eval", {"deu": (1, 1, 1)}), _report("eval", {"deu": (1, 1, 1)})])


def test_one_threshold_gives_every_language_its_systems_single_threshold():
    from tools.eval_bucc import calibrated_threshold, one_threshold_each
    from transforms.bitext_scoring import load_calibration

    shipped = load_calibration(None)
    single = one_threshold_each(shipped)
    for system, margin in (("cos:usem3", "ratio"), ("margin:usem3", "distance"), ("learned:usem3", "ratio")):
        fitted = {calibrated_threshold(system, lang, shipped, margin) for lang in ("deu", "fra", "jpn")}
        assert len(fitted) > 1  # the shipped file has per-language thresholds ...
        assert {calibrated_threshold(system, lang, single, margin) for lang in ("deu", "fra", "jpn")} == {
            calibrated_threshold(system, "xxx-not-calibrated", shipped, margin)}  # ... which are dropped
    assert "per_language" in shipped["margin_thresholds"]["usem3"]["cos"]  # the loaded calibration is untouched


def test_outcomes_code_each_source_sentence_and_agree_with_the_counts():
    from tools.eval_bucc import Records

    # Sources 0-3; 0 and 1 are gold. Pairs: 0 correct, 1 wrong, 2 (not gold) wrong but fails a filter, 3 low score.
    first = Records([0.9, 0.8, 0.7, 0.1], [True, False, False, False], [True, True, False, True],
                    unit=[0, 1, 2, 3], gold=[True, True, False, False])
    assert first.outcomes(0.5) == "7600"
    assert first.outcomes(0.85) == "7400"
    merged = Records()
    merged.extend(first)
    merged.extend(Records([0.6], [True], [True], unit=[1], gold=[False, True]))
    codes = merged.outcomes(0.5)
    assert codes == "760007"  # the second Records' source 1 is unit 5
    tp, mined, true = codes.count("7"), sum(c in "2367" for c in codes), sum(c >= "4" for c in codes)
    at = merged.prf(0.5)
    assert (at["tp"], at["mined"], at["true"]) == (tp, mined, true)


def test_paired_bootstrap_separates_a_real_difference_from_none():
    from tools.eval_bucc import paired_bootstrap

    gold_found, gold_missed, wrong_pair = "7", "4", "2"
    a = (gold_found * 90 + gold_missed * 10 + wrong_pair * 5 + "0" * 400)
    b = (gold_found * 60 + gold_missed * 40 + wrong_pair * 30 + "0" * 375)
    better = paired_bootstrap(a, b)
    assert better["diff"] > 0.2 and better["ci95"][0] > 0 and better["p_not_better"] == 0
    same = paired_bootstrap(a, a)
    assert same["diff"] == 0 and same["ci95"] == [0, 0] and same["p_not_better"] == 1
    traded = gold_missed * 3 + a[3:90] + gold_found * 3 + a[93:]  # 3 pairs lost, 3 others found: no difference
    assert traded.count("7") == a.count("7")
    noise = paired_bootstrap(a, traded)
    assert noise["diff"] == 0 and noise["ci95"][0] < 0 < noise["ci95"][1] and 0.2 < noise["p_not_better"] < 0.9
    with pytest.raises(ValueError, match="different sentences"):
        paired_bootstrap(a, b[:-1])


def test_combined_reports_pair_systems_over_both_halves():
    from tools.eval_bucc import combine_reports

    def report(part, units_a, units_b):
        return {"task": {"part": part}, "systems": {
            name: {"per_language": {"deu": {"at_default": {"tp": u.count("7"), "mined": sum(c in "2367" for c in u),
                                                           "true": sum(c >= "4" for c in u), "units": u}}}}
            for name, u in (("margin:usem3", units_a), ("cos:usem3", units_b))}}

    combined = combine_reports([report("eval", "7" * 40 + "0" * 200, "4" * 40 + "2" * 40 + "0" * 160),
                                report("calib", "7" * 40 + "0" * 200, "7" * 40 + "0" * 200)],
                               ("margin:usem3", "cos:usem3"))
    deu = combined["paired"]["per_language"]["deu"]
    assert deu["diff"] == 0.5  # margin 1.0 over both halves, cosine 0.5 (40 of 80 gold, 40 of 80 mined)
    assert deu["ci95"][0] > 0
    assert combined["paired"]["pooled"]["diff"] == deu["diff"]
    no_units = report("eval", "7", "7")
    del no_units["systems"]["cos:usem3"]["per_language"]["deu"]["at_default"]["units"]
    with pytest.raises(SystemExit, match="no per-sentence outcomes"):
        combine_reports([no_units], ("margin:usem3", "cos:usem3"))
