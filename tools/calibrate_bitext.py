"""Calibrate the bitext stage on the calibration half (even lines) of the Tatoeba dev pairs.

`--part eval` fits on the evaluation half instead, for the second fold of a cross-fitted evaluation
(tools/eval_bucc.py); the shipped file is always fitted on the calibration half.

Procedure (README, "Bitext thresholds"):
1. Length: mean and spread of log((words(src)+1)/(words(eng)+1)) over the calibration pairs of every dev file.
2. Build the BUCC-style rounds of tools/eval_bucc.py on the calibration half (one English pool per language
   pair, 5x distractors per side) and mine them with every encoder set (each encoder alone and the
   combination) in `max` mode.
3. Fit the logistic scorers on the candidates (label: the English side is a reference translation):
   one per encoder set on all features plus the per-dimension products of the two sentence vectors (folded into
   a learned weighted dot product per encoder), and ablations without those products: all other features,
   sentence-encoder features alone, and everything but the word alignment. A scorer that reads the word
   alignment gets a prefilter without it (bitext_scoring.with_prefilter), so the stage embeds the words of
   fewer candidates.
4. For cosine, ratio margin, distance margin and every scorer, pick the threshold that maximises F1 pooled over
   languages, and per language where the language has at least --min-per-language true pairs.
5. Write transforms/data/bitext_thresholds.json. The evaluation half (odd lines) is never read.

    python -m tools.calibrate_bitext --out transforms/data/bitext_thresholds.json

`--extend FILE` keeps FILE's scorers, weights and pooled thresholds and fits only per-language thresholds for
`--languages` (on their own rounds and distractors): more languages get their own cut without changing what
the existing ones were calibrated on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tools.eval_bucc import (N_ROUNDS, OFFLINE_ENCODERS, Corpus, Records, build_round, collect, comparison_config,
                             distractor_files)
from tools.eval_tatoeba import DATA, TARGET_LANGUAGES, all_languages, half
from transforms.bitext_encoders import macro_language
from transforms.bitext_mining import word_count
from transforms.bitext_scoring import (AGREEMENT_FEATURES, LogisticScorer, alignment_names, feature_names,
                                       fit_logistic, fit_scorer, metric_names, with_prefilter)
from transforms.config import BitextConfig


def length_table(corpus: Corpus, languages: list[str], part: str) -> dict[str, list[float]]:
    table: dict[str, list[float]] = {}
    for lang in languages:
        src, eng = corpus.pairs(lang)
        r = np.log([(word_count(s) + 1) / (word_count(e) + 1) for s, e in zip(half(src, part), half(eng, part))])
        table[macro_language(lang)] = [round(float(r.mean()), 4), round(float(max(r.std(), 0.1)), 4)]
    all_r = [v[0] for v in table.values()]
    table["default"] = [0.0, round(float(np.sqrt(np.mean(np.square(all_r))) + 0.3), 4)]
    return table


def thresholds(merged: dict, name: str, min_true: int) -> dict:
    pooled = Records()
    per_language = {}
    for (n, lang), rec in sorted(merged.items()):
        if n != name:
            continue
        pooled.extend(rec)
        if rec.n_true >= min_true:
            t, best = rec.best()
            per_language[macro_language(lang)] = round(t, 5)
    t, best = pooled.best()
    return {"threshold": round(t, 5), "per_language": per_language, "calibration_f1": best["f1"]}


SETS = [(e,) for e in OFFLINE_ENCODERS] + [OFFLINE_ENCODERS]
BASE_SYSTEMS = {f"{kind}:{'+'.join(s)}": (s, kind) for s in SETS for kind in ("cos", "margin")}


def margin_systems() -> dict:
    return {f"margin:{'+'.join(s)}": (s, "margin") for s in SETS}


def runner(args, corpus: Corpus, calibration: dict):
    """Mines the BUCC-style rounds of --languages with `systems` and pools each system's records per language."""
    dfiles = distractor_files(args.languages, args.distractor_files, args.data)
    rounds = [build_round(corpus, args.languages, dfiles, args.part, r) for r in range(args.rounds)]

    def run(systems: dict, cfg: BitextConfig, features: dict | None = None) -> dict:
        merged: dict = {}
        for rnd in rounds:
            for key, rec in collect(corpus, rnd, systems, cfg, calibration, features).items():
                merged.setdefault(key, Records()).extend(rec)
        return merged

    return run


