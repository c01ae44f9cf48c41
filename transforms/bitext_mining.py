"""kNN search, margin scoring, candidate selection and pair filters: the math of bitext mining, without Beam.

Margin (Artetxe & Schwenk 2019): for unit vectors x, y and their k nearest neighbours in the other language,
    ratio:    margin(x, y) = cos(x, y) / ((mean_k cos(x, NN(x)) + mean_k cos(y, NN(y))) / 2)
    distance: margin(x, y) = cos(x, y) - (mean_k cos(x, NN(x)) + mean_k cos(y, NN(y))) / 2
Candidates are each sentence's best neighbour by margin, in both directions; `mode` picks among them.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import faiss
import numpy as np
import regex

from transforms.text import is_punctuation_token, segment_words

# --- kNN ---------------------------------------------------------------------------------------------


def index_factory_string(n: int, dim: int, flat_max: int, pq_min: int = 1_000_000) -> str:
    """Exact search up to `flat_max` vectors; IVF over full vectors up to `pq_min`; stopes' OPQ64 + IVF + PQ64
    beyond. Between the two, PQ would save memory the shard does not need and its OPQ training costs minutes per
    shard on two cores (tools/bench/RESULTS_bitext.md)."""
    if n <= flat_max:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    nlist = max(64, min(262_144, nlist, 2 ** int(math.log2(max(n // 39, 1)))))  # >= 39 training points per list
    if n < pq_min:
        return f"IVF{nlist},Flat"
    m = 64 if dim % 64 == 0 else next(d for d in (48, 32, 24, 16, 8, 4, 2, 1) if dim % d == 0)
    return f"OPQ{m},IVF{nlist},PQ{m}"


def knn(queries: np.ndarray, db: np.ndarray, k: int, flat_max: int = 10_000, nprobe: int = 128, seed: int = 0,
        index_spec: str | None = None, pq_min: int = 1_000_000):
    """(similarities, ids) of the k best inner products of each query in `db`, best first.

    `index_spec` is a faiss index_factory string with an IVF stage; None picks by size (index_factory_string).
    Compressed (PQ) indexes search 4k candidates and re-rank them with exact inner products, so every returned
    similarity is exact; only the candidate set can miss a neighbour. Missing slots (k > len(db)) hold id -1.
    faiss's scores change in the last bit with its thread count, so the k + 2 best are scored again with one
    fixed-order dot product each and sorted by (score, id): results are the same on every runner.
    """
    nq, dim = queries.shape
    k_eff = min(k, len(db))
    sims = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    if nq == 0 or k_eff == 0:
        return sims, ids
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    db = np.ascontiguousarray(db, dtype=np.float32)
    kind = index_spec or index_factory_string(len(db), dim, flat_max, pq_min)
    wide = min(k_eff + 2, len(db))
    if kind == "Flat":
        index = faiss.IndexFlatIP(dim)
        index.add(db)
        s, i = index.search(queries, wide)
    else:
        base = faiss.index_factory(dim, kind, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(base))
        if isinstance(ivf, faiss.IndexIVFPQ):
            ivf.do_polysemous_training = False  # only speeds up code filtering; we re-rank exactly anyway
        ivf.cp.seed = seed
        # Train on a fixed-seed sample: 64 points per list is plenty for k-means and bounds OPQ's cost.
        sample = np.random.default_rng(seed).permutation(len(db))[: 64 * ivf.nlist]
        base.train(db[np.sort(sample)])
        base.add(db)
        ivf.nprobe = min(nprobe, ivf.nlist)
        index = base
        if "PQ" in kind:
            index = faiss.IndexRefineFlat(base, faiss.swig_ptr(db))
            index.k_factor = 4.0
        s, i = index.search(queries, wide)
    s = np.where(i >= 0, np.einsum("qd,qkd->qk", queries, db[np.maximum(i, 0)]), -np.inf).astype(np.float32)
    order = np.lexsort((np.where(i < 0, np.iinfo(np.int64).max, i), -s), axis=1)[:, :k_eff]
    sims[:, :k_eff] = np.take_along_axis(s, order, axis=1)
    ids[:, :k_eff] = np.take_along_axis(i, order, axis=1)
    sims[ids < 0] = -np.inf
    return sims, ids


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard top-k lists (ids already global) into the overall top-k; ties broken by smaller id."""
    sims = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)


