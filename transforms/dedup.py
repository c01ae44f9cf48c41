"""Duplicate removal: exact hashing, then MinHash LSH, then distributed connected components.

The stage never groups full documents by content. Each document is reduced once to a small fingerprint
(node key, 128-bit hash of its normalised text, MinHash signature); exact grouping, LSH bucketing, pair
verification and clustering all run on fingerprints and edges, and the keep/drop decision of each document
is joined back to it by id at the end.

Definitions (all documented in the README's dedup section):

- **Exact duplicates**: equal xxh3-128 of `normalize_for_dedup(text)`, inside one dedup group.
- **Shingles**: word n-grams (default 5) of the text segmented with `segment_words` (ICU for Chinese,
  Japanese, Thai...), punctuation tokens dropped, tokens normalised (lowercase, accents folded, numbers to
  0). Segmenting before normalising matters: folding marks first breaks Thai and Japanese words. A text with
  fewer than n words gets one shingle made of all its words; a text with no word at all gets no signature and
  is only exact-deduplicated (documents whose normalised text is empty are left alone and counted).
- **MinHash**: 64-bit xxh3 of each shingle, reduced mod p = 2^61-1, then permuted by ``(a*x + b) mod p``
  computed exactly in 64-bit numpy arithmetic (split multiplication), over whole batches of documents.
- **Dedup group**: the document's `partition` (`fra_Latn` against `fra_Latn`, as FineWeb-2) or, with
  ``per_language: false``, one group for everything.
- **Node key** ``(group, rank, id)``: ordering nodes orders candidates for "representative", so the minimum of
  a cluster *is* the document kept. ``keep`` picks rank: ``quality_then_id`` (highest quality_score, missing
  scores last, then smallest id), ``longest_then_id`` (longest text, then smallest id) or ``smallest_id``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import xxhash
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from schemas.dedup import DEDUP_INDEX_SCHEMA
from schemas.documents import rejected
from transforms import fs
from transforms.config import DedupConfig
from transforms.core import Counters, TableSpec
from transforms.text import is_punctuation_token, normalize_for_dedup, segment_words

STAGE = "dedup"
ALL_GROUP = "all"  # dedup group (and stats partition) when deduplicating across languages

MERSENNE_61 = (1 << 61) - 1
_P = np.uint64(MERSENNE_61)
_LOW31 = np.uint64((1 << 31) - 1)
_LOW30 = np.uint64((1 << 30) - 1)
_ROWS_PER_CHUNK = 1024  # shingle rows permuted at once: keeps the (rows x permutations) buffers in cache

Node = tuple[str, float, str]  # (dedup group, rank, document id); the smallest node of a cluster is kept
Fingerprint = tuple[Node, bytes, bytes]  # (node, exact hash, MinHash signature as uint64 bytes, b"" if none)

# FineWeb-2 rehydration: duplicate-cluster size -> how many times the kept document is repeated.
_REPEAT_TABLE = ((1000, 1), (100, 8), (5, 5), (4, 3))


# --- pure functions ------------------------------------------------------------------------------------


def shingle_words(text: str, script: str | None = None) -> list[str]:
    """Normalised word tokens of `text`, in order, punctuation dropped (see the module docstring)."""
    words = [t for t in segment_words(text, script) if not is_punctuation_token(t)]
    return normalize_for_dedup(" ".join(words)).split()


def exact_hash(text: str) -> bytes | None:
    """xxh3-128 of the normalised text, or None when nothing is left after normalisation."""
    normalised = normalize_for_dedup(text)
    return xxhash.xxh3_128_digest(normalised.encode()) if normalised else None


def band_layout(config: DedupConfig) -> tuple[int, int]:
    """(bands, rows). With `threshold` set, datasketch's optimiser splits the bands*rows permutations so that
    false positives and false negatives around the threshold weigh the same."""
    if config.threshold is None:
        return config.bands, config.rows
    from datasketch.lsh import _optimal_param

    return _optimal_param(config.threshold, config.bands * config.rows, 0.5, 0.5)


def lsh_threshold(bands: int, rows: int) -> float:
    """Jaccard at which the LSH collision curve is steepest: (1/b)^(1/r), about 0.72 for 14x8."""
    return (1.0 / bands) ** (1.0 / rows)


def repeat_weight(cluster_size: int) -> int:
    """FineWeb-2 rehydration weight: 1 -> 1, 2-3 -> N, 4 -> 3, 5-99 -> 5, 100-999 -> 8, >= 1000 -> 1."""
    for lower, weight in _REPEAT_TABLE:
        if cluster_size >= lower:
            return weight
    return max(cluster_size, 1)


def estimated_jaccard(sig_a: bytes, sig_b: bytes) -> float:
    """Share of equal MinHash values: an unbiased estimate of the Jaccard similarity of the shingle sets."""
    a = np.frombuffer(sig_a, dtype=np.uint64)
    b = np.frombuffer(sig_b, dtype=np.uint64)
    return float(np.count_nonzero(a == b)) / len(a)


def rank_of(doc: dict, keep: str) -> float:
    """Sort key of a document inside its cluster: smaller is kept (ties broken by id in the node key)."""
    if keep == "smallest_id":
        return 0.0
    if keep == "longest_then_id":
        return -float(len(doc.get("text") or ""))
    score = doc.get("quality_score")
    if score is None or score != score:  # missing or NaN: after every scored document
        return math.inf
    return 0.0 - float(score)  # 0.0 - x, not -x: no negative zero in keys


def dedup_group(doc: dict, per_language: bool) -> str:
    return (doc.get("partition") or "und") if per_language else ALL_GROUP


@dataclass(frozen=True)
class MinHasher:
    """Universal hashing (a*x + b) mod 2^61-1 of 64-bit shingle hashes, vectorised over documents."""

    num_perm: int
    seed: int

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(1, MERSENNE_61, size=self.num_perm, dtype=np.uint64)
        b = rng.integers(0, MERSENNE_61, size=self.num_perm, dtype=np.uint64)
        object.__setattr__(self, "_a_hi", a >> np.uint64(31))
        object.__setattr__(self, "_a_lo", a & _LOW31)
        object.__setattr__(self, "_b", b)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)

    def shingle_hashes(self, words: Sequence[str], n: int) -> np.ndarray:
        """xxh3-64 of each word n-gram (one shingle of all words when there are fewer than n)."""
        if not words:
            return np.empty(0, dtype=np.uint64)
        if len(words) < n:
            grams = [" ".join(words)]
        else:
            grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        seed = self.seed
        return np.fromiter((xxhash.xxh3_64_intdigest(g.encode(), seed) for g in grams), dtype=np.uint64, count=len(grams))

    def permute(self, hashes: np.ndarray) -> np.ndarray:
        """(len(hashes), num_perm) array of (a*x + b) mod p, x = hash mod p, exact (no 64-bit wrap-around)."""
        buffers = [np.empty((len(hashes), self.num_perm), dtype=np.uint64) for _ in range(3)]
        return self._permute_into(hashes, *buffers)

    def _permute_into(self, hashes: np.ndarray, out: np.ndarray, mid: np.ndarray, tmp: np.ndarray) -> np.ndarray:
        """`permute` written into caller-owned buffers (no allocation per chunk).

        a*x needs 122 bits, so a and x are split into 31-bit halves and the partial products folded with
        2^61 = 1 (mod p): every intermediate stays below 2^64.
        """
        n = len(hashes)
        out, mid, tmp = out[:n], mid[:n], tmp[:n]
        x = (hashes & _P) + (hashes >> np.uint64(61))
        x = np.minimum(x, x - _P)  # x < p (uint64 wrap makes the subtraction huge when x < p)
        x_hi = (x >> np.uint64(31))[:, None]
        x_lo = (x & _LOW31)[:, None]
        np.multiply(x_lo, self._a_lo, out=out)  # < 2^62
        np.multiply(x_hi, self._a_lo, out=mid)
        np.multiply(x_lo, self._a_hi, out=tmp)
        mid += tmp  # < 2^62
        np.multiply(x_hi, self._a_hi, out=tmp)  # < 2^60; its weight 2^62 = 2 (mod p)
        tmp <<= np.uint64(1)
        out += tmp
        np.right_shift(mid, np.uint64(30), out=tmp)  # mid * 2^31 = (mid >> 30) * 2^61 + (mid & 2^30-1) * 2^31
        out += tmp
        mid &= _LOW30
        mid <<= np.uint64(31)
        out += mid
        out += self._b  # < 2^63 + 2^61: no overflow
        np.right_shift(out, np.uint64(61), out=tmp)
        out &= _P
        out += tmp  # < 2^61 + 8 < 2p
        np.subtract(out, _P, out=tmp)
        return np.minimum(out, tmp, out=out)

    def signatures(self, hash_lists: Sequence[np.ndarray]) -> np.ndarray:
        """(len(hash_lists), num_perm) MinHash signatures; every list must be non-empty."""
        lengths = np.fromiter((len(h) for h in hash_lists), dtype=np.int64, count=len(hash_lists))
        if len(lengths) and lengths.min() == 0:
            raise ValueError("every document needs at least one shingle")
        sigs = np.full((len(hash_lists), self.num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
        if not len(hash_lists):
            return sigs
        flat = np.concatenate(hash_lists)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        rows = min(_ROWS_PER_CHUNK, len(flat))
        buffers = [np.empty((rows, self.num_perm), dtype=np.uint64) for _ in range(3)]
        for lo in range(0, len(flat), _ROWS_PER_CHUNK):
            hi = min(lo + _ROWS_PER_CHUNK, len(flat))
            # Documents overlapping rows [lo, hi): their first row inside the chunk starts each segment.
            first = int(np.searchsorted(starts, lo, side="right")) - 1
            last = int(np.searchsorted(starts, hi, side="left"))
            seg = np.maximum(starts[first:last], lo) - lo
            mins = np.minimum.reduceat(self._permute_into(flat[lo:hi], *buffers), seg, axis=0)
            np.minimum(sigs[first:last], mins, out=sigs[first:last])
        return sigs


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One 64-bit hash per band of `rows` consecutive MinHash values."""
    data = signature[: bands * rows].tobytes()
    width = rows * 8
    return [xxhash.xxh3_64_intdigest(data[i * width : (i + 1) * width]) for i in range(bands)]


