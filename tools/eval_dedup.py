"""Near-duplicate accuracy of babelbeam's dedup stage against datasketch MinHashLSH and datatrove's MinHash.

Reads a benchmark made by tools/make_dedup_benchmark.py. The truth is the exact word-5-gram Jaccard: two
documents of one partition are duplicates when they are linked by pairs at or above `--threshold` (the
clusters are the connected components of that graph). Every system runs per partition with the same
parameters (5-grams, bands x rows, seed) and is scored on:

- pair level: pairs of documents put in one cluster, against pairs in one true cluster;
- cluster level: clusters of two or more documents reproduced exactly.

    python -m tools.eval_dedup --bench /tmp/dedup-bench
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.config import DedupConfig
from transforms.dedup import Dedup, lsh_threshold, shingle_words


class UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def load(bench: Path) -> tuple[list[dict], list[tuple[str, str, float]]]:
    docs = [json.loads(line) for line in open(bench / "docs.jsonl", encoding="utf-8")]
    pairs = []
    for line in open(bench / "truth_pairs.tsv", encoding="utf-8"):
        a, b, j = line.rstrip("\n").split("\t")
        pairs.append((a, b, float(j)))
    return docs, pairs


def clusters_from_pairs(ids: list[str], pairs) -> dict[str, str]:
    uf = UnionFind()
    for doc_id in ids:
        uf.find(doc_id)
    for a, b in pairs:
        uf.union(a, b)
    return {doc_id: uf.find(doc_id) for doc_id in ids}


def score(predicted: dict[str, str], truth: dict[str, str]) -> dict:
    """Pair- and cluster-level precision, recall and F1 of a clustering (doc id -> cluster label)."""
    joint = Counter((predicted[d], truth[d]) for d in truth)
    pred_sizes, true_sizes = Counter(predicted[d] for d in truth), Counter(truth.values())

    def pairs(counts) -> int:
        return sum(c * (c - 1) // 2 for c in counts)

    tp = pairs(joint.values())
    pair_p = tp / max(pairs(pred_sizes.values()), 1)
    pair_r = tp / max(pairs(true_sizes.values()), 1)

    def members(labels: dict[str, str]) -> set[frozenset]:
        groups = defaultdict(set)
        for doc_id, label in labels.items():
            groups[label].add(doc_id)
        return {frozenset(g) for g in groups.values() if len(g) > 1}

    pred_clusters, true_clusters = members({d: predicted[d] for d in truth}), members(truth)
    hit = len(pred_clusters & true_clusters)
    cl_p, cl_r = hit / max(len(pred_clusters), 1), hit / max(len(true_clusters), 1)

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    return {
        "pair_precision": round(pair_p, 4), "pair_recall": round(pair_r, 4), "pair_f1": round(f1(pair_p, pair_r), 4),
        "cluster_precision": round(cl_p, 4), "cluster_recall": round(cl_r, 4),
        "cluster_f1": round(f1(cl_p, cl_r), 4), "predicted_clusters": len(pred_clusters),
    }


def run_babelbeam(docs: list[dict], config: DedupConfig) -> dict[str, str]:
    labels: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "labels"
        with beam.Pipeline() as pipeline:
            out = pipeline | beam.Create(docs) | Dedup(config)
            kept = out["documents"] | "Kept" >> beam.Map(lambda d: f"{d['id']}\t{d['dup_cluster_id']}")
            removed = out["rejected"] | "Removed" >> beam.Map(lambda d: f"{d['id']}\t{d['duplicate_of']}")
            (kept, removed) | beam.Flatten() | beam.io.WriteToText(str(out_path))
        for path in Path(tmp).glob("labels*"):
            for line in open(path, encoding="utf-8"):
                doc_id, label = line.rstrip("\n").split("\t")
                labels[doc_id] = label
    return labels


def run_datasketch(docs: list[dict], bands: int, rows: int, ngram: int, seed: int) -> dict[str, str]:
    from datasketch import MinHash, MinHashLSH

    pairs = []
    by_partition = defaultdict(list)
    for doc in docs:
        by_partition[doc["partition"]].append(doc)
    for group in by_partition.values():
        lsh = MinHashLSH(num_perm=bands * rows, params=(bands, rows))
        hashes = {}
        for doc in group:
            words = shingle_words(doc["text"])
            grams = [" ".join(words[i : i + ngram]) for i in range(max(len(words) - ngram + 1, 1))] if words else []
            m = MinHash(num_perm=bands * rows, seed=seed)
            m.update_batch([g.encode("utf-8") for g in grams])
            hashes[doc["id"]] = m
            lsh.insert(doc["id"], m)
        for doc_id, m in hashes.items():
            pairs += [(doc_id, other) for other in lsh.query(m) if other != doc_id]
    return clusters_from_pairs([d["id"] for d in docs], pairs)


def run_datatrove(docs: list[dict], bands: int, rows: int, ngram: int, seed: int, workdir: Path) -> dict[str, str]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    labels = {}
    by_partition = defaultdict(list)
    for doc in docs:
        by_partition[doc["partition"]].append(doc)
    for partition, group in sorted(by_partition.items()):
        base = workdir / partition
        (base / "input").mkdir(parents=True)
        columns = {"id": [d["id"] for d in group], "text": [d["text"] for d in group]}
        pq.write_table(pa.table(columns), base / "input" / "docs.parquet")
        config = MinhashConfig(n_grams=ngram, num_buckets=bands, hashes_per_bucket=rows, seed=seed)
        reader = ParquetReader(str(base / "input"))
        stages = [
            [reader, MinhashDedupSignature(str(base / "sigs"), config=config, language=partition)],
            [MinhashDedupBuckets(str(base / "sigs"), str(base / "buckets"), config=config)],
            [MinhashDedupCluster(str(base / "buckets"), str(base / "remove"), config=config, save_cluster_id=True)],
            [reader, MinhashDedupFilter(str(base / "remove"), exclusion_writer=ParquetWriter(str(base / "removed")),
                                        load_cluster_ids=True), ParquetWriter(str(base / "kept"))],
        ]
        for i, (pipeline, tasks) in enumerate(zip(stages, (1, bands, 1, 1))):
            LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(base / f"logs{i}"),
                                  skip_completed=False).run()
        for folder in ("kept", "removed"):
            for path in (base / folder).glob("*.parquet"):
                for doc in pq.read_table(path).to_pylist():
                    cluster = doc["metadata"].get("minhash_cluster_id", -1)
                    labels[doc["id"]] = f"{partition}:{cluster}" if cluster != -1 else doc["id"]
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--bands", type=int, default=14)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=None, help="truth threshold; default (1/b)^(1/r)")
    parser.add_argument("--systems", default="babelbeam,babelbeam_verified,datasketch,datatrove")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    threshold = args.threshold or lsh_threshold(args.bands, args.rows)
    docs, pairs = load(args.bench)
    truth = clusters_from_pairs([d["id"] for d in docs], [(a, b) for a, b, j in pairs if j >= threshold])
    base = DedupConfig(bands=args.bands, rows=args.rows, seed=args.seed)
    results = {"docs": len(docs), "threshold": round(threshold, 4),
               "true_clusters": sum(1 for c in Counter(truth.values()).values() if c > 1), "systems": {}}
    for system in args.systems.split(","):
        start = time.perf_counter()
        if system == "babelbeam":
            predicted = run_babelbeam(docs, base)
        elif system == "babelbeam_verified":
            predicted = run_babelbeam(docs, base.model_copy(update={"verify_jaccard": threshold}))
        elif system == "datasketch":
            predicted = run_datasketch(docs, args.bands, args.rows, 5, args.seed)
        elif system == "datatrove":
            with tempfile.TemporaryDirectory() as tmp:
                predicted = run_datatrove(docs, args.bands, args.rows, 5, args.seed, Path(tmp))
        else:
            parser.error(f"unknown system {system!r}")
        missing = [d["id"] for d in docs if d["id"] not in predicted]
        predicted.update({doc_id: doc_id for doc_id in missing})
        results["systems"][system] = {**score(predicted, truth), "seconds": round(time.perf_counter() - start, 1),
                                      "missing_docs": len(missing)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
