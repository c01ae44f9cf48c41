"""Stage `mixture`: infer a BPE tokenizer's training mixture from its merge list (Hayase et al., 2024).

The categories are the corpus's partitions (or, from the CLI, folders of text). Counting pretokenized word
types per category is a Beam combine, so samples of any size reduce to one word table per category; the merge
replay and the linear program then run once on those tables (see mixture_apply / mixture_lp). The stage also
answers "does a tokenizer trained on our corpus reflect the mixture we built?" by pointing `merges` at it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import apache_beam as beam

from schemas.mixture import MIXTURE_SCHEMA
from transforms import fs
from transforms.config import MixtureConfig
from transforms.core import Counters, TableSpec
from transforms.mixture_apply import apply_merges
from transforms.mixture_lp import solve_mixture
from transforms.mixture_merges import (
    MergeList,
    MergeListError,
    Pretokenizer,
    check_pretokenizer,
    default_merge_list_path,
    read_merge_list,
)

STAGE = "mixture"
log = logging.getLogger("babelbeam.mixture")


@dataclass
class CategorySample:
    """What the counting pass keeps of one category: its pretoken type counts and its size."""

    words: Counter = field(default_factory=Counter)
    n_bytes: int = 0
    n_docs: int = 0

    def add(self, text: str, pretokenizer: Pretokenizer) -> None:
        self.words.update(pretokenizer(text))
        self.n_bytes += len(text.encode("utf-8"))
        self.n_docs += 1

    def merge(self, other: "CategorySample") -> "CategorySample":
        self.words.update(other.words)
        self.n_bytes += other.n_bytes
        self.n_docs += other.n_docs
        return self


def lp_options(config: MixtureConfig) -> dict:
    """`solve_mixture` keyword arguments from the stage's configuration (one mapping for the stage and tools)."""
    return dict(
        scale=config.count_scale, per_merge=config.constraints_per_merge, per_round=config.constraints_per_round,
        max_rounds=config.max_rounds, tol_occurrences=config.violation_tol, gap_tol=config.gap_tol,
        time_limit=config.time_limit_s, max_seconds=config.max_seconds, skip_unseen=config.skip_unseen_merges,
        solver=config.lp_solver, warm_solver=config.lp_warm_solver, coarse_strides=tuple(config.coarse_strides),
        phase_gap=config.phase_gap_tol, purge_after=config.purge_idle_rounds,
    )


def load_merges(config: MixtureConfig) -> MergeList:
    path = config.merges or str(default_merge_list_path())
    return read_merge_list(path, config.pretokenizer).top(config.top_merges)