def _distinct_neighbours(node: Node, neighbours: Iterable[Node]) -> set[Node]:
    distinct = set(neighbours)
    distinct.discard(node)
    return distinct


def large_star(node: Node, neighbours: Iterable[Node]) -> tuple[list[tuple[Node, Node]], bool]:
    """Kiveris et al. large-star at `node`: every larger neighbour is attached to the smallest node of the
    closed neighbourhood. Returns (edges, changed); nothing changes when `node` is that minimum."""
    distinct = _distinct_neighbours(node, neighbours)
    smallest = min(min(distinct, default=node), node)
    larger = [v for v in distinct if v > node]
    return [(smallest, v) for v in larger], bool(larger) and smallest < node


def small_star(node: Node, neighbours: Iterable[Node]) -> tuple[list[tuple[Node, Node]], bool]:
    """Kiveris et al. small-star at `node`: `node` and its smaller neighbours are attached to the smallest of
    them. Returns (edges, changed); nothing changes when `node` has at most one smaller neighbour."""
    smaller = [v for v in _distinct_neighbours(node, neighbours) if v < node]
    if not smaller:
        return [], False
    smallest = min(smaller)
    return [(smallest, node)] + [(smallest, v) for v in smaller if v != smallest], len(smaller) > 1


# --- Beam: signatures ---------------------------------------------------------------------------------


