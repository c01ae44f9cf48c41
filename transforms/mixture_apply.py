"""Replaying a merge list on per-category word tables, recording every pair-count change.

The linear program needs c_{i,p}^{(t)}, the count of pair p in category i after t merges, for any (t, p) it
asks about. Storing every count at every step is impossible at T = 200k, so we store the counts at t = 0 and,
for each merge, only the changes it caused: a merge of (a, b) touches only the words that contain it and, in
them, only the pairs that overlap an occurrence. Any count at any step is then a prefix sum (`PairTrace.at`).
"""

from __future__ import annotations

import time
from array import array
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from transforms.mixture_merges import MergeList


@dataclass
class PairTrace:
    """Pair-count history of all categories under one merge list.

    Entries are (step, pair, category, count) sorted by step, then pair, then category: step 0 holds the
    initial counts and step t + 1 the changes made by merge t (0-based).
    """

    categories: list[str]
    n_merges: int
    n_pairs: int
    merge_pair: np.ndarray  # (T,) pair index merged at each step; -1 when the pair never occurs in a sample
    step: np.ndarray
    pair: np.ndarray
    cat: np.ndarray
    count: np.ndarray
    pairs0: np.ndarray  # (n,) total pair count per category at t = 0
    n_bytes: np.ndarray  # (n,) bytes of sample text per category
    apply_seconds: float

    def __post_init__(self) -> None:
        n = len(self.categories)
        self._key = (self.pair.astype(np.int64) * n + self.cat) * (self.n_merges + 2) + self.step
        self._order = np.argsort(self._key, kind="stable")
        self._sorted_key = self._key[self._order]
        self._cumsum = np.concatenate([[0], np.cumsum(self.count[self._order])])

    def at(self, t: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Counts (len(t), n) of `pairs[k]` in every category before merge `t[k]` (0-based) is applied."""
        n = len(self.categories)
        t = np.asarray(t, dtype=np.int64)[:, None]
        base = (np.asarray(pairs, dtype=np.int64)[:, None] * n + np.arange(n)[None, :]) * (self.n_merges + 2)
        lo = np.searchsorted(self._sorted_key, base, side="left")
        hi = np.searchsorted(self._sorted_key, base + t, side="right")
        return self._cumsum[hi] - self._cumsum[lo]

    def step_groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(group start, group pair, step offsets): entries grouped by (step, pair) for the mixed replay."""
        new = np.ones(len(self.step), dtype=bool)
        new[1:] = (self.step[1:] != self.step[:-1]) | (self.pair[1:] != self.pair[:-1])
        starts = np.flatnonzero(new)
        offsets = np.searchsorted(self.step[starts], np.arange(self.n_merges + 2), side="left")
        return starts, self.pair[starts], offsets


def _merge_word(syms: list[int], a: int, b: int, c: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Merge every left-to-right occurrence of (a, b) into c; return the new symbols and pair changes.

    Only pairs overlapping an occurrence change: (prev, a) -> (prev', c), (a, b) disappears and (b, next)
    -> (c, next). When two occurrences touch (a b a b), the pair between them is handled once, by the
    second occurrence's left side, which becomes (c, c).
    """
    out: list[int] = []
    changes: list[tuple[int, int, int]] = []
    n = len(syms)
    i = 0
    while i < n:
        if i + 1 < n and syms[i] == a and syms[i + 1] == b:
            if i > 0:
                changes.append((syms[i - 1], a, -1))
                changes.append((out[-1], c, 1))
            changes.append((a, b, -1))
            nxt = i + 2
            if nxt < n and not (nxt + 1 < n and syms[nxt] == a and syms[nxt + 1] == b):
                changes.append((b, syms[nxt], -1))
                changes.append((c, syms[nxt], 1))
            out.append(c)
            i += 2
        else:
            out.append(syms[i])
            i += 1
    return out, changes


def base_symbols(word, byte_level: bool) -> list:
    """The units BPE starts from: single bytes, or single characters for SentencePiece-style models."""
    if byte_level:
        return [word[i:i + 1] for i in range(len(word))]
    return list(word)


def apply_merges(
    word_counts: Mapping[str, Mapping], merges: MergeList, n_bytes: Mapping[str, int] | None = None
) -> PairTrace:
    """Replay `merges` on the union of the categories' word tables and record all pair-count changes.

    `word_counts[category][pretoken] = count`. A word shared by several categories is merged once and its
    changes are credited to each category with that category's count.
    """
    started = time.perf_counter()
    categories = sorted(word_counts)
    byte_level = merges.pretokenizer.byte_level
    vocab: dict = {}

    def token_id(tok) -> int:
        tid = vocab.get(tok)
        if tid is None:
            tid = vocab[tok] = len(vocab)
        return tid

    if byte_level:
        for b in range(256):
            token_id(bytes([b]))

    cat_of_word: dict = defaultdict(list)
    for ci, cat in enumerate(categories):
        for word, cnt in word_counts[cat].items():
            if cnt > 0 and len(word) > 0:
                cat_of_word[word].append((ci, int(cnt)))
    words_sorted = sorted(cat_of_word)
    words: list[list[int]] = [[token_id(s) for s in base_symbols(w, byte_level)] for w in words_sorted]
    word_cats = [cat_of_word[w] for w in words_sorted]
    del cat_of_word

    pair_index: dict[int, int] = {}

    def pair_id(x: int, y: int) -> int:
        key = (x << 32) | y
        pid = pair_index.get(key)
        if pid is None:
            pid = pair_index[key] = len(pair_index)
        return pid

    e_step, e_pair, e_cat, e_count = array("i"), array("q"), array("i"), array("q")
    where: dict[int, set[int]] = defaultdict(set)
    init: dict[tuple[int, int], int] = defaultdict(int)
    pairs0 = np.zeros(len(categories), dtype=np.int64)
    for w, syms in enumerate(words):
        cats = word_cats[w]
        for k in range(len(syms) - 1):
            pid = pair_id(syms[k], syms[k + 1])
            where[pid].add(w)
            for ci, cnt in cats:
                init[pid, ci] += cnt
        for ci, cnt in cats:
            pairs0[ci] += cnt * (len(syms) - 1)
    _flush(init, 0, e_step, e_pair, e_cat, e_count)

    merge_pair = np.full(len(merges.merges), -1, dtype=np.int64)
    for t, (left, right) in enumerate(merges.merges):
        a, b = token_id(left), token_id(right)
        c = token_id(left + right)  # an existing string keeps its id, as HF's BPE does
        pid = pair_index.get((a << 32) | b)
        if pid is None:
            continue
        merge_pair[t] = pid
        changed: dict[tuple[int, int], int] = defaultdict(int)
        for w in where.pop(pid, ()):  # order is irrelevant: changes are summed, then sorted
            new_syms, changes = _merge_word(words[w], a, b, c)
            if not changes:
                continue  # the index is lazy: an earlier merge already consumed this occurrence
            words[w] = new_syms
            local: dict[int, int] = defaultdict(int)
            for x, y, d in changes:
                local[pair_id(x, y)] += d
            for p, d in local.items():
                if d == 0:
                    continue
                if d > 0:
                    where[p].add(w)
                for ci, cnt in word_cats[w]:
                    changed[p, ci] += d * cnt
        _flush(changed, t + 1, e_step, e_pair, e_cat, e_count)

    sizes = np.asarray([(n_bytes or {}).get(c, 0) for c in categories], dtype=np.int64)
    return PairTrace(
        categories=categories,
        n_merges=len(merges.merges),
        n_pairs=len(pair_index),
        merge_pair=merge_pair,
        step=np.frombuffer(e_step, dtype=np.int32).astype(np.int64),
        pair=np.frombuffer(e_pair, dtype=np.int64).copy(),
        cat=np.frombuffer(e_cat, dtype=np.int32).astype(np.int64),
        count=np.frombuffer(e_count, dtype=np.int64).copy(),
        pairs0=pairs0,
        n_bytes=sizes,
        apply_seconds=time.perf_counter() - started,
    )


def _flush(acc: Mapping[tuple[int, int], int], step: int, e_step, e_pair, e_cat, e_count) -> None:
    """Append one step's nonzero (pair, category) changes, sorted so that the trace stays grouped."""
    for (p, ci) in sorted(k for k, v in acc.items() if v != 0):
        e_step.append(step)
        e_pair.append(p)
        e_cat.append(ci)
        e_count.append(acc[p, ci])
