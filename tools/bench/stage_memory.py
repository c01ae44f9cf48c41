"""Which DirectRunner stage a run's memory grows in: the largest worker's and the driver's peak RSS while each
fused stage ran.

Whole-run peaks say that memory grows with the corpus, not where. The DirectRunner announces every bundle it
starts on a debug logger; pairing those start times with per-process RSS samples names the stage. Run it at two
corpus sizes: a stage whose figure doubles with the input holds something proportional to it.

    python -m tools.bench.stage_memory -- pipelines.build --runner=DirectRunner --direct_num_workers=2 \\
        --direct_running_mode=multi_processing --input /data/corpus --output /tmp/out --overwrite
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import runpy
import sys
import time
from collections.abc import Iterator

import numpy as np

from tools.bench.bench_pipeline import TreeMemory

BUNDLE_LOGGER = "apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle"


class StageLog(logging.Handler):
    """When the DirectRunner starts each bundle, and the stage it belongs to; listens on the runner's bundle
    logger only, so nothing else is switched to debug."""

    def __init__(self, clock_start: float):
        super().__init__(logging.DEBUG)
        self.clock_start = clock_start
        self.starts: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Running bundle for stage "):
            name = message.split("\n")[0].removeprefix("Running bundle for stage ")
            self.starts.append((time.perf_counter() - self.clock_start, stage_label(name)))

    def __enter__(self) -> StageLog:
        logger = logging.getLogger(BUNDLE_LOGGER)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger(BUNDLE_LOGGER).removeHandler(self)


def stage_label(name: str) -> str:
    """'((Dedup/LSH/Bucket/Read)+(ref_AppliedPTransform_Dedup-LSH-StarEdges_27))+...' -> 'Dedup/LSH/Bucket/Read'.

    The first fused transform names the stage, skipping the runner's own split and impulse reads."""
    for part in re.split(r"\)+\+\(+", name):
        part = re.sub(r"_\d+$", "", part.strip("()").removeprefix("ref_AppliedPTransform_"))
        if not part.startswith("ref_PCollection") and "Impulse" not in part:
            return part
    return name[:80]


def stage_peaks(starts: list[tuple[float, str]], end: float, samples: dict[int, list[tuple[float, int]]],
                driver: int, min_seconds: float) -> list[dict]:
    """Per stage that ran at least `min_seconds`: its duration and the largest worker's and the driver's peak RSS
    while it ran. RSS rarely falls, so a stage's figure includes what earlier stages left behind; the rise from
    one stage to the next is what that stage added."""
    series = {pid: np.asarray(points, dtype=np.float64).reshape(-1, 2) for pid, points in samples.items()}

    def peak(points: np.ndarray, start: float, stop: float) -> float:
        lo, hi = np.searchsorted(points[:, 0], [start, stop])  # samples are in time order
        return points[lo:hi, 1].max(initial=0.0)

    rows = []
    for (start, label), stop in zip(starts, [t for t, _ in starts[1:]] + [end]):
        if stop - start < min_seconds:
            continue
        worker = max((peak(points, start, stop) for pid, points in series.items() if pid != driver), default=0.0)
        driver_peak = peak(series[driver], start, stop) if driver in series else 0.0
        rows.append({"stage": label, "seconds": round(stop - start, 1), "worker_mb": round(worker / 2**20),
                     "driver_mb": round(driver_peak / 2**20)})
    return rows


@contextlib.contextmanager
def stage_memory(min_seconds: float = 1.0) -> Iterator[list[dict]]:
    """Samples this process and its children while the block runs; the yielded list is filled on exit."""
    memory = TreeMemory(os.getpid())
    rows: list[dict] = []
    with StageLog(memory.started) as log:
        try:
            yield rows
        finally:
            memory.stop()
            end = time.perf_counter() - memory.started
            rows.extend(stage_peaks(log.starts, end, memory.samples, os.getpid(), min_seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-seconds", type=float, default=1.0, help="leave out stages shorter than this")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("module", help="the module to run as __main__, e.g. pipelines.build")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    sys.argv = [args.module, *args.args]
    rc = 0
    with stage_memory(args.min_seconds) as rows:
        try:
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            rc = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    print(f"{'seconds':>8} {'worker MiB':>10} {'driver MiB':>10}  stage", file=sys.stderr)
    for row in rows:
        print(f"{row['seconds']:8.1f} {row['worker_mb']:10d} {row['driver_mb']:10d}  {row['stage']}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    sys.exit(rc)


if __name__ == "__main__":
    main()