class _FingerprintBatch(beam.DoFn):
    def __init__(self, config: DedupConfig):
        self.config = config

    def setup(self) -> None:
        bands, rows = band_layout(self.config)
        self.hasher = MinHasher(bands * rows, self.config.seed)
        self.counters = Counters(STAGE)

    def process(self, docs: list[dict]) -> Iterator:
        config = self.config
        pending: list[tuple[Node, bytes]] = []
        hash_lists: list[np.ndarray] = []
        for doc in docs:
            text = doc.get("text") or ""
            group = dedup_group(doc, config.per_language)
            key = exact_hash(text)
            node = (group, rank_of(doc, config.keep), doc["id"])
            if key is None:
                self.counters.inc("empty_text")
                yield pvalue.TaggedOutput("stats", ((STAGE, group, "empty_text"), 1))
                continue
            hashes = self.hasher.shingle_hashes(shingle_words(text, doc.get("script")), config.ngram)
            if len(hashes):
                pending.append((node, key))
                hash_lists.append(hashes)
            else:
                yield node, key, b""
        sigs = self.hasher.signatures(hash_lists)
        for (node, key), sig in zip(pending, sigs):
            yield node, key, sig.tobytes()


class MinHashSignatures(beam.PTransform):
    """Documents -> fingerprints (node, exact hash, MinHash signature bytes), computed in numpy batches.

    Outputs ``fingerprints`` and ``stats``. Documents whose normalised text is empty get no fingerprint.
    """

    def __init__(self, config: DedupConfig):
        super().__init__()
        self.config = config

    def expand(self, documents):
        out = (
            documents
            | "Batch" >> beam.BatchElements(min_batch_size=16, max_batch_size=512)
            | "Fingerprint" >> beam.ParDo(_FingerprintBatch(self.config)).with_outputs("stats", main="fingerprints")
        )
        return {"fingerprints": out.fingerprints, "stats": out.stats}