def infer(samples: Mapping[str, CategorySample], merges: MergeList, config: MixtureConfig) -> dict:
    """The whole method on merged word tables: checks, merge replay, LP, byte shares -> a JSON-able report.

    Problems with the input (too few usable categories, a solver that ends without an optimum) become an
    `error` in the report rather than an exception, so a pipeline run still finishes and says why.
    """
    report: dict = {
        "tokenizer": {
            "source": merges.source, "sha256": merges.sha256, "format": merges.format,
            "pretokenizer": merges.pretokenizer.name, "merges_used": len(merges.merges),
        },
        "categories": [], "warnings": [], "error": None, "solver": None, "timing": {},
    }
    usable: dict[str, CategorySample] = {}
    for cat in sorted(samples):
        s = samples[cat]
        row = {"category": cat, "sample_bytes": s.n_bytes, "documents": s.n_docs, "word_types": len(s.words),
               "included": False, "pair_share": None, "byte_share": None, "warning": None}
        if s.n_bytes < config.min_category_bytes or not s.words:
            row["warning"] = (f"left out: {s.n_bytes} bytes of text, fewer than min_category_bytes="
                              f"{config.min_category_bytes}")
        else:
            row["included"] = True
            usable[cat] = s
            if s.n_bytes < config.warn_category_bytes:
                row["warning"] = (f"only {s.n_bytes} bytes of text (< {config.warn_category_bytes}): its share "
                                  "is unreliable, pair counts of small samples are noisy")
        if row["warning"]:
            report["warnings"].append(f"{cat}: {row['warning']}")
            log.warning("mixture: %s: %s", cat, row["warning"])
        report["categories"].append(row)
    if len(usable) < 2:
        report["error"] = (f"mixture inference needs at least 2 categories with >= {config.min_category_bytes} "
                           f"bytes of text; got {len(usable)} of {len(samples)}")
        return report
    try:
        report["tokenizer"]["pretokenizer_split_share"] = check_pretokenizer(merges)
    except MergeListError as exc:
        report["error"] = str(exc)
        return report
    trace = apply_merges({c: s.words for c, s in usable.items()}, merges, {c: s.n_bytes for c, s in usable.items()})
    total_mb = sum(s.n_bytes for s in usable.values()) / 1e6
    result = solve_mixture(trace, **lp_options(config))
    report["timing"] = {
        "apply_seconds": round(trace.apply_seconds, 3),
        "apply_mb_per_s": round(total_mb / trace.apply_seconds, 4) if trace.apply_seconds > 0 else None,
        "solve_seconds": round(result.seconds, 3),
        "sample_mb": round(total_mb, 4),
    }
    report["solver"] = {
        "solver": "HiGHS (highspy)", "status": result.status, "optimal": result.optimal,
        "objective": result.objective, "rounds": result.rounds, "constraints": result.constraints,
        "columns": result.columns, "converged": result.converged, "lower_bound": result.objective,
        "upper_bound": result.upper_bound, "gap": result.gap, "phase": result.phase, "phases": result.phases,
        "merges_with_rows": result.merges_used, "replay_seconds": round(result.replay_seconds, 3),
        "solver_seconds": round(result.solver_seconds, 3),
        "violated_last_round": result.violated_last_round, "simplex_iterations": result.simplex_iterations,
        "pairs": trace.n_pairs, "unseen_merges": int((trace.merge_pair < 0).sum()), "rounds_log": result.round_log,
    }
    if not result.optimal:
        report["error"] = f"the LP solver ended with status '{result.status}' (no optimum: shares are not reported)"
        return report
    if not result.converged:
        report["warnings"].append(
            f"stopped after {result.rounds} rounds (max_rounds={config.max_rounds}, max_seconds="
            f"{config.max_seconds}, gap_tol={config.gap_tol}) in phase {result.phase}/{result.phases} with "
            f"{result.violated_last_round} constraints still violated and a bound gap of {result.gap:.3g}: "
            "shares are those of the last solve")
    index = {c: i for i, c in enumerate(trace.categories)}
    for row in report["categories"]:
        if row["included"]:
            i = index[row["category"]]
            row["pair_share"] = float(result.alpha[i])
            row["byte_share"] = float(result.byte_shares[i])
    return report


def report_rows(report: dict) -> list[dict]:
    """The report as MIXTURE_SCHEMA rows, one per category."""
    tok, solver = report["tokenizer"], report["solver"] or {}
    return [
        {
            "category": row["category"], "byte_share": row["byte_share"], "pair_share": row["pair_share"],
            "sample_bytes": row["sample_bytes"], "word_types": row["word_types"], "included": row["included"],
            "warning": row["warning"], "tokenizer": tok["source"], "tokenizer_sha256": tok["sha256"],
            "merges_used": tok["merges_used"], "solver_status": solver.get("status"), "error": report["error"],
        }
        for row in report["categories"]
    ]


def report_stats(report: dict) -> list[tuple[tuple[str, str, str], int]]:
    stats = []
    for row in report["categories"]:
        cat = row["category"]
        stats.append(((STAGE, cat, "sample_bytes"), int(row["sample_bytes"])))
        stats.append(((STAGE, cat, "word_types"), int(row["word_types"])))
        if not row["included"]:
            stats.append(((STAGE, cat, "left_out_too_small"), 1))
        elif row["warning"]:
            stats.append(((STAGE, cat, "small_sample_warning"), 1))
    if report["error"]:
        stats.append(((STAGE, "_all", "failed"), 1))
    return stats


