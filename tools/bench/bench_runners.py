"""Throughput of the same pipeline on three runners, for the scaling model in the README.

Builds one multilingual JSONL corpus (tools.bench.bench_pipeline's generator), then runs
`python -m pipelines.build --stages langid,quality,dedup` on it, one after the other:

- `in_process`: DirectRunner, one worker, in memory;
- `multiprocess`: DirectRunner, `--direct_num_workers=2 --direct_running_mode=multi_processing`;
- `dask`: DaskRunner against a `dask scheduler` and `dask worker --nworkers 2 --nthreads 1` started here.

Reports wall time, documents/s, peak summed RSS (driver and, for Dask, the workers), the worker time per stage
the DirectRunner measured (manifest `busy_s`; the DaskRunner has no metrics API) and checks that the three
runs wrote byte-identical documents. Prints JSON (also to `--json`), the input of `tools.bench.scaling_model`.

    python -m tools.bench.bench_runners --docs 100000 --json tools/bench/runners_100k.json
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.bench.bench_pipeline import REPO, TreeMemory, run_measured, write_corpus

STAGES = "langid,quality,dedup"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(glob.glob(str(folder / "documents" / "**" / "*.parquet"), recursive=True)):
        h.update(os.path.relpath(path, folder).encode())
        h.update(open(path, "rb").read())
    return h.hexdigest()[:16]


def _result(measured: dict, output: Path, n_docs: int) -> dict:
    manifest = json.loads((output / "manifest.json").read_text())
    measured.update(
        docs_per_s=round(n_docs / measured["wall_s"], 1),
        pipeline_elapsed_s=manifest["elapsed_s"],
        kept=manifest["accounting"]["kept"],
        closes=manifest["accounting"]["closes"],
        documents_sha256=_digest(output),
        input_bytes=sum(i["bytes"] for i in manifest["inputs"]),
        busy_s=manifest.get("busy_s"),
    )
    return measured


def run_direct(corpus: Path, work: Path, name: str, extra: list[str], n_docs: int) -> dict:
    output = work / name
    cmd = [sys.executable, "-m", "pipelines.build", "--input", str(corpus), "--output", str(output),
           "--stages", STAGES, "--overwrite", "--runner=DirectRunner", *extra]
    return _result(run_measured(cmd, work / f"{name}.log"), output, n_docs)


def run_dask(corpus: Path, work: Path, n_docs: int) -> dict:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    bin_dir = Path(sys.executable).parent
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--port", str(port), "--dashboard-address", ":0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    workers = subprocess.Popen([str(bin_dir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2",
                                "--nthreads", "1", "--memory-limit", "0", "--no-dashboard"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    cluster_memory = TreeMemory(workers.pid)
    try:
        time.sleep(8)  # let both worker processes join
        output = work / "dask"
        cmd = [sys.executable, "-m", "pipelines.build", "--input", str(corpus), "--output", str(output),
               "--stages", STAGES, "--overwrite", "--runner=DaskRunner",
               f"--dask_client_address=tcp://127.0.0.1:{port}"]
        result = _result(run_measured(cmd, work / "dask.log"), output, n_docs)
    finally:
        cluster_memory.stop()
        workers.terminate()
        scheduler.terminate()
        workers.wait()
        scheduler.wait()
    result["peak_rss_workers_mib"] = round(cluster_memory.peak_sum / 2**20, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--runners", default="in_process,multiprocess,dask")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_runners_"))
    corpus = work / "corpus"
    if not corpus.exists():
        write_corpus(corpus, args.docs, args.files)
    results = {"docs": args.docs, "stages": STAGES, "corpus_bytes": sum(p.stat().st_size for p in corpus.iterdir()),
               "cpus": os.cpu_count()}
    chosen = args.runners.split(",")
    if "in_process" in chosen:
        results["in_process"] = run_direct(corpus, work, "in_process", ["--direct_num_workers=1"], args.docs)
    if "multiprocess" in chosen:
        results["multiprocess"] = run_direct(
            corpus, work, "multiprocess", ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
            args.docs)
    if "dask" in chosen:
        results["dask"] = run_dask(corpus, work, args.docs)
    digests = {name: r["documents_sha256"] for name, r in results.items() if isinstance(r, dict)}
    results["identical_documents"] = len(set(digests.values())) == 1
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