# --- Beam: exact dedup --------------------------------------------------------------------------------


class _ExactGroup(beam.CombineFn):
    """Per exact hash: the smallest fingerprint (the representative) and every member node.

    A combiner rather than a GroupByKey, so that copies inside one bundle are merged before the shuffle and
    only one signature per hash travels.
    """

    def create_accumulator(self):
        return None, []

    def add_input(self, acc, fp: Fingerprint):
        best, nodes = acc
        nodes.append(fp[0])
        return (fp if best is None or fp[0] < best[0] else best), nodes

    def merge_accumulators(self, accs):
        best, nodes = None, []
        for other, other_nodes in accs:
            nodes.extend(other_nodes)
            if other is not None and (best is None or other[0] < best[0]):
                best = other
        return best, nodes

    def extract_output(self, acc):
        return acc


def _split_exact(item) -> Iterator:
    _, (best, nodes) = item
    yield best
    if len(nodes) > 1:
        rep = best[0]
        yield pvalue.TaggedOutput("stats", ((STAGE, rep[0], "exact_groups"), 1))
        for node in nodes:
            yield pvalue.TaggedOutput("members", (rep, node))


class ExactDedup(beam.PTransform):
    """Fingerprints -> one representative fingerprint per (group, exact hash).

    Outputs ``unique`` (the representatives' fingerprints), ``members`` ((representative node, member node)
    for every member of a group of two or more, the representative included) and ``stats``.
    """

    def expand(self, fingerprints):
        out = (
            fingerprints
            | "KeyByHash" >> beam.Map(lambda fp: ((fp[0][0], fp[1]), fp))
            | "Group" >> beam.CombinePerKey(_ExactGroup())
            | "Split" >> beam.FlatMap(_split_exact).with_outputs("members", "stats", main="unique")
        )
        return {"unique": out.unique, "members": out.members, "stats": out.stats}


# --- Beam: LSH banding and verification --------------------------------------------------------------


class _BandKeys(beam.DoFn):
    def __init__(self, bands: int, rows: int):
        self.bands, self.rows = bands, rows

    def process(self, fp: Fingerprint) -> Iterator:
        node, _, sig = fp
        if not sig:
            return
        for band, key in enumerate(band_keys(np.frombuffer(sig, dtype=np.uint64), self.bands, self.rows)):
            yield (node[0], band, key), node


def _bucket_edges(item) -> Iterator[tuple[Node, Node]]:
    """A bucket of k documents gives k-1 edges to its smallest node (a star, not k^2 pairs)."""
    _, members = item
    anchor = min(members)
    for node in members:
        if node != anchor:
            yield anchor, node


def _candidate_stat(edge: tuple[Node, Node]):
    return (STAGE, edge[0][0], "candidate_pairs"), 1


class LSHBanding(beam.PTransform):
    """Unique fingerprints -> distinct candidate edges (u, v), u < v, from shared (band, band-hash) buckets.

    Outputs ``edges`` and ``stats`` (candidate_pairs per group).
    """

    def __init__(self, bands: int, rows: int):
        super().__init__()
        self.bands, self.rows = bands, rows

    def expand(self, fingerprints):
        edges = (
            fingerprints
            | "BandKeys" >> beam.ParDo(_BandKeys(self.bands, self.rows))
            | "Bucket" >> beam.GroupByKey()
            | "StarEdges" >> beam.FlatMap(_bucket_edges)
            | "Distinct" >> beam.Distinct()
        )
        return {"edges": edges, "stats": edges | "Count" >> beam.Map(_candidate_stat)}