def plot_png(report: dict) -> bytes:
    """A horizontal bar chart of the inferred byte shares (largest on top)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((r for r in report["categories"] if r["byte_share"] is not None), key=lambda r: r["byte_share"])
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.22 * len(rows) + 1)))
    if rows:
        ax.barh([r["category"] for r in rows], [100 * r["byte_share"] for r in rows], color="#4878a8")
        ax.set_xlabel("inferred share of training bytes (%)")
    else:
        ax.text(0.5, 0.5, report["error"] or "no estimate", ha="center", va="center", wrap=True)
        ax.set_axis_off()
    name = os.path.basename(report["tokenizer"]["source"])
    ax.set_title(f"Inferred training mixture of {name} ({report['tokenizer']['merges_used']} merges)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(report: dict, output_dir: str) -> None:
    """OUTPUT/mixture/report.json and mixture.png, each written under a temporary name and renamed."""
    folder = fs.join(output_dir, "mixture")
    fs.write_atomic(fs.join(folder, "report.json"), json.dumps(report, indent=2, sort_keys=True).encode())
    fs.write_atomic(fs.join(folder, "mixture.png"), plot_png(report))


class CountWords(beam.CombineFn):
    """Documents' texts -> one CategorySample per key; merging is a sum, so bundles may split anywhere."""

    def __init__(self, pretokenizer: Pretokenizer):
        self.pretokenizer = pretokenizer
        self.counters = Counters(STAGE)

    def create_accumulator(self) -> CategorySample:
        return CategorySample()

    def add_input(self, acc: CategorySample, text: str) -> CategorySample:
        acc.add(text, self.pretokenizer)
        self.counters.inc("documents_counted")
        return acc

    def merge_accumulators(self, accumulators: Iterable[CategorySample]) -> CategorySample:
        accumulators = iter(accumulators)
        out = next(accumulators)
        for acc in accumulators:
            out.merge(acc)
        return out

    def extract_output(self, acc: CategorySample) -> CategorySample:
        return acc


class _Solve(beam.DoFn):
    """Runs once on all categories' tables: reads the merge list, infers, writes report.json and the chart."""

    def __init__(self, config: MixtureConfig, output_dir: str):
        self.config = config
        self.output_dir = output_dir
        self.counters = Counters(STAGE)

    def process(self, samples: list[tuple[str, CategorySample]]):
        started = time.perf_counter()
        report = infer(dict(samples), load_merges(self.config), self.config)
        report["timing"]["total_seconds"] = round(time.perf_counter() - started, 3)
        write_report(report, self.output_dir)
        self.counters.inc("failed" if report["error"] else "solved")
        yield report


class InferMixture(beam.PTransform):
    """Stage `mixture`: documents (grouped by `partition`) -> inferred training mixture of a tokenizer.

    Outputs: "documents" (unchanged), "mixture" (MIXTURE_SCHEMA rows) and "stats"; the JSON report and the
    bar chart go to `output_dir/mixture/`.
    """

    TABLES = {"mixture": TableSpec(MIXTURE_SCHEMA, "mixture", sort_fields=("category",))}

    def __init__(self, config: MixtureConfig, output_dir: str):
        super().__init__()
        self.config = config
        self.output_dir = output_dir
        # Read once here so that a bad merge list fails when the pipeline is built, with a clear message.
        self.pretokenizer = load_merges(config).pretokenizer

    def expand(self, documents):
        samples = (
            documents
            | "KeyByPartition" >> beam.Map(lambda d: (d.get("partition") or "und", d.get("text") or ""))
            | "CountWords" >> beam.CombinePerKey(CountWords(self.pretokenizer))
            | "AllCategories" >> beam.combiners.ToList()
            | "Sorted" >> beam.Map(sorted, key=lambda kv: kv[0])
        )
        reports = samples | "Solve" >> beam.ParDo(_Solve(self.config, self.output_dir))
        return {
            "documents": documents,
            "mixture": reports | "Rows" >> beam.FlatMap(report_rows),
            "stats": reports | "Stats" >> beam.FlatMap(report_stats),
        }
