"""End-to-end language ID + quality filtering: babelbeam against datatrove on the same JSONL corpus.

Builds a multilingual corpus from the Tatoeba dev sentences (112 languages plus English; documents of 200-500
words, 10% of them boilerplate or spam pages), writes it as several JSONL files, then runs, each in its own
process and one after the other:

- babelbeam: `python -m pipelines.build --stages langid,quality --direct_num_workers=2
  --direct_running_mode=multi_processing` (documents under the language threshold dropped, as datatrove does);
- datatrove 0.10: JsonlReader -> LanguageFilter (the same lid.176.ftz, threshold 0.65) -> GopherRepetitionFilter
  -> GopherQualityFilter -> FineWebQualityFilter -> JsonlWriter, LocalPipelineExecutor(tasks=2, workers=2).

Reports wall time and documents per second of each, their ratio, and the peak resident memory of each run's
whole process tree (sampled with psutil every 0.1 s), each process's own peak and the largest process's running
peak per tenth of the run (a plateau means bounded buffers, a steady climb means state growing with the input).
`--memory_docs` runs babelbeam alone on larger corpora. Prints JSON.

    python -m tools.bench.bench_pipeline --docs 50000 --memory_docs 200000
    python -m tools.bench.bench_pipeline --docs 200000 --memory_docs 400000 --systems babelbeam
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[2]
TATOEBA = Path(os.environ.get("BABELBEAM_TATOEBA", REPO.parent / "shared" / "data" / "tatoeba-dev"))
LID_MODEL = REPO / "transforms" / "models" / "lid.176.ftz"
NO_SPACE = {"cmn", "jpn", "tha", "yue", "wuu", "khm"}
BOILERPLATE = ["Home | About us | Contact | Log in", "Subscribe to our newsletter!", "Share on Facebook",
               "This site uses cookies. By continuing you accept our privacy policy.", "Read more", "Next page"]


def load_pools(folder: Path) -> dict[str, list[str]]:
    """Sentences per Tatoeba language code; English gathers the English side of every file."""
    pools: dict[str, list[str]] = {"eng": []}
    for path in sorted(folder.glob("*-eng.tsv")):
        lang = path.name.split("-")[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and parts[0].strip():
                pools.setdefault(lang, []).append(parts[0].strip())
                pools["eng"].append(parts[1].strip())
    return pools


def _words(sentence: str, lang: str) -> int:
    return max(1, len(sentence) // 2) if lang in NO_SPACE else len(sentence.split())


def make_document(rng: random.Random, pools: dict[str, list[str]], langs: list[str]) -> str:
    lang = "eng" if rng.random() < 0.2 else rng.choice(langs)
    pool = pools[lang]
    target = rng.randint(200, 500)
    joiner = "" if lang in NO_SPACE else " "
    if rng.random() < 0.1:  # boilerplate and spam pages
        lines = [rng.choice(pool) for _ in range(8)] + [rng.choice(BOILERPLATE) for _ in range(rng.randint(5, 30))]
        rng.shuffle(lines)
        return "\n".join(lines)
    # consecutive sentences from a random start with a random stride: no sentence repeats within a document
    paragraphs, words, i = [], 0, rng.randrange(len(pool))
    stride = rng.choice([k for k in (1, 3, 7, 11, 13) if len(pool) % k]) if len(pool) > 1 else 1
    while words < target:
        size = rng.randint(3, 6)
        sentences = [pool[(i + j * stride) % len(pool)] for j in range(size)]
        i += size * stride
        words += sum(_words(s, lang) for s in sentences)
        paragraphs.append(joiner.join(sentences))
    return "\n".join(paragraphs)


def write_corpus(folder: Path, n_docs: int, n_files: int, seed: int = 0) -> int:
    """n_docs documents spread round-robin over n_files JSONL files; returns the total bytes."""
    pools = load_pools(TATOEBA)
    langs = sorted(lang for lang in pools if lang != "eng")
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = [open(folder / f"part-{k:02d}.jsonl", "w", encoding="utf-8") for k in range(n_files)]
    try:
        for i in range(n_docs):
            record = {"id": f"doc-{i:07d}", "text": make_document(rng, pools, langs)}
            files[i % n_files].write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        for f in files:
            f.close()
    return sum(p.stat().st_size for p in folder.glob("*.jsonl"))


def _anon_rss(pid: int) -> int:
    """Anonymous resident memory (Linux RssAnon): RSS without memory-mapped file pages, which the page cache
    can reclaim (the sink memory-maps its spill files, and RSS counts every mapped page it touched)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeMemory:
    """Peak of the summed RSS (and anonymous RSS) of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 0.1):
        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.peak_sum = 0
        self.peak_anon_sum = 0
        self.max_processes = 0
        self.samples: dict[int, list[tuple[float, int]]] = {}  # pid -> [(seconds, rss)]
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            rss = []
            now = time.perf_counter() - self.started
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    continue
                self.samples.setdefault(p.pid, []).append((now, rss[-1]))
            self.peak_sum = max(self.peak_sum, sum(rss))
            self.peak_anon_sum = max(self.peak_anon_sum, sum(_anon_rss(p.pid) for p in procs))
            self.max_processes = max(self.max_processes, len(rss))
            time.sleep(self.every_s)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def peaks(self) -> dict[int, int]:
        """Each process's own peak RSS in bytes."""
        return {pid: max(r for _, r in series) for pid, series in self.samples.items()}

    def largest_timeline(self, points: int = 10) -> list[int]:
        """Running peak RSS (MiB) of the process with the highest peak, at every 1/points of the run: shows
        whether memory levels off (bounded buffers) or keeps climbing (something proportional to the input)."""
        peaks = self.peaks()
        if not peaks:
            return []
        series = np.asarray(self.samples[max(peaks, key=peaks.get)], dtype=np.float64)
        running = np.maximum.accumulate(series[:, 1])
        at = np.searchsorted(series[:, 0], series[-1, 0] * np.arange(1, points + 1) / points, side="right") - 1
        return [round(running[i] / 2**20) for i in at]