def _attach_second(item) -> Iterator:
    """Keyed by v: (u, (v, signature of v)) for every candidate edge (u, v)."""
    node, grouped = item
    for sig in grouped["sig"]:
        for other in grouped["pairs"]:
            yield other, (node, sig)


def _check_pairs(item, threshold: float) -> Iterator:
    """Keyed by u: keep (u, v) when the estimated Jaccard of their signatures reaches the threshold."""
    node, grouped = item
    for sig in grouped["sig"]:
        for other, other_sig in grouped["pairs"]:
            if estimated_jaccard(sig, other_sig) >= threshold:
                yield node, other
                yield pvalue.TaggedOutput("stats", ((STAGE, node[0], "verified_pairs"), 1))
            else:
                yield pvalue.TaggedOutput("stats", ((STAGE, node[0], "false_positive_pairs"), 1))


class VerifyPairs(beam.PTransform):
    """Keeps the candidate edges whose MinHash-estimated Jaccard reaches `threshold`.

    Two joins by node attach both signatures to each edge, so no worker holds more than one node's edges.
    Input: a dict {"edges": (u, v) pairs, "fingerprints": unique fingerprints}. Outputs ``edges``, ``stats``.
    """

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def expand(self, inputs):
        sigs = inputs["fingerprints"] | "Sigs" >> beam.Map(lambda fp: (fp[0], fp[2]))
        by_v = inputs["edges"] | "ByV" >> beam.Map(lambda e: (e[1], e[0]))
        with_v = (
            {"sig": sigs, "pairs": by_v}
            | "JoinV" >> beam.CoGroupByKey()
            | "AttachV" >> beam.FlatMap(_attach_second)
        )
        out = (
            {"sig": sigs, "pairs": with_v}
            | "JoinU" >> beam.CoGroupByKey()
            | "Check" >> beam.FlatMap(_check_pairs, self.threshold).with_outputs("stats", main="edges")
        )
        return {"edges": out.edges, "stats": out.stats}


# --- Beam: connected components ----------------------------------------------------------------------


def _both_directions(edge: tuple[Node, Node]) -> Iterator[tuple[Node, Node]]:
    yield edge
    yield edge[1], edge[0]


def _orient(edge: tuple[Node, Node]) -> Iterator[tuple[Node, Node]]:
    u, v = edge
    if u != v:
        yield (u, v) if u < v else (v, u)


class _Star(beam.DoFn):
    """One star step per node. Whether the step changed anything is reported once per bundle (not per
    node), so the convergence side input stays a handful of elements."""

    def __init__(self, step):
        self.step = step

    def start_bundle(self) -> None:
        self.changed = False

    def process(self, item) -> Iterator:
        edges, changed = self.step(*item)
        self.changed |= changed
        yield from edges

    def finish_bundle(self) -> Iterator:
        if self.changed:
            yield pvalue.TaggedOutput("changed", WindowedValue(True, MIN_TIMESTAMP, [GlobalWindow()]))


class _Route(beam.DoFn):
    """Before a round: once the previous round changed nothing, every edge is final and skips the round,
    so the rounds left in the fixed-size graph run on empty input. After the last round, edges still
    changing mean `max_rounds` was too small: that is raised, never returned as a wrong clustering."""

    def __init__(self, last: bool, max_rounds: int):
        self.last, self.max_rounds = last, max_rounds

    def process(self, edge, changed: Iterable[bool]) -> Iterator:
        if not any(changed):
            yield pvalue.TaggedOutput("final", edge)
        elif self.last:
            raise RuntimeError(
                f"dedup: connected components did not converge in max_rounds={self.max_rounds} rounds; "
                "raise dedup.max_rounds"
            )
        else:
            yield edge


def _rounds_stat(rounds: int):
    return (STAGE, ALL_GROUP, "cc_rounds"), rounds


