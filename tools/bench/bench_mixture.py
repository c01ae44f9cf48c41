"""Benchmark of mixture inference at the issue's scale: T merges and n categories, one full solve.

    python -m tools.bench.bench_mixture --categories DIR --n 30 --merges 30000

Trains a byte-level BPE (HF `tokenizers`) on a random mixture of n categories, then times each part of the
inference on the categories' text: counting pretokens, replaying the merges (MB of sample per second) and the
lazy-constraint LP. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.infer_mixture import category_files
from tools.mixture_experiment import draw_bytes, load_lines, log_mse, train_bpe
from transforms.mixture_apply import apply_merges
from transforms.mixture_lp import solve_mixture
from transforms.config import MixtureConfig
from transforms.mixture import CategorySample, lp_options
from transforms.mixture_merges import read_merge_list


def _gap_milestones(result, trace, chosen, true) -> dict:
    """When the last phase's bound gap first fell to 10%, 1% and 0.1%: seconds since the LP started (at the
    end of that round's solve) and the in-sample log10 MSE of that round's shares."""
    order = [trace.categories.index(c) for c in chosen]
    out = {}
    for level in (0.1, 0.01, 0.001):
        hit = next((r for r in result.round_log if r["phase"] == result.phases and "byte_shares" in r
                    and r.get("gap", 1.0) <= level), None)
        if hit is not None:
            est = np.asarray(hit["byte_shares"])[order]
            out[str(level)] = {"round": hit["round"], "lp_seconds": hit["seconds"],
                               "log10_mse_in_sample": round(log_mse(est, true), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", type=Path, required=True)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--merges", type=int, default=30_000)
    ap.add_argument("--train-bytes", type=int, default=3_000_000)
    ap.add_argument("--min-bytes", type=int, default=15_000, help="only categories with this much text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=None, help="LP time budget (default: none)")
    ap.add_argument("--max-rounds", type=int, default=10_000, help="LP round budget (default: until converged)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    pools = {name: load_lines(files) for name, files in category_files(args.categories).items()}
    names = sorted(n for n, lines in pools.items() if sum(len(s.encode()) for s in lines) >= args.min_bytes)
    chosen = sorted(rng.choice(names, size=args.n, replace=False).tolist())
    alpha = rng.dirichlet(np.ones(args.n))
    texts, sizes = [], []
    for name, a in zip(chosen, alpha):
        part = draw_bytes(pools[name], int(round(a * args.train_bytes)), rng)
        texts += part
        sizes.append(sum(len(s.encode()) for s in part))
    true = np.asarray(sizes, float) / sum(sizes)
    out: dict = {"n": args.n, "merges_requested": args.merges, "train_bytes": sum(sizes), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train_bpe([texts[i] for i in rng.permutation(len(texts))], args.merges, Path(tmp) / "tok.json")
        out["train_seconds"] = round(time.perf_counter() - t0, 2)
        merges = read_merge_list(Path(tmp) / "tok.json")
    out["merges_learned"] = len(merges.merges)
    t0 = time.perf_counter()
    samples = {}
    for name in chosen:
        s = CategorySample()
        for line in pools[name]:
            s.add(line, merges.pretokenizer)
        samples[name] = s
    out["count_seconds"] = round(time.perf_counter() - t0, 2)
    sample_mb = sum(s.n_bytes for s in samples.values()) / 1e6
    trace = apply_merges({c: s.words for c, s in samples.items()}, merges, {c: s.n_bytes for c, s in samples.items()})
    cfg = MixtureConfig(max_seconds=args.max_seconds, max_rounds=args.max_rounds)
    result = solve_mixture(trace, **lp_options(cfg))
    est = result.byte_shares[[trace.categories.index(c) for c in chosen]]
    out.update({
        "sample_mb": round(sample_mb, 3),
        "apply_seconds": round(trace.apply_seconds, 2),
        "apply_mb_per_s": round(sample_mb / trace.apply_seconds, 3),
        "pairs": trace.n_pairs, "trace_entries": int(len(trace.step)),
        "solve_seconds": round(result.seconds, 2), "replay_seconds": round(result.replay_seconds, 2),
        "solver_seconds": round(result.solver_seconds, 2), "status": result.status, "rounds": result.rounds,
        "constraints": result.constraints, "converged": result.converged, "gap": result.gap,
        "phase": f"{result.phase}/{result.phases}",
        "full_solve_seconds": round(trace.apply_seconds + result.seconds, 2),
        "log10_mse_in_sample": round(log_mse(est, true), 3),
        "last_phase_gap_reached": _gap_milestones(result, trace, chosen, true),
    })
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