def extend(args, corpus: Corpus, config: BitextConfig, calibration: dict) -> None:
    """Adds per-language thresholds for --languages to an existing calibration, its scorers unchanged."""
    run = runner(args, corpus, calibration)
    added: dict[str, dict] = {}

    def add(entry: dict, merged: dict, name: str, label: str) -> None:
        per_language = thresholds(merged, name, args.min_per_language)["per_language"]
        entry.setdefault("per_language", {}).update(per_language)
        added[label] = per_language

    merged = run(BASE_SYSTEMS, config)
    dist = run(margin_systems(), config.model_copy(update={"margin": "distance"}))
    for s in SETS:
        name = "+".join(s)
        entry = calibration["margin_thresholds"][name]
        add(entry["cos"], merged, f"cos:{name}", f"cos:{name}")
        add(entry["ratio"], merged, f"margin:{name}", f"margin:{name}")
        add(entry["distance"], dist, f"margin:{name}", f"distance:{name}")
    scorers = calibration["scorers"]
    merged = run({f"learned:{k}": (tuple(k.split("+")), LogisticScorer.from_dict(v["ratio"]["model"]))
                  for k, v in scorers.items()}, config)
    for k, v in scorers.items():
        add(v["ratio"], merged, f"learned:{k}", f"learned:{k}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(calibration, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(added, indent=1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--languages", nargs="*", default=list(TARGET_LANGUAGES))
    ap.add_argument("--rounds", type=int, default=N_ROUNDS)
    ap.add_argument("--distractor-files", type=int, default=30)
    ap.add_argument("--min-per-language", type=int, default=200)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bitext_cache"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--part", choices=["calib", "eval"], default="calib",
                    help="the half to fit on; eval only for cross-fitting, never for the shipped file")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--extend", type=Path, help="a calibration file to add per-language thresholds to")
    args = ap.parse_args(argv)
    corpus = Corpus(args.cache, args.data)
    config = comparison_config()
    if args.extend:
        extend(args, corpus, config, json.loads(args.extend.read_text(encoding="utf-8")))
        return
    calibration: dict = {
        "_doc": f"written by tools/calibrate_bitext.py on the {'even' if args.part == 'calib' else 'odd'} lines of the "
                "Tatoeba dev pairs; see README",
        "combination_weights": {e: 1.0 for e in config.encoders},
        "length": length_table(corpus, all_languages(args.data), args.part),
    }
    run = runner(args, corpus, calibration)
    features: dict = {}
    merged = run(BASE_SYSTEMS, config, features)
    calibration["margin_thresholds"] = {
        "+".join(s): {"cos": thresholds(merged, f"cos:{'+'.join(s)}", args.min_per_language),
                      "ratio": thresholds(merged, f"margin:{'+'.join(s)}", args.min_per_language)}
        for s in SETS
    }
    dist = run(margin_systems(), config.model_copy(update={"margin": "distance"}))
    for s in SETS:
        calibration["margin_thresholds"]["+".join(s)]["distance"] = thresholds(
            dist, f"margin:{'+'.join(s)}", args.min_per_language)
    print("margin thresholds done", file=sys.stderr, flush=True)

    models, ablations = {}, {}
    for s in SETS:
        X = np.concatenate([f for f, _, _, _ in features[s]])
        y = np.concatenate([l for _, l, _, _ in features[s]])
        products = {e: np.concatenate([p[e] for _, _, _, p in features[s]]) for e in s}
        names = feature_names(s)
        model = fit_scorer(X, y, names, products)
        aligned = alignment_names(s)
        if aligned:
            metric = np.stack([products[e] @ model.metric[e] for e in s], axis=1)
            model = with_prefilter(model, np.hstack([X, metric]), y, names + metric_names(s), aligned)
        models["+".join(s)] = model
        subsets = {"learned-without-metric": names}
        if len(s) > 1:
            subsets["learned-encoder-features"] = [n for n in names if n not in AGREEMENT_FEATURES and n not in aligned]
        if aligned:
            subsets["learned-without-alignment"] = [n for n in names if n not in aligned]
        for label, subset in subsets.items():
            cols = [names.index(n) for n in subset]
            ablations[f"{label}:{'+'.join(s)}"] = (s, fit_logistic(X[:, cols], y, subset))
    systems = {f"learned:{k}": (tuple(k.split("+")), m) for k, m in models.items()}
    systems.update(ablations)
    merged = run(systems, config)
    calibration["scorers"] = {
        k: {"ratio": {"model": m.to_dict()} | thresholds(merged, f"learned:{k}", args.min_per_language)}
        for k, m in models.items()
    }
    calibration["ablations"] = {
        name: {"encoders": list(s), "model": m.to_dict(),
               "threshold": thresholds(merged, name, 10**9)["threshold"]}
        for name, (s, m) in ablations.items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(calibration, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {k: v["ratio"]["calibration_f1"] for k, v in calibration["scorers"].items()}
    summary |= {f"margin:{k}": v["ratio"]["calibration_f1"] for k, v in calibration["margin_thresholds"].items()}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