class ConnectedComponents(beam.PTransform):
    """Edges (u, v) -> (node, root) for every non-root node, root = the smallest node of its component.

    Alternating large-star / small-star rounds (Kiveris et al., "Connected Components in MapReduce and
    Beyond", 2014), each step a GroupByKey on node, so a worker only ever holds one node's neighbourhood.
    A round that changes no edge proves convergence: the graph is then a set of stars, each centred on its
    component's minimum. Beam graphs are static, so `max_rounds` rounds are built; the rounds after
    convergence receive no edges and cost only their scheduling. A path of 10^5 nodes needs about 15
    rounds. Outputs ``labels`` and ``stats`` (cc_rounds: rounds that changed the graph).
    """

    def __init__(self, max_rounds: int):
        super().__init__()
        self.max_rounds = max_rounds

    def expand(self, edges):
        active = edges | "Orient" >> beam.FlatMap(_orient)
        finals, round_flags = [], []
        changed = None
        for r in range(self.max_rounds + 1):
            if changed is not None:
                routed = active | f"Route{r}" >> beam.ParDo(
                    _Route(r == self.max_rounds, self.max_rounds), pvalue.AsIter(changed)
                ).with_outputs("final", main="active")
                finals.append(routed.final)
                active = routed.active
            if r == self.max_rounds:
                break
            flags = []
            for name, step in (("Large", large_star), ("Small", small_star)):
                out = (
                    active
                    | f"{name}Both{r}" >> beam.FlatMap(_both_directions)
                    | f"{name}Group{r}" >> beam.GroupByKey()
                    | f"{name}Star{r}" >> beam.ParDo(_Star(step)).with_outputs("changed", main="edges")
                )
                active = out.edges
                flags.append(out.changed)
            changed = flags | f"Changed{r}" >> beam.Flatten()
            round_flags.append(changed | f"Round{r}" >> beam.Map(lambda _, r=r: r + 1))
        labels = (
            finals
            | "Finals" >> beam.Flatten()
            | "Dedupe" >> beam.Distinct()
            | "Label" >> beam.Map(lambda e: (e[1], e[0]))
        )
        rounds = (
            round_flags
            | "AllRounds" >> beam.Flatten()
            | "LastRound" >> beam.CombineGlobally(max).without_defaults()
            | "RoundsStat" >> beam.Map(_rounds_stat)
        )
        return {"labels": labels, "stats": rounds}


# --- Beam: decisions and the stage ---------------------------------------------------------------------


def _assign(item) -> Iterator:
    """Keyed by an exact representative: send it and its exact copies to their component's root."""
    rep, grouped = item
    roots = list(grouped["root"])
    root = roots[0] if roots else rep
    members = list(grouped["members"]) or [rep]
    for member in members:
        yield root, (member, rep)


def _decide(item) -> Iterator:
    """Keyed by a cluster root: every member gets the kept id and the cluster size (exact copies included).

    A root with no exact copy has no label of its own (labels list non-root nodes only): it is added here.
    """
    root, members = item
    has_root = False
    size = 0
    for member, _ in members:
        size += 1
        has_root |= member == root
    size += not has_root
    if size < 2:
        return
    yield pvalue.TaggedOutput("stats", ((STAGE, root[0], "clusters"), 1))
    if not has_root:
        yield root[2], (root[2], size, "keep", "")
    for member, rep in members:
        if member == root:
            status, detail = "keep", ""
        elif member != rep:
            status, detail = "exact_duplicate", f"exact copy of {rep[2]}; cluster of {size}"
        else:
            status, detail = "near_duplicate", f"near duplicate in a cluster of {size}"
        yield member[2], (root[2], size, status, detail)


class _Apply(beam.DoFn):
    def __init__(self, repeat_weights: bool, index: bool):
        self.repeat_weights = repeat_weights
        self.index = index

    def setup(self) -> None:
        self.counters = Counters(STAGE)

    def process(self, item) -> Iterator:
        doc_id, grouped = item
        decisions = sorted(grouped["decision"])
        docs = list(grouped["doc"])
        if len(docs) > 1:
            self.counters.inc("repeated_id")
            yield pvalue.TaggedOutput("stats", ((STAGE, docs[0].get("partition") or "und", "repeated_id"), 1))
        root_id, size, status, detail = decisions[0] if decisions else (doc_id, 1, "keep", "")
        if self.index and status == "keep" and docs:
            for node, key, sig in grouped["fingerprint"]:
                yield pvalue.TaggedOutput("index", {"group": node[0], "id": doc_id, "exact_hash": key,
                                                    "signature": sig})
        for doc in docs:
            if status == "keep":
                out = dict(doc, dup_cluster_id=root_id, dup_cluster_size=size)
                if self.repeat_weights:
                    out["repeat_weight"] = repeat_weight(size)
                yield out
                continue
            self.counters.inc(status)
            yield pvalue.TaggedOutput("stats", ((STAGE, doc.get("partition") or "und", status), 1))
            yield pvalue.TaggedOutput("rejected", rejected(doc, STAGE, status, detail, duplicate_of=root_id))


