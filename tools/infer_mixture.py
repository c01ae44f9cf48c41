"""Infer a BPE tokenizer's training mixture from its merge list and a folder of per-category text.

    python -m tools.infer_mixture --merges FILE --categories DIR [--top-merges T] [--output OUT]

DIR holds one sub-folder per category (every file under it is read), or one text file per category. The
report (JSON, also printed) and a bar chart go to OUT/mixture/. Exit status: 0 on success, 2 for a bad
merge list or category folder, 3 when no mixture could be inferred (the report says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from transforms.config import MixtureConfig
from transforms.mixture import CategorySample, infer, load_merges, write_report
from transforms.mixture_merges import MergeListError, Pretokenizer


class CategoryError(ValueError):
    """A category folder that cannot be used: missing, empty, or only one category."""


def category_files(root: Path) -> dict[str, list[Path]]:
    """Category name -> its files: sub-folders are categories, or else each top-level file is one."""
    if not root.is_dir():
        raise CategoryError(f"--categories {root} is not a folder")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders = [p for p in entries if p.is_dir()]
    if folders:
        cats = {p.name: sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")) for p in folders}
        empty = [name for name, files in cats.items() if not files]
        if empty:
            raise CategoryError(f"category folder(s) with no files: {', '.join(empty)} (under {root})")
    else:
        cats = {p.name.split(".")[0]: [p] for p in entries if p.is_file()}
    if not cats:
        raise CategoryError(f"{root} holds no category folders or files")
    if len(cats) < 2:
        raise CategoryError(f"{root} holds a single category ({next(iter(cats))}); a mixture needs at least 2")
    return cats


def read_category(files: list[Path], pretokenizer: Pretokenizer, max_bytes: int | None, seed: int) -> CategorySample:
    """Count a category's text; beyond `max_bytes`, a seeded random sample of its lines (never a prefix)."""
    sample = CategorySample()
    lines: list[str] = []
    for path in files:
        try:
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True))
        except OSError as exc:
            print(f"warning: skipping unreadable {path}: {exc.strerror or exc}", file=sys.stderr)
    if max_bytes is not None and sum(len(s.encode("utf-8")) for s in lines) > max_bytes:
        order = np.random.default_rng(seed).permutation(len(lines))
        kept, size = [], 0
        for i in order:
            if size >= max_bytes:
                break
            kept.append(lines[i])
            size += len(lines[i].encode("utf-8"))
        lines = kept
    for line in lines:
        sample.add(line, pretokenizer)
    return sample


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--merges", help="tokenizer.json, merges.txt, .tiktoken[.gz] or .model (default cl100k_base)")
    ap.add_argument("--categories", required=True, type=Path)
    ap.add_argument("--top-merges", type=int, default=30_000, help="first T merges (0: all)")
    ap.add_argument("--pretokenizer", choices=["gpt2", "cl100k", "o200k"])
    ap.add_argument("--output", type=Path, default=Path("mixture_out"))
    ap.add_argument("--max-bytes-per-category", type=int, help="sample this many bytes of lines per category")
    ap.add_argument("--min-category-bytes", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-rounds", type=int, default=50)
    ap.add_argument("--max-seconds", type=float, default=900, help="no new LP round after this long")
    args = ap.parse_args(argv)
    try:
        config = MixtureConfig(merges=args.merges, top_merges=args.top_merges or None,
                               pretokenizer=args.pretokenizer, min_category_bytes=args.min_category_bytes,
                               max_rounds=args.max_rounds, max_seconds=args.max_seconds)
        cats = category_files(args.categories)
        merges = load_merges(config)
    except (MergeListError, CategoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    samples = {name: read_category(files, merges.pretokenizer, args.max_bytes_per_category, args.seed)
               for name, files in cats.items()}
    report = infer(samples, merges, config)
    write_report(report, str(args.output))
    print(json.dumps(report, indent=2, sort_keys=True))
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if report["error"]:
        print(f"error: {report['error']}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