def run_measured(cmd: list[str], log_path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    with open(log_path, "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        memory = TreeMemory(proc.pid)
        rc = proc.wait()
        wall = time.perf_counter() - started
        memory.stop()
    if rc != 0:
        raise RuntimeError(f"{cmd[:4]} exited {rc}; see {log_path}:\n{log_path.read_text()[-3000:]}")
    peaks = sorted(memory.peaks().values(), reverse=True)
    return {"wall_s": round(wall, 2), "peak_rss_tree_mib": round(memory.peak_sum / 2**20, 1),
            "peak_anon_rss_tree_mib": round(memory.peak_anon_sum / 2**20, 1),
            "peak_rss_largest_process_mib": round(peaks[0] / 2**20, 1) if peaks else 0.0,
            "processes": memory.max_processes,
            "largest_process_running_peak_mib_per_tenth": memory.largest_timeline(),
            # the driver and each SDK worker; the shells that start the workers (< 16 MiB) are left out
            "peak_rss_per_process_mib": [round(p / 2**20) for p in peaks if p > 16 * 2**20]}


def run_babelbeam(input_dir: Path, output_dir: Path, log: Path) -> dict:
    config = output_dir.parent / f"{output_dir.name}.yaml"
    config.write_text("quality: {drop_undetermined: true}\n")  # datatrove's LanguageFilter drops those
    cmd = [sys.executable, "-m", "pipelines.build", "--input", str(input_dir), "--output", str(output_dir),
           "--stages", "langid,quality", "--config", str(config), "--overwrite", "--runner=DirectRunner",
           "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    result = run_measured(cmd, log)
    manifest = json.loads((output_dir / "manifest.json").read_text())
    acc = manifest["accounting"]
    result.update(kept=acc["kept"], dropped=acc["dropped"], input_records=acc["input_records"],
                  closes=acc["closes"], pipeline_elapsed_s=manifest["elapsed_s"])
    return result


def datatrove_job(input_dir: str, output_dir: str) -> None:
    """The datatrove side, run in its own process (LocalPipelineExecutor needs a __main__ guard)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    language_filter = LanguageFilter(backend="ft176", language_threshold=0.65)
    # FT176LID downloads MODEL_URL into its asset cache; a local path is copied from disk instead, so the
    # instance (pickled to every worker) uses the bundled lid.176.ftz, offline.
    language_filter.model.MODEL_URL = str(LID_MODEL)
    out = Path(output_dir)
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(input_dir, glob_pattern="*.jsonl"),
            language_filter,
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            FineWebQualityFilter(),
            JsonlWriter(str(out / "kept")),
        ],
        tasks=2,
        workers=2,
        logging_dir=str(out / "logs"),
    ).run()


def datatrove_counts(output_dir: Path) -> dict:
    kept = 0
    for path in (output_dir / "kept").rglob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            kept += sum(1 for _ in f)
    return {"kept": kept}


def run_datatrove(input_dir: Path, output_dir: Path, log: Path) -> dict:
    env_home = output_dir.parent / "hf_home"  # datatrove's asset cache, kept out of the user's home
    os.environ["HF_HOME"] = str(env_home)
    cmd = [sys.executable, "-m", "tools.bench.bench_pipeline", "--datatrove_job", str(input_dir), str(output_dir)]
    result = run_measured(cmd, log)
    result.update(datatrove_counts(output_dir))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=50_000, help="corpus size of the comparison")
    parser.add_argument("--memory_docs", default="200000",
                        help="comma-separated larger corpus sizes run by babelbeam alone, for peak memory against "
                             "corpus size (0: skip)")
    parser.add_argument("--files", type=int, default=4, help="JSONL files the corpus is split into")
    parser.add_argument("--systems", default="babelbeam,datatrove")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed afterwards")
    parser.add_argument("--datatrove_job", nargs=2, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.datatrove_job:
        datatrove_job(*args.datatrove_job)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_pipeline_"))
    work.mkdir(parents=True, exist_ok=True)
    systems = args.systems.split(",")
    report: dict = {"machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                                "python": sys.version.split()[0]}, "runs": {}}
    try:
        corpus = work / f"corpus_{args.docs}"
        size = write_corpus(corpus, args.docs, args.files)
        report["corpus"] = {"docs": args.docs, "files": args.files, "bytes": size}
        for system in systems:
            runner = run_babelbeam if system == "babelbeam" else run_datatrove
            result = runner(corpus, work / f"out_{system}_{args.docs}", work / f"{system}_{args.docs}.log")
            result["docs_per_s"] = round(args.docs / result["wall_s"], 1)
            report["runs"][f"{system}_{args.docs}"] = result
            print(json.dumps({system: result}), file=sys.stderr, flush=True)
        if {"babelbeam", "datatrove"} <= set(systems):
            runs = report["runs"]
            report["ratio_docs_per_s"] = round(runs[f"babelbeam_{args.docs}"]["docs_per_s"]
                                               / runs[f"datatrove_{args.docs}"]["docs_per_s"], 2)
        sizes = [int(n) for n in args.memory_docs.split(",") if int(n)] if "babelbeam" in systems else []
        if sizes:
            shutil.rmtree(work / f"out_babelbeam_{args.docs}", ignore_errors=True)
        for n in sizes:
            big = work / f"corpus_{n}"
            report.setdefault("memory_corpora", {})[n] = {"docs": n, "bytes": write_corpus(big, n, args.files)}
            result = run_babelbeam(big, work / f"out_babelbeam_{n}", work / f"babelbeam_{n}.log")
            result["docs_per_s"] = round(n / result["wall_s"], 1)
            report["runs"][f"babelbeam_{n}"] = result
            print(json.dumps({f"babelbeam_{n}": result}), file=sys.stderr, flush=True)
            shutil.rmtree(work / f"out_babelbeam_{n}", ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