def sharded_knn(queries: np.ndarray, db: np.ndarray, k: int, shard_size: int, flat_max: int = 10_000,
                nprobe: int = 128, index_spec: str | None = None, pq_min: int = 1_000_000):
    """kNN against `db` cut into shards of `shard_size` rows, searched one by one and merged (what the Beam
    stage does across workers)."""
    parts = []
    for start in range(0, max(len(db), 1), shard_size):
        s, i = knn(queries, db[start : start + shard_size], k, flat_max, nprobe, index_spec=index_spec,
                   pq_min=pq_min)
        parts.append((s, np.where(i >= 0, i + start, -1)))
    return merge_topk(parts, k)


# --- margin and selection ----------------------------------------------------------------------------


def neighbourhood_mean(sims: np.ndarray) -> np.ndarray:
    """Mean similarity to the k neighbours that exist (a set smaller than k averages what it has)."""
    valid = np.isfinite(sims)
    total = np.where(valid, sims, 0.0).sum(axis=1)
    return (total / np.maximum(valid.sum(axis=1), 1)).astype(np.float32)


def margin(cos: np.ndarray, mean_x: np.ndarray, mean_y: np.ndarray, kind: str = "ratio") -> np.ndarray:
    denom = (mean_x + mean_y) / 2
    if kind == "ratio":
        return cos / np.maximum(denom, 1e-6)
    if kind == "distance":
        return cos - denom
    raise ValueError(f"unknown margin {kind!r}")


@dataclass
class Candidates:
    """Each source sentence's best target by margin (fwd) and each target's best source (bwd)."""

    src: np.ndarray  # int64 indices into the source side
    tgt: np.ndarray
    cos: np.ndarray
    margin: np.ndarray
    direction: np.ndarray  # 0 fwd, 1 bwd
    second_gap: np.ndarray  # margin minus the runner-up's margin in the same neighbourhood
    position: np.ndarray  # rank of the chosen neighbour in its kNN list (per-encoder lookups)


def best_candidates(fwd, bwd, kind: str = "ratio") -> Candidates:
    """fwd = (sims, ids) of sources over targets, bwd = (sims, ids) of targets over sources."""
    (fs, fi), (bs, bi) = fwd, bwd
    mean_x, mean_y = neighbourhood_mean(fs), neighbourhood_mean(bs)
    out = []
    for direction, (s, i, mean_self, mean_other) in enumerate(((fs, fi, mean_x, mean_y), (bs, bi, mean_y, mean_x))):
        if s.shape[0] == 0:
            continue
        valid = i >= 0
        m = np.where(valid, margin(s, mean_self[:, None], mean_other[np.maximum(i, 0)], kind), -np.inf)
        order = np.argsort(-m, axis=1, kind="stable")
        best = order[:, 0]
        rows = np.arange(len(s))
        has = valid[rows, best]
        best_m = m[rows, best]
        runner = m[rows, order[:, 1]] if m.shape[1] > 1 else np.full(len(s), -np.inf)
        gap = np.where(np.isfinite(runner), best_m - runner, best_m)
        self_idx, other_idx = rows[has], i[rows, best][has]
        src, tgt = (self_idx, other_idx) if direction == 0 else (other_idx, self_idx)
        out.append((src, tgt, s[rows, best][has], best_m[has], np.full(has.sum(), direction), gap[has], best[has]))
    if not out:
        out = [tuple(np.zeros(0) for _ in range(7))]
    cols = [np.concatenate(c) for c in zip(*out)]
    return Candidates(cols[0].astype(np.int64), cols[1].astype(np.int64), cols[2].astype(np.float32),
                      cols[3].astype(np.float32), cols[4].astype(np.int8), cols[5].astype(np.float32),
                      cols[6].astype(np.int64))


