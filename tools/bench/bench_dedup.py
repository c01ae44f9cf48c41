"""Dedup throughput: babelbeam's Dedup stage against datatrove's four MinHash stages, plus signatures
against datasketch. Prints JSON.

Both systems read the same Parquet file (id, text) of English documents built from Tatoeba sentences, with
30% near copies (1-6 random word edits) and exact copies, use 5-grams, 14 x 8, 2 workers, and write the kept
documents. Each run is a fresh subprocess, so peak memory is measured per run: `runner_rss_mb` is the
process that drives the run (for Beam's DirectRunner it also holds every shuffle in memory) and
`worker_rss_mb` the largest worker subprocess. `--stage-memory` adds, for babelbeam, the largest worker's RSS
during each DirectRunner stage, which names the stage where worker memory grows. The system
`babelbeam-whole` is babelbeam on Beam's DirectRunner as released, which sends a worker its whole share of a
shuffle as one message (pipelines.runners.stream_direct_runner_inputs), for comparison.

    python -m tools.bench.bench_dedup --sizes 50000,100000 --signature-docs 5000
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tools.make_dedup_benchmark import TATOEBA, Editor, load_sentences


def make_corpus(n_docs: int, seed: int, path: Path) -> None:
    rng = random.Random(seed)
    pool = load_sentences(TATOEBA, "eng")
    texts: list[str] = []
    editor = Editor(rng, [w for s in pool[:200] for w in s.split()], pool[:5], " ")
    for i in range(n_docs):
        if i < n_docs * 0.7 or not texts:
            texts.append(" ".join(rng.sample(pool, rng.randint(6, 18))))
        elif rng.random() < 0.15:
            texts.append(rng.choice(texts).upper())
        else:
            words = rng.choice(texts).split()
            for _ in range(rng.randint(1, 6)):
                words = editor.edit(words)
            texts.append(" ".join(words))
    ids = [f"doc{i:08d}" for i in range(n_docs)]
    # Row groups of 10k rows, as real Parquet inputs have: Beam's ReadFromParquet reads (and materialises as
    # Python rows) one row group at a time, so a single 200k-row group would put the whole corpus into one worker.
    pq.write_table(pa.table({"id": ids, "text": texts}), path, row_group_size=10_000)


SYSTEMS = ("babelbeam", "babelbeam-whole", "datatrove")


def run_babelbeam(input_path: str, out_dir: str, workers: int, streamed: bool = True) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.runners import stream_direct_runner_inputs
    from schemas.documents import new_document
    from transforms.config import DedupConfig
    from transforms.dedup import Dedup

    def to_doc(row: dict) -> dict:
        doc = new_document(row["id"], row["text"], "bench")
        doc["partition"] = "eng_Latn"
        return doc

    if streamed:
        stream_direct_runner_inputs()  # as pipelines.build runs it
    options = PipelineOptions(direct_num_workers=workers, direct_running_mode="multi_processing")
    with beam.Pipeline(options=options) as pipeline:
        out = (
            pipeline
            | beam.io.ReadFromParquet(input_path)
            | "ToDoc" >> beam.Map(to_doc)
            | Dedup(DedupConfig())
        )
        out["documents"] | "Json" >> beam.Map(json.dumps) | "Write" >> beam.io.WriteToText(f"{out_dir}/kept")


def run_datatrove(input_path: str, out_dir: str, workers: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    base = Path(out_dir)
    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)
    reader = ParquetReader(str(Path(input_path).parent), glob_pattern="*.parquet")
    stages = [
        ([reader, MinhashDedupSignature(str(base / "sigs"), config=config, language="eng_Latn")], workers),
        ([MinhashDedupBuckets(str(base / "sigs"), str(base / "buckets"), config=config)], 14),
        ([MinhashDedupCluster(str(base / "buckets"), str(base / "remove"), config=config)], 1),
        ([reader, MinhashDedupFilter(str(base / "remove")), ParquetWriter(str(base / "kept"))], workers),
    ]
    seconds = {}
    for name, (pipeline, tasks) in zip(("signatures", "buckets", "cluster", "filter"), stages):
        start = time.perf_counter()
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks),
                              logging_dir=str(base / f"logs-{name}"), skip_completed=False).run()
        seconds[name] = round(time.perf_counter() - start, 2)
    return {"stage_seconds": seconds}


def kept_digest(out_dir: str) -> dict:
    """How many documents were kept, and a digest of them in sorted order, so two runs' outputs can be compared."""
    lines = sorted(line for path in Path(out_dir).glob("kept*") for line in path.read_text("utf-8").splitlines())
    return {"kept": len(lines), "kept_sha256": hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:16]}