class Dedup(beam.PTransform):
    """The dedup stage: exact hashing, MinHash LSH, optional pair verification, connected components.

    Input: documents (dicts with the DOCUMENT_SCHEMA keys). Outputs ``documents`` (one per cluster, with
    dup_cluster_id = kept id, dup_cluster_size and, with `repeat_weights`, repeat_weight), ``rejected``
    (reason exact_duplicate / near_duplicate, duplicate_of = the kept id) and ``stats``.
    """

    def __init__(self, config: DedupConfig | None = None, earlier_index: Sequence[str] = (),
                 write_index: bool = False):
        super().__init__()
        self.config = config or DedupConfig()
        self.earlier_index = sorted(earlier_index)
        self.write_index = write_index
        self.TABLES = {"index": TableSpec(DEDUP_INDEX_SCHEMA, "dedup_index", partition_field="group",
                                          sort_fields=("id",))} if write_index else {}

    def expand(self, documents):
        config = self.config
        bands, rows = band_layout(config)
        signed = documents | "Signatures" >> MinHashSignatures(config)
        stats = [signed["stats"]]
        fingerprints = signed["fingerprints"]
        if self.earlier_index:
            earlier = (
                documents.pipeline
                | "EarlierIndex" >> beam.Create(self.earlier_index)
                | "ReadIndex" >> beam.FlatMap(read_earlier_index)
            )
            fingerprints = (fingerprints, earlier) | "WithEarlier" >> beam.Flatten()
        if config.exact:
            exact = fingerprints | "Exact" >> ExactDedup()
            unique, members = exact["unique"], exact["members"]
            stats.append(exact["stats"])
        else:
            unique = fingerprints
            members = documents.pipeline | "NoMembers" >> beam.Create([])
        lsh = unique | "LSH" >> LSHBanding(bands, rows)
        edges = lsh["edges"]
        stats.append(lsh["stats"])
        if config.verify_jaccard is not None:
            verified = {"edges": edges, "fingerprints": unique} | "Verify" >> VerifyPairs(config.verify_jaccard)
            edges = verified["edges"]
            stats.append(verified["stats"])
        components = edges | "Components" >> ConnectedComponents(config.max_rounds)
        stats.append(components["stats"])
        decided = (
            {"members": members, "root": components["labels"]}
            | "JoinRoots" >> beam.CoGroupByKey()
            | "Assign" >> beam.FlatMap(_assign)
            | "ByRoot" >> beam.GroupByKey()
            | "Decide" >> beam.FlatMap(_decide).with_outputs("stats", main="decisions")
        )
        stats.append(decided.stats)
        joined = {"doc": documents | "KeyById" >> beam.Map(lambda d: (d["id"], d)), "decision": decided.decisions}
        if self.write_index:
            joined["fingerprint"] = signed["fingerprints"] | "FingerprintById" >> beam.Map(lambda fp: (fp[0][2], fp))
        applied = (
            joined
            | "JoinDocs" >> beam.CoGroupByKey()
            | "Apply" >> beam.ParDo(_Apply(config.repeat_weights, self.write_index)).with_outputs(
                "rejected", "stats", "index", main="documents")
        )
        stats.append(applied.stats)
        result = {
            "documents": applied.documents,
            "rejected": applied.rejected,
            "stats": stats | "AllStats" >> beam.Flatten() | "SumStats" >> beam.CombinePerKey(sum),
        }
        if self.write_index:
            result["index"] = applied.index
        return result


def read_earlier_index(path: str) -> Iterator[Fingerprint]:
    """Fingerprints of documents kept by earlier runs. Their rank is -inf: an earlier document is always the
    one its cluster keeps, so a new copy of something already published is removed, never the other way."""
    import pyarrow.parquet as pq

    with fs.open_read(path) as handle:
        rows = pq.read_table(handle).to_pylist()
    for row in rows:
        yield (row["group"], -math.inf, row["id"]), row["exact_hash"], row["signature"]