def select(src: np.ndarray, tgt: np.ndarray, direction: np.ndarray, score: np.ndarray, mode: str,
           threshold: float) -> np.ndarray:
    """Indices of the chosen candidates, highest score first.

    fwd/bwd: every best candidate of that direction; intersect: pairs both directions chose; union: both
    directions' candidates, once each (no one-to-one constraint, as in stopes); max: both directions pooled,
    sorted by score and accepted greedily so that every sentence is used at most once (LASER's default).
    """
    order = np.lexsort((tgt, src, -score))  # deterministic: score, then indices
    above = order[score[order] >= threshold]
    if mode in ("fwd", "bwd"):
        return above[direction[above] == (0 if mode == "fwd" else 1)]
    keys = src.astype(np.int64) * (int(tgt.max(initial=0)) + 1) + tgt
    if mode == "intersect":
        fwd_keys = set(keys[direction == 0].tolist())
        bwd_keys = set(keys[direction == 1].tolist())
        both = fwd_keys & bwd_keys
        return _first_per_key(above, keys, both)
    if mode == "union":
        return _first_per_key(above, keys, None)
    if mode == "max":
        used_src, used_tgt, chosen = set(), set(), []
        for c in above.tolist():
            s, t = int(src[c]), int(tgt[c])
            if s in used_src or t in used_tgt:
                continue
            used_src.add(s)
            used_tgt.add(t)
            chosen.append(c)
        return np.asarray(chosen, dtype=np.int64)
    raise ValueError(f"unknown mode {mode!r}")


def _first_per_key(order: np.ndarray, keys: np.ndarray, allowed: set | None) -> np.ndarray:
    seen, chosen = set(), []
    for c in order.tolist():
        key = int(keys[c])
        if key in seen or (allowed is not None and key not in allowed):
            continue
        seen.add(key)
        chosen.append(c)
    return np.asarray(chosen, dtype=np.int64)


# --- agreement features and filters ------------------------------------------------------------------

_NUMBER = regex.compile(r"\d+(?:[.,]\d+)*")
_GROUP_SEP = regex.compile(r"(?<=\d)[,.\u00a0\u202f' ](?=\d{3}(?!\d))")
_FINAL = {"?": "?", "？": "?", "؟": "?", "!": "!", "！": "!", ".": ".", "。": ".", "।": ".", "…": "."}


def numbers_of(text: str) -> frozenset[str]:
    """Numbers written with digits (any script's digits), thousands separators removed: "3,000" == "3000"."""
    digits = "".join(str(unicodedata.digit(ch, 0)) if ch.isdigit() else ch for ch in text)
    return frozenset(m.replace(",", ".") for m in _NUMBER.findall(_GROUP_SEP.sub("", digits)))


def numbers_agree(a: str, b: str) -> bool:
    """False only when both sides write numbers with digits and the sets differ (a number may be spelt out)."""
    na, nb = numbers_of(a), numbers_of(b)
    return not (na and nb and na != nb)


def word_count(text: str) -> int:
    return sum(1 for t in segment_words(text) if not is_punctuation_token(t))


def final_punct(text: str) -> str:
    stripped = text.rstrip(" \"'”’»」』)")
    return _FINAL.get(stripped[-1:], "") if stripped else ""


def char_ngrams(text: str, n: int = 3) -> set[str]:
    t = " ".join(text.lower().split())
    return {t[i : i + n] for i in range(max(len(t) - n + 1, 1))}


def near_identical(a: str, b: str, threshold: float = 0.8) -> bool:
    """Character-trigram Jaccard above `threshold`: an untranslated copy, not a translation."""
    ga, gb = char_ngrams(a), char_ngrams(b)
    return len(ga & gb) / max(len(ga | gb), 1) >= threshold