def one_run(system: str, input_path: str, workers: int, stage_memory: bool = False) -> None:
    """Runs in its own process: prints one JSON line with time and peak memory."""
    from tools.bench.stage_memory import stage_memory as sampled

    with tempfile.TemporaryDirectory() as out_dir, (sampled() if stage_memory else contextlib.nullcontext()) as stages:
        start = time.perf_counter()
        if system == "datatrove":
            extra = run_datatrove(input_path, out_dir, workers)
            seconds = time.perf_counter() - start
        else:
            run_babelbeam(input_path, out_dir, workers, streamed=system == "babelbeam")
            seconds = time.perf_counter() - start
            extra = kept_digest(out_dir)
    if stage_memory:
        extra["stages"] = stages
    print(json.dumps({
        "seconds": round(seconds, 2),
        "runner_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        **extra,
    }))


def bench_signatures(n_docs: int, seed: int) -> dict:
    """Signature time only, same shingles: babelbeam's batched numpy vs datasketch MinHash.update."""
    from datasketch import MinHash

    from transforms.dedup import MinHasher, shingle_words

    rng = random.Random(seed)
    pool = load_sentences(TATOEBA, "eng")
    texts = [" ".join(rng.sample(pool, rng.randint(6, 18))) for _ in range(n_docs)]
    grams = []
    for text in texts:
        words = shingle_words(text)
        grams.append([" ".join(words[i : i + 5]) for i in range(max(len(words) - 4, 1))])
    hasher = MinHasher(112, 1)
    start = time.perf_counter()
    for lo in range(0, n_docs, 512):
        hasher.signatures([hasher.shingle_hashes(words, 5) for words in
                           (shingle_words(t) for t in texts[lo : lo + 512])])
    ours_with_tokenising = time.perf_counter() - start
    start = time.perf_counter()
    for lo in range(0, n_docs, 512):
        hasher.signatures([hasher.shingle_hashes(g, 1) for g in grams[lo : lo + 512]])
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for doc_grams in grams:
        m = MinHash(num_perm=112, seed=1)
        for g in doc_grams:
            m.update(g.encode("utf-8"))
    theirs = time.perf_counter() - start
    start = time.perf_counter()
    for doc_grams in grams:
        MinHash(num_perm=112, seed=1).update_batch([g.encode("utf-8") for g in doc_grams])
    theirs_batch = time.perf_counter() - start
    return {
        "docs": n_docs,
        "babelbeam_docs_per_s": round(n_docs / ours),
        "babelbeam_with_tokenising_docs_per_s": round(n_docs / ours_with_tokenising),
        "datasketch_update_docs_per_s": round(n_docs / theirs),
        "datasketch_update_batch_docs_per_s": round(n_docs / theirs_batch),
        "speedup_vs_update": round(theirs / ours, 1),
        "speedup_vs_update_batch": round(theirs_batch / ours, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50000,100000,200000")
    parser.add_argument("--systems", default="babelbeam,datatrove",
                        help=f"comma-separated, of {', '.join(SYSTEMS)} (babelbeam-whole: on Beam's DirectRunner "
                             "as released)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--signature-docs", type=int, default=5000, help="0: skip the datasketch comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage-memory", action="store_true",
                        help="babelbeam: the largest worker's peak RSS during each DirectRunner stage")
    parser.add_argument("--one-run", nargs=2, metavar=("SYSTEM", "INPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.systems.split(",")) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown --systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    if args.one_run:
        one_run(args.one_run[0], args.one_run[1], args.workers, args.stage_memory)
        return
    results: dict = {"workers": args.workers, "runs": []}
    if args.signature_docs:
        results["signatures"] = bench_signatures(args.signature_docs, args.seed)
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            input_path = Path(tmp) / "in" / "docs.parquet"
            input_path.parent.mkdir()
            make_corpus(size, args.seed, input_path)
            row = {"docs": size}
            for system in args.systems.split(","):
                proc = subprocess.run(
                    [sys.executable, "-m", "tools.bench.bench_dedup", "--workers", str(args.workers),
                     *(["--stage-memory"] if args.stage_memory else []), "--one-run", system, str(input_path)],
                    capture_output=True, text=True, check=False,
                )
                if proc.returncode:
                    row[system] = {"error": proc.stderr.strip().splitlines()[-1:]}
                    continue
                row[system] = json.loads(proc.stdout.strip().splitlines()[-1])
                row[system]["docs_per_s"] = round(size / row[system]["seconds"])
            if "seconds" in row.get("babelbeam", {}) and "seconds" in row.get("datatrove", {}):
                row["speed_ratio"] = round(row["datatrove"]["seconds"] / row["babelbeam"]["seconds"], 2)
            results["runs"].append(row)
            print(json.dumps(row), file=sys.stderr)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
