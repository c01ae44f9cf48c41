"""Calibrate the bitext stage on the calibration half (even lines) of the Tatoeba dev pairs.

`--part eval` fits on the evaluation half instead, for the second fold of a cross-fitted evaluation
(tools/eval_bucc.py); the shipped file is always fitted on the calibration half.

Procedure (README, "Bitext thresholds"):
1. Length: mean and spread of log((words(src)+1)/(words(eng)+1)) over the calibration pairs of every dev file.
2. Build the BUCC-style rounds of tools/eval_bucc.py on the calibration half (one English pool per language
   pair, 5x distractors per side) and mine them with every encoder set (each encoder alone and the
   combination) in `max` mode.
3. Fit the logistic scorers on the candidates (label: the English side is a reference translation):
   one per encoder set on all features, and ablations on subsets of features: sentence-encoder features alone,
   and everything but the word alignment.
4. For cosine, ratio margin, distance margin and every scorer, pick the threshold that maximises F1 pooled over
   languages, and per language where the language has at least --min-per-language true pairs.
5. Write transforms/data/bitext_thresholds.json. The evaluation half (odd lines) is never read.

    python -m tools.calibrate_bitext --out transforms/data/bitext_thresholds.json
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
from transforms.bitext_scoring import AGREEMENT_FEATURES, alignment_names, feature_names, fit_logistic
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
    args = ap.parse_args(argv)
    corpus = Corpus(args.cache, args.data)
    config = comparison_config()
    calibration: dict = {
        "_doc": f"written by tools/calibrate_bitext.py on the {'even' if args.part == 'calib' else 'odd'} lines of the "
                "Tatoeba dev pairs; see README",
        "combination_weights": {e: 1.0 for e in config.encoders},
        "length": length_table(corpus, all_languages(args.data), args.part),
    }
    dfiles = distractor_files(args.languages, args.distractor_files, args.data)
    rounds = [build_round(corpus, args.languages, dfiles, args.part, r) for r in range(args.rounds)]
    sets = [(e,) for e in OFFLINE_ENCODERS] + [OFFLINE_ENCODERS]
    base = {f"{kind}:{'+'.join(s)}": (s, kind) for s in sets for kind in ("cos", "margin")}

    def run(systems: dict, cfg: BitextConfig, features: dict | None = None) -> dict:
        merged: dict = {}
        for rnd in rounds:
            for key, rec in collect(corpus, rnd, systems, cfg, calibration, features).items():
                merged.setdefault(key, Records()).extend(rec)
        return merged

    features: dict = {}
    merged = run(base, config, features)
    calibration["margin_thresholds"] = {
        "+".join(s): {"cos": thresholds(merged, f"cos:{'+'.join(s)}", args.min_per_language),
                      "ratio": thresholds(merged, f"margin:{'+'.join(s)}", args.min_per_language)}
        for s in sets
    }
    dist = run({f"margin:{'+'.join(s)}": (s, "margin") for s in sets}, config.model_copy(update={"margin": "distance"}))
    for s in sets:
        calibration["margin_thresholds"]["+".join(s)]["distance"] = thresholds(
            dist, f"margin:{'+'.join(s)}", args.min_per_language)
    print("margin thresholds done", file=sys.stderr, flush=True)

    models, ablations = {}, {}
    for s in sets:
        X = np.concatenate([f for f, _, _ in features[s]])
        y = np.concatenate([l for _, l, _ in features[s]])
        names = feature_names(s)
        models["+".join(s)] = fit_logistic(X, y, names)
        subsets = {}
        aligned = alignment_names(s)
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
