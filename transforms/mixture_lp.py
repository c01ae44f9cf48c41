"""The mixture linear program of Hayase et al. (2024), solved with HiGHS by lazy constraint generation.

Variables: α_i ≥ 0 with Σα = 1, a slack v_t ≥ 0 per merge and v_p ≥ 0 per pair. For every merge t and pair
p ≠ m(t): Σ_i α_i (c_{i,m(t)}^{(t)} − c_{i,p}^{(t)}) + v_t + v_p ≥ 0; minimise Σ v_t + Σ v_p. There are
T × (pairs) constraints, so we replay the merges with the current α, add the pairs that beat the merge by
more than their slacks (a few per merge, the worst first), re-solve from the previous basis, and repeat until
no constraint is violated. Slack columns are created only when a constraint needs them.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import highspy
import numpy as np

from transforms.mixture_apply import PairTrace


@dataclass
class LPResult:
    status: str
    optimal: bool
    alpha: np.ndarray  # pair shares (the LP's variable), NaN when the solver did not reach an optimum
    byte_shares: np.ndarray
    objective: float
    rounds: int
    constraints: int
    columns: int
    converged: bool  # the last replay found no violated constraint
    violated_last_round: int
    seconds: float
    simplex_iterations: int
    round_log: list[dict] = field(default_factory=list)


def byte_shares(alpha: np.ndarray, trace: PairTrace) -> np.ndarray:
    """Pair shares -> byte shares: weight each category by its bytes per initial pair, renormalise."""
    per_pair = np.where(trace.pairs0 > 0, trace.n_bytes / np.maximum(trace.pairs0, 1), 0.0)
    raw = np.clip(alpha, 0, None) * per_pair
    total = raw.sum()
    return raw / total if total > 0 else raw


class _Replay:
    """Mixed pair counts Σ_i w_i c_{i,p}^{(t)} replayed over all merges, with a max-heap of them."""

    def __init__(self, trace: PairTrace):
        self.trace = trace
        self.starts, self.g_pair, self.offsets = trace.step_groups()
        self.g_pair_list = self.g_pair.tolist()
        self.offsets_list = self.offsets.tolist()
        self.merge_pair = trace.merge_pair.tolist()

    def violations(self, w: np.ndarray, v_merge: np.ndarray, v_pair: np.ndarray, per_merge: int,
                   tol: float) -> list[tuple[float, int, int]]:
        """(violation, t, pair) for up to `per_merge` pairs per merge that beat m(t) by more than the slacks."""
        tr = self.trace
        gw = np.add.reduceat(tr.count * w[tr.cat], self.starts).tolist() if len(self.starts) else []
        mixed = [0.0] * tr.n_pairs
        slack = v_pair.tolist()
        vm = v_merge.tolist()
        g_pair, offsets = self.g_pair_list, self.offsets_list
        for g in range(offsets[0], offsets[1]):
            mixed[g_pair[g]] += gw[g]
        heap = [(-(mixed[p] - slack[p]), p) for p in range(tr.n_pairs) if mixed[p] > 0]
        heapq.heapify(heap)
        found: list[tuple[float, int, int]] = []
        for t, m in enumerate(self.merge_pair):
            target = (mixed[m] if m >= 0 else 0.0) + vm[t] + tol
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
                if p != m:
                    found.append((key - target + tol, t, p))
                    hits += 1
            for item in popped:
                heapq.heappush(heap, item)
            for g in range(offsets[t + 1], offsets[t + 2]):
                p = g_pair[g]
                mixed[p] += gw[g]
                heapq.heappush(heap, (-(mixed[p] - slack[p]), p))
            if len(heap) > 4 * tr.n_pairs + 1024:
                heap = [(-(mixed[p] - slack[p]), p) for p in range(tr.n_pairs) if mixed[p] > 0]
                heapq.heapify(heap)
        return found


def solve_mixture(
    trace: PairTrace,
    *,
    scale: float = 1e6,
    per_merge: int = 10,
    per_round: int = 20_000,
    max_rounds: int = 50,
    tol: float = 1e-6,
    time_limit: float | None = None,
    max_seconds: float | None = None,
) -> LPResult:
    """Infer the category mixture from `trace`; counts are normalised per category and multiplied by `scale`.

    Normalised counts fall to ~1e-6 at late merges, under HiGHS's tolerances, hence `scale`. `tol` is the
    violation (in scaled units) below which a constraint counts as satisfied. Rounds stop after `max_rounds`
    or `max_seconds`; `converged` then says False.
    """
    started = time.perf_counter()
    n = len(trace.categories)
    norm = scale / np.maximum(trace.pairs0, 1).astype(np.float64)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    inf = highspy.kHighsInf
    h.addCols(n, np.zeros(n), np.zeros(n), np.full(n, inf), 0, np.array([], dtype=np.int32),
              np.array([], dtype=np.int32), np.array([], dtype=np.float64))
    h.addRows(1, np.array([1.0]), np.array([1.0]), n, np.array([0], dtype=np.int32),
              np.arange(n, dtype=np.int32), np.ones(n))
    merge_col: dict[int, int] = {}
    pair_col: dict[int, int] = {}
    replay = _Replay(trace)
    alpha = np.full(n, 1.0 / n)
    v_merge = np.zeros(trace.n_merges)
    v_pair = np.zeros(trace.n_pairs)
    rounds, rows, log = 0, 0, []
    status, optimal, objective, converged, last_violated, iterations = "not solved", True, 0.0, False, 0, 0
    while rounds < max_rounds and (max_seconds is None or time.perf_counter() - started < max_seconds):
        found = replay.violations(alpha * norm, v_merge, v_pair, per_merge, tol)
        last_violated = len(found)
        if not found:
            converged = True
            break
        worst = max(v for v, _, _ in found)
        found = heapq.nlargest(per_round, found)
        ts = np.array([t for _, t, _ in found], dtype=np.int64)
        ps = np.array([p for _, _, p in found], dtype=np.int64)
        ms = trace.merge_pair[ts]
        c_p = trace.at(ts, ps).astype(np.float64)
        c_m = np.where((ms >= 0)[:, None], trace.at(ts, np.maximum(ms, 0)), 0).astype(np.float64)
        coef = (c_m - c_p) * norm[None, :]
        new_cols = [("t", int(t)) for t in dict.fromkeys(ts.tolist()) if t not in merge_col]
        new_cols += [("p", int(p)) for p in dict.fromkeys(ps.tolist()) if p not in pair_col]
        if new_cols:
            base = n + len(merge_col) + len(pair_col)
            for k, (kind, idx) in enumerate(new_cols):
                (merge_col if kind == "t" else pair_col)[idx] = base + k
            k = len(new_cols)
            h.addCols(k, np.ones(k), np.zeros(k), np.full(k, inf), 0, np.array([], dtype=np.int32),
                      np.array([], dtype=np.int32), np.array([], dtype=np.float64))
        starts, index, value = [], [], []
        for r in range(len(found)):
            starts.append(len(index))
            nz = np.flatnonzero(coef[r])
            index.extend(nz.tolist())
            value.extend(coef[r, nz].tolist())
            index += [merge_col[int(ts[r])], pair_col[int(ps[r])]]
            value += [1.0, 1.0]
        k = len(found)
        h.addRows(k, np.zeros(k), np.full(k, inf), len(index), np.asarray(starts, dtype=np.int32),
                  np.asarray(index, dtype=np.int32), np.asarray(value, dtype=np.float64))
        rows += k
        h.run()
        rounds += 1
        model_status = h.getModelStatus()
        status = h.modelStatusToString(model_status)
        info = h.getInfo()
        iterations = int(info.simplex_iteration_count)
        log.append({"round": rounds, "violated": last_violated, "worst_violation": worst, "added": k,
                    "rows": rows, "status": status,
                    "objective": float(info.objective_function_value),
                    "seconds": round(time.perf_counter() - started, 3)})
        if model_status != highspy.HighsModelStatus.kOptimal:
            optimal = False
            break
        objective = float(info.objective_function_value)
        col = np.asarray(h.getSolution().col_value)
        alpha = np.clip(col[:n], 0, None)
        alpha = alpha / alpha.sum() if alpha.sum() > 0 else np.full(n, 1.0 / n)
        log[-1]["byte_shares"] = byte_shares(alpha, trace).round(6).tolist()
        for t, c in merge_col.items():
            v_merge[t] = col[c]
        for p, c in pair_col.items():
            v_pair[p] = col[c]
    if not optimal:
        alpha = np.full(n, np.nan)
    return LPResult(
        status=status if rounds else "optimal (no constraint was ever violated)",
        optimal=optimal,
        alpha=alpha,
        byte_shares=byte_shares(alpha, trace) if optimal else np.full(n, np.nan),
        objective=objective,
        rounds=rounds,
        constraints=rows,
        columns=n + len(merge_col) + len(pair_col),
        converged=converged,
        violated_last_round=last_violated if not converged else 0,
        seconds=time.perf_counter() - started,
        simplex_iterations=iterations,
        round_log=log,
    )
