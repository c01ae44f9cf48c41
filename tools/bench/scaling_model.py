"""What a corpus build of a given size costs in worker-hours on each runner, from measured figures only.

Inputs:
- `--runners`: the JSON of `tools.bench.bench_runners` (the same corpus through the in-process DirectRunner,
  2 multi-processing workers and a 2-worker Dask cluster; the in-process run's manifest `busy_s` gives the
  worker seconds of each stage);
- `--full`: the `manifest.json` of a DirectRunner run with every stage (the built-in sample by default
  invocation), for the stages the runner benchmark leaves out (bitext, codeswitch, mixture).

Model: stage s costs c_s = busy_s / input GB core-seconds per GB, measured in one worker process. A runner r
with w_r workers turns stage work into wall time with efficiency e_r = (sum of c_s x GB) / (w_r x wall_r),
measured on the same corpus; the rest is runner overhead (serialisation, shuffles, scheduling). A build of
T GB then costs T x sum(c_s) / e_r / 3600 worker-hours on r. Prints a Markdown report.

    python -m tools.bench.scaling_model --runners tools/bench/runners_100k.json --full output/manifest.json --tb 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WORKERS = {"in_process": 1, "multiprocess": 2, "dask": 2}
# Where cost per GB measured on a small run does not extrapolate linearly.
NOT_LINEAR = {
    "bitext": "encoding is linear, but the kNN grid has (source shards x target shards) cells per pair and "
              "`GroupPair` scores a whole language pair on one worker: superlinear, so the figure is a lower bound",
    "mixture": "word counting is linear, the merge replay grows with the vocabulary and the LP not at all: "
               "the figure is an upper bound",
}
SCALED_BY_RUNNERS = ("ingest", "langid", "quality", "dedup", "write", "accounting")
FROM_FULL_RUN = ("bitext", "codeswitch", "mixture")


def stage_costs(runners: dict, full: dict | None) -> dict[str, float]:
    """Core-seconds per input GB for each stage."""
    base = runners["in_process"]
    gb = base["input_bytes"] / 1e9
    costs = {s: base["busy_s"].get(s, 0.0) / gb for s in SCALED_BY_RUNNERS if s in base["busy_s"]}
    if full and full.get("busy_s"):
        full_gb = sum(i["bytes"] for i in full["inputs"]) / 1e9
        costs.update({s: full["busy_s"][s] / full_gb for s in FROM_FULL_RUN if s in full["busy_s"]})
    return costs


def efficiencies(runners: dict, costs: dict[str, float]) -> dict[str, float]:
    """Share of each runner's worker wall time that went into stage work, on the benchmark corpus."""
    gb = runners["in_process"]["input_bytes"] / 1e9
    work = sum(costs[s] for s in SCALED_BY_RUNNERS if s in costs) * gb
    return {name: work / (WORKERS[name] * runners[name]["wall_s"]) for name in WORKERS if name in runners}


def report(runners: dict, full: dict | None, tb: float) -> str:
    costs = stage_costs(runners, full)
    eff = efficiencies(runners, costs)
    gb = tb * 1000
    total = sum(costs.values())
    lines = [f"## Scaling model: {tb:g} TB of input", "",
             f"Runner benchmark: {runners['docs']:,} documents, {runners['in_process']['input_bytes'] / 1e6:,.1f} MB, "
             f"stages {runners['stages']}, {runners['cpus']} CPUs.", "",
             "| stage | core-seconds per GB | share | measured on |", "|---|---|---|---|"]
    for stage, cost in sorted(costs.items(), key=lambda kv: -kv[1]):
        source = "runner benchmark (in-process)" if stage in SCALED_BY_RUNNERS else "full run (--full)"
        lines.append(f"| {stage} | {cost:,.0f} | {cost / total:.1%} | {source} |")
    lines += ["", "| runner | workers | wall on the benchmark | docs/s | efficiency | worker-hours, "
              "langid+quality+dedup | worker-hours, every stage |", "|---|---|---|---|---|---|---|"]
    core = sum(costs[s] for s in SCALED_BY_RUNNERS if s in costs)
    for name, e in eff.items():
        r = runners[name]
        lines.append(f"| {name} | {WORKERS[name]} | {r['wall_s']:,.0f} s | {r['docs_per_s']:,.0f} | {e:.0%} | "
                     f"{gb * core / e / 3600:,.0f} | {gb * total / e / 3600:,.0f} |")
    top = max(costs, key=costs.get)
    lines += ["", f"Most expensive stage per byte: **{top}** ({costs[top] / total:.0%} of the work).", ""]
    lines += [f"- {stage}: {note}" for stage, note in NOT_LINEAR.items() if stage in costs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runners", type=Path, required=True, help="JSON written by tools.bench.bench_runners")
    parser.add_argument("--full", type=Path, default=None, help="manifest.json of a run with every stage")
    parser.add_argument("--tb", type=float, default=1.0, help="input size to cost, in TB")
    args = parser.parse_args(argv)
    runners = json.loads(args.runners.read_text())
    full = json.loads(args.full.read_text()) if args.full else None
    print(report(runners, full, args.tb))


if __name__ == "__main__":
    main()
