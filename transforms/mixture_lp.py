"""The mixture linear program of Hayase et al. (2024), solved with HiGHS by lazy constraint generation.

Variables: α_i ≥ 0 with Σα = 1, a slack v_t ≥ 0 per merge and v_p ≥ 0 per pair. For every merge t and pair
p ≠ m(t): Σ_i α_i (c_{i,m(t)}^{(t)} − c_{i,p}^{(t)}) + v_t + v_p ≥ 0; minimise Σ v_t + Σ v_p. There are
T × (pairs) constraints, so we replay the merges with the current α and slacks, add the pairs that still beat
the merge (a few per merge, the worst first, never one already in the model), re-solve from the previous
basis, and repeat until no constraint is violated.

Rows that stay slack with a zero dual for `purge_after` rounds are deleted (a row deleted once is kept if
it comes back), so the model holds the rows that matter rather than every row ever added: on the T = 30k,
n = 30 benchmark the model stayed at 130k–210k rows instead of growing to ~700k.

Every row is relaxed by a small ε, a fraction of one pair occurrence in the largest sample: Σ_i α_i (c_m − c_p)
+ v_t + v_p ≥ −ε. A pair may beat the merge by less than a fraction of one occurrence for free. Counts are
integers, so such differences are below what a sample can resolve, yet the exact LP (ε → 0) spends most of its
time on them. On the T = 30k, n = 30 trace ε = 0.025 occurrence took 32 s with log10 MSE −8.15; 0.01 took
159 s with −7.94; the exact LP took 824 s with −7.69.

Each replay also yields a feasible point of the *full* LP (raise every v_t by its merge's worst violation),
so every round brackets the optimum: the restricted LP's objective is a lower bound, that point's objective an
upper bound. Their relative gap is reported and can stop the rounds early.
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import highspy
import numpy as np

from transforms.mixture_apply import PairTrace

log_ = logging.getLogger("babelbeam.mixture")


@dataclass
class LPResult:
    status: str
    optimal: bool
    alpha: np.ndarray  # pair shares (the LP's variable), NaN when the solver did not reach an optimum
    byte_shares: np.ndarray
    objective: float  # of the last restricted LP: a lower bound on the full LP's optimum (scaled units)
    upper_bound: float  # objective of a feasible point of the LP (phase's merges) built from the last solution
    gap: float  # (upper_bound − objective) / upper_bound; 0 at convergence
    phase: int  # the coarse-to-fine phase reached (1-based); the bounds are the full LP's only in the last
    phases: int
    rounds: int
    constraints: int
    columns: int
    converged: bool  # the last replay found no violated constraint
    violated_last_round: int
    merges_used: int  # merges whose pair occurs in some sample at its step (the others add no constraint)
    seconds: float
    replay_seconds: float
    solver_seconds: float
    simplex_iterations: int
    tolerance: float = 0.0  # ε of the rows Σα(c_m − c_p) + v_t + v_p ≥ −ε, in scaled units
    purged: int = 0  # rows deleted from the model after staying slack (see solve_mixture)
    round_log: list[dict] = field(default_factory=list)


def byte_shares(alpha: np.ndarray, trace: PairTrace) -> np.ndarray:
    """Pair shares -> byte shares: weight each category by its bytes per initial pair, renormalise."""
    per_pair = np.where(trace.pairs0 > 0, trace.n_bytes / np.maximum(trace.pairs0, 1), 0.0)
    raw = np.clip(alpha, 0, None) * per_pair
    total = raw.sum()
    return raw / total if total > 0 else raw


def seen_merges(trace: PairTrace) -> np.ndarray:
    """(T,) bool: merge t's pair has a nonzero count in some category just before step t.

    For any other merge, c_{i,m(t)} = 0 for all i and its constraints only say v_t ≥ max_p Σα c_p − v_p: they
    carry no evidence about the mixture (the sample never saw why m(t) won) and would pull α toward whatever
    category has the flattest pair distribution, so they are left out.
    """
    ok = trace.merge_pair >= 0
    t = np.flatnonzero(ok)
    counts = trace.at(t, trace.merge_pair[t])
    ok[t] = (counts > 0).any(axis=1)
    return ok


class _Replay:
    """Mixed pair counts Σ_i w_i c_{i,p}^{(t)} replayed over all merges, with a max-heap of them."""

    def __init__(self, trace: PairTrace):
        self.trace = trace
        self.starts, self.g_pair, self.offsets = trace.step_groups()
        self.g_pair_list = self.g_pair.tolist()
        self.offsets_list = self.offsets.tolist()
        self.merge_pair = trace.merge_pair.tolist()

    def violations(self, w: np.ndarray, v_merge: np.ndarray, v_pair: np.ndarray, per_merge: int, tol: float,
                   in_model: set[int], active: list[bool]) -> tuple[list[tuple[float, int, int]], np.ndarray, int]:
        """Violated constraints not yet in the model, the worst violation per merge, and how many in-model
        constraints were violated (0 unless the solver's tolerances are off).

        A constraint (t, p) is violated when Σ_i w_i c_{i,p} − v_p > Σ_i w_i c_{i,m(t)} + v_t + tol with the
        current slacks. Up to `per_merge` such pairs per merge are returned, the worst first, with the worst
        violation per merge (beyond `tol`, as the model's rows allow `tol`).
        """
        tr = self.trace
        gw = np.add.reduceat(tr.count * w[tr.cat], self.starts).tolist() if len(self.starts) else []
        mixed = [0.0] * tr.n_pairs
        slack = v_pair.tolist()
        vm = v_merge.tolist()
        worst = np.zeros(tr.n_merges)
        g_pair, offsets = self.g_pair_list, self.offsets_list
        n_pairs = tr.n_pairs
        for g in range(offsets[0], offsets[1]):
            mixed[g_pair[g]] += gw[g]
        heap = [(-(mixed[p] - slack[p]), p) for p in range(n_pairs) if mixed[p] > 0]
        heapq.heapify(heap)
        found: list[tuple[float, int, int]] = []
        stale_in_model = 0
        for t, m in enumerate(self.merge_pair):
            if active[t]:
                target = mixed[m] + vm[t] + tol + 1e-6  # beyond the rows' bound and the solver's tolerance
                popped, hits = [], 0
                while heap and hits < per_merge:
                    neg, p = heap[0]
                    key = mixed[p] - slack[p]
                    if -neg != key:
                        heapq.heappop(heap)  # stale: the pair's count changed since this entry was pushed
                        continue
                    if key <= target:
                        break
                    popped.append(heapq.heappop(heap))
                    if p == m:
                        continue
                    worst[t] = max(worst[t], key - target)
                    if t * n_pairs + p in in_model:
                        stale_in_model += 1
                        continue
                    found.append((key - target + tol, t, p))
                    hits += 1
                for item in popped:
                    heapq.heappush(heap, item)
            for g in range(offsets[t + 1], offsets[t + 2]):
                p = g_pair[g]
                mixed[p] += gw[g]
                heapq.heappush(heap, (-(mixed[p] - slack[p]), p))
            if len(heap) > 4 * n_pairs + 1024:
                heap = [(-(mixed[p] - slack[p]), p) for p in range(n_pairs) if mixed[p] > 0]
                heapq.heapify(heap)
        return found, worst, stale_in_model


def solve_mixture(
    trace: PairTrace,
    *,
    scale: float = 1e6,
    per_merge: int = 10,
    per_round: int | None = None,
    max_rounds: int = 50,
    tol_occurrences: float = 0.03,
    gap_tol: float = 0.0,
    time_limit: float | None = None,
    max_seconds: float | None = None,
    skip_unseen: bool = True,
    solver: str = "ipm",
    warm_solver: str = "simplex",
    coarse_strides: tuple[int, ...] = (),
    phase_gap: float = 0.0,
    purge_after: int | None = None,
) -> LPResult:
    """Infer the category mixture from `trace`; counts are normalised per category and multiplied by `scale`.

    Normalised counts fall to ~1e-6 at late merges, under HiGHS's tolerances, hence `scale`. Every row is
    relaxed by ε = `tol_occurrences` occurrences of a pair in the largest sample (scaled), so the result is the
    exact optimum of that relaxed LP (`LPResult.tolerance` is ε). `per_round` caps the constraints added per
    round (None: up to `per_merge` for every merge). `coarse_strides` (e.g. (16, 4)) first solve on every 16th
    merge, then every 4th, then all: the rows found there are rows of the full LP too, and they bring α close
    to its optimum cheaply, so the dense rounds no longer jump between corners of the simplex. A coarse phase
    ends when nothing is violated or its bound gap is ≤ `phase_gap` (its job is a good start, not an exact
    optimum). `purge_after` (None: never)
    deletes rows slack for that many rounds. Rounds stop when nothing is violated, the bound gap is ≤
    `gap_tol` in the last phase, or after `max_rounds` / `max_seconds`; `converged` is True only in the first
    case. `solver` solves the first round, `warm_solver` the later ones (HiGHS: "ipm", "simplex" (dual,
    warm-started from the last basis) or "pdlp").
    """
    started = time.perf_counter()
    n = len(trace.categories)
    norm = scale / np.maximum(trace.pairs0, 1).astype(np.float64)
    tol = tol_occurrences * float(norm.min())
    active = seen_merges(trace) if skip_unseen else trace.merge_pair >= 0
    h = _quiet_highs()
    h.setOptionValue("solver", solver)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    inf = highspy.kHighsInf
    empty_i, empty_f = np.array([], dtype=np.int32), np.array([], dtype=np.float64)
    h.addCols(n, np.zeros(n), np.zeros(n), np.full(n, inf), 0, empty_i, empty_i, empty_f)
    h.addRows(1, np.array([1.0]), np.array([1.0]), n, np.array([0], dtype=np.int32),
              np.arange(n, dtype=np.int32), np.ones(n))
    merge_col = np.full(trace.n_merges, -1, dtype=np.int64)
    pair_col = np.full(trace.n_pairs, -1, dtype=np.int64)
    n_cols = n
    in_model: set[int] = set()
    # per model row i + 1 (row 0 is Σα = 1): its key t * n_pairs + p, the rounds it has been slack with a zero
    # dual, and whether it was deleted once before (it is then never deleted again)
    model_rows = {"key": np.zeros(0, np.int64), "idle": np.zeros(0, np.int64), "kept": np.zeros(0, bool)}
    purged_once: set[int] = set()
    purged = 0
    replay = _Replay(trace)
    steps = np.arange(trace.n_merges)
    phases = [(active & (steps % s == 0)).tolist() for s in sorted(set(coarse_strides) - {1}, reverse=True)]
    phases.append(active.tolist())
    phase = 0
    alpha = np.full(n, 1.0 / n)
    v_merge = np.zeros(trace.n_merges)
    v_pair = np.zeros(trace.n_pairs)
    rounds, rows, log = 0, 0, []
    status, optimal, objective, converged, last_violated, iterations = "not solved", True, 0.0, False, 0, 0
    upper, gap, replay_s, solver_s = float("inf"), float("inf"), 0.0, 0.0
    while True:
        t0 = time.perf_counter()
        found, worst, stale = replay.violations(alpha * norm, v_merge, v_pair, per_merge, tol, in_model,
                                                phases[phase])
        replay_s += time.perf_counter() - t0
        last_violated = len(found)
        upper = objective + float(worst.sum())
        gap = (upper - objective) / upper if upper > 0 else 0.0
        if log and "violated_after" not in log[-1]:
            log[-1].update(violated_after=last_violated, in_model_violated=stale, upper_bound=upper,
                           gap=round(gap, 9))
            r = log[-1]
            log_.info("mixture LP round %d (phase %d): %s rows, %s constraints violated, gap %.3f, %.1f s",
                      r["round"], r["phase"], f"{r['rows']:,}", f"{last_violated:,}", gap, r["seconds"])
        if (not found or (log and gap <= phase_gap)) and phase + 1 < len(phases):
            phase += 1  # this subset of merges is solved (or nearly): refine on the next, denser one
            log_.info("mixture LP: phase %d of %d done after %d rounds", phase, len(phases), rounds)
            continue
        if not found:
            converged, gap, upper = True, 0.0, objective
            break
        last_phase = phase + 1 == len(phases)
        if ((last_phase and gap <= gap_tol) or rounds >= max_rounds
                or (max_seconds is not None and time.perf_counter() - started >= max_seconds)):
            break
        if per_round is not None and len(found) > per_round:
            found = heapq.nlargest(per_round, found)
        ts = np.fromiter((t for _, t, _ in found), dtype=np.int64, count=len(found))
        ps = np.fromiter((p for _, _, p in found), dtype=np.int64, count=len(found))
        keys = ts * trace.n_pairs + ps
        in_model.update(keys.tolist())
        n_cols = _add_slack_cols(h, merge_col, np.unique(ts), n_cols)
        n_cols = _add_slack_cols(h, pair_col, np.unique(ps), n_cols)
        ms = trace.merge_pair[ts]
        coef = (trace.at(ts, ms) - trace.at(ts, ps)).astype(np.float64) * norm[None, :]
        k = len(ts)
        r, c = np.nonzero(coef)
        row_idx = np.concatenate([r, np.arange(k), np.arange(k)])
        col_idx = np.concatenate([c, merge_col[ts], pair_col[ps]])
        vals = np.concatenate([coef[r, c], np.ones(2 * k)])
        order = np.lexsort((col_idx, row_idx))
        starts = np.searchsorted(row_idx[order], np.arange(k)).astype(np.int32)
        h.addRows(k, np.full(k, -tol), np.full(k, inf), len(order), starts, col_idx[order].astype(np.int32),
                  vals[order])
        rows += k
        model_rows["key"] = np.concatenate([model_rows["key"], keys])
        model_rows["idle"] = np.concatenate([model_rows["idle"], np.zeros(k, np.int64)])
        model_rows["kept"] = np.concatenate([model_rows["kept"],
                                             np.fromiter((key in purged_once for key in keys.tolist()), bool, k)])
        t0 = time.perf_counter()
        h.run()
        h.setOptionValue("solver", warm_solver)  # later rounds only add rows: re-solve from this basis
        solver_s += time.perf_counter() - t0
        rounds += 1
        model_status = h.getModelStatus()
        status = h.modelStatusToString(model_status)
        info = h.getInfo()
        iterations += int(info.simplex_iteration_count)
        log.append({"round": rounds, "phase": phase + 1, "violated": last_violated, "added": k, "rows": rows,
                    "status": status, "objective": float(info.objective_function_value),
                    "seconds": round(time.perf_counter() - started, 3)})
        if model_status != highspy.HighsModelStatus.kOptimal:
            optimal = False
            break
        objective = float(info.objective_function_value)
        col = np.asarray(h.getSolution().col_value)
        alpha = np.clip(col[:n], 0, None)
        alpha = alpha / alpha.sum() if alpha.sum() > 0 else np.full(n, 1.0 / n)
        log[-1]["byte_shares"] = byte_shares(alpha, trace).round(6).tolist()
        has = merge_col >= 0
        v_merge[has] = col[merge_col[has]]
        has = pair_col >= 0
        v_pair[has] = col[pair_col[has]]
        if purge_after:
            dropped = _purge(h, model_rows, purge_after, in_model, purged_once)
            purged += dropped
            log[-1]["purged"] = dropped
    if not optimal:
        alpha = np.full(n, np.nan)
    return LPResult(
        status=status if rounds else "optimal (no constraint was ever violated)",
        optimal=optimal,
        alpha=alpha,
        byte_shares=byte_shares(alpha, trace) if optimal else np.full(n, np.nan),
        objective=objective,
        upper_bound=upper,
        gap=gap,
        rounds=rounds,
        constraints=rows,
        columns=n_cols,
        converged=converged,
        phase=phase + 1,
        phases=len(phases),
        violated_last_round=0 if converged else last_violated,
        merges_used=int(active.sum()),
        seconds=time.perf_counter() - started,
        replay_seconds=replay_s,
        solver_seconds=solver_s,
        simplex_iterations=iterations,
        tolerance=tol,
        purged=purged,
        round_log=log,
    )


def _purge(h: highspy.Highs, rows: dict[str, np.ndarray], after: int, in_model: set[int],
           purged_once: set[int]) -> int:
    """Delete rows slack (activity above 0, i.e. ε above their bound) with a zero dual for `after` rounds;
    `rows` holds per-row arrays (`key`, `idle`, `kept`: re-added after a deletion) and is trimmed in place;
    returns how many went. Deleting only pays when many go at once (HiGHS rebuilds its factorisation), so nothing
    is deleted unless a tenth of the rows qualify. A deleted row may be found violated and added again; it is
    then never deleted a second time, so rows cannot cycle in and out."""
    sol = h.getSolution()
    activity = np.asarray(sol.row_value)[1:]
    dual = np.asarray(sol.row_dual)[1:]
    rows["idle"] = np.where((activity > 0) & (np.abs(dual) < 1e-12), rows["idle"] + 1, 0)
    drop = (rows["idle"] >= after) & ~rows["kept"]
    if drop.sum() <= 0.1 * len(drop):
        return 0
    keys = rows["key"][drop].tolist()
    h.deleteRows(len(keys), (np.flatnonzero(drop) + 1).astype(np.int32))
    in_model.difference_update(keys)
    purged_once.update(keys)
    for name in rows:
        rows[name] = rows[name][~drop]
    return len(keys)


def _add_slack_cols(h: highspy.Highs, col_of: np.ndarray, needed: np.ndarray, n_cols: int) -> int:
    """Give each index in `needed` that has none a new slack column (cost 1, ≥ 0); return the column count."""
    new = needed[col_of[needed] < 0]
    if len(new):
        col_of[new] = n_cols + np.arange(len(new))
        k = len(new)
        h.addCols(k, np.ones(k), np.zeros(k), np.full(k, highspy.kHighsInf), 0, np.array([], dtype=np.int32),
                  np.array([], dtype=np.int32), np.array([], dtype=np.float64))
    return n_cols + len(new)


def _quiet_highs() -> highspy.Highs:
    """A silent HiGHS instance. Its constructor prints a banner on stdout, which would corrupt the CLIs' JSON
    output, so that one line goes to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.setOptionValue("output_flag", False)
    return h
