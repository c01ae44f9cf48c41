"""Stage `bitext`: mine translation pairs out of the kept documents (issue 6).

    documents -> SplitSentences -> LID per sentence -> sentence dedup per partition
              -> Embed (each sentence once per encoder its pairs need; pairs planned from the partitions present)
              -> kNN grid: cell (pair, src shard, tgt shard) searches both directions; top-k merged across shards
              -> per pair: margins, agreement features, calibrated scorer, `mode` selection, filters -> bitext rows

The pure math lives in transforms/bitext_mining.py and transforms/bitext_scoring.py; `mine_embeddings` runs
the same computation in one process (evaluation tools, tests) and the Beam graph distributes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import xxhash

from schemas.bitext import BITEXT_SCHEMA
from transforms.accounting import Progress
from transforms.bitext_encoders import encoder_languages, get_encoder, macro_language, word_encoder
from transforms.bitext_mining import (
    best_candidates,
    knn,
    near_identical,
    numbers_agree,
    select,
    sharded_knn,
    word_count,
)
from transforms.bitext_scoring import (
    SideInfo,
    candidate_features,
    encoder_set_name,
    feature_names,
    has_metric,
    load_calibration,
    scoring_rule,
)
from transforms.bitext_segment import split_sentences
from transforms.config import BitextConfig
from transforms.core import Counters, TableSpec
from transforms.text import safe_path_component

STAGE = "bitext"
FILTERS = ("lid", "near_identical", "numbers", "length_ratio", "duplicate")

# --- planning ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairPlan:
    src: str  # partition, e.g. fra_Latn
    tgt: str
    src_lang: str
    tgt_lang: str
    encoders: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{safe_path_component(self.src)}-{safe_path_component(self.tgt)}"


def pair_encoders(config: BitextConfig, lang_a: str, lang_b: str) -> tuple[str, ...]:
    """Encoders that cover both languages: all of them when combining, else the first one listed."""
    a, b = macro_language(lang_a), macro_language(lang_b)
    covering = tuple(
        e for e in config.encoders if {a, b} <= encoder_languages(e, config.encoder_languages)
    )
    return covering if config.combine_encoders else covering[:1]


def plan_pairs(partitions: dict[str, str], config: BitextConfig) -> list[PairPlan]:
    """Pairs to mine among the partitions present ({partition: language}); `und` is never mined.

    English pivot (default): every other partition against every pivot partition. pivot=None: every pair of
    partitions of different languages. A pair no encoder covers is not planned.
    """
    usable = {p: l for p, l in sorted(partitions.items()) if l and l != "und"}
    if config.pivot:
        pivot = macro_language(config.pivot)
        pairs = [(s, t) for s in usable for t in usable
                 if macro_language(usable[t]) == pivot and macro_language(usable[s]) != pivot]
    else:
        pairs = [(s, t) for s in usable for t in usable
                 if s < t and macro_language(usable[s]) != macro_language(usable[t])]
    plans = []
    for s, t in pairs:
        encoders = pair_encoders(config, usable[s], usable[t])
        if encoders:
            plans.append(PairPlan(s, t, usable[s], usable[t], encoders))
    return plans


def n_shards(count: int, shard_size: int) -> int:
    """kNN index shards of a partition of `count` sentences."""
    return math.ceil(count / shard_size)


def cell_groups(plans: list[PairPlan], counts: dict[str, int], shard_size: int) -> dict[tuple[str, int], str]:
    """Which kNN cell group each source shard (plan name, shard) joins.

    Pairs that share a target partition and an encoder set (every language against English, in pivot mode) share
    that target's vectors: each group holds source shards of up to `shard_size` sentences in all, and each target
    sentence is sent once per group instead of once per pair and source shard."""
    units: dict[tuple[str, tuple[str, ...]], list[tuple[str, int, int]]] = {}
    for plan in sorted(plans, key=lambda p: p.name):
        n = n_shards(counts[plan.src], shard_size)
        units.setdefault((plan.tgt, plan.encoders), []).extend(
            (plan.name, a, math.ceil(counts[plan.src] / n)) for a in range(n))
    out = {}
    for (tgt, encoders), members in sorted(units.items()):
        group, filled = 0, 0
        for name, a, size in members:
            if filled and filled + size > shard_size:
                group, filled = group + 1, 0
            filled += size
            out[(name, a)] = f"{tgt}|{encoder_set_name(encoders)}|{group}"
    return out


def combination_weights(encoders: tuple[str, ...], calibration: dict) -> np.ndarray:
    table = calibration.get("combination_weights", {})
    w = np.array([float(table.get(e, 1.0)) for e in encoders])
    return w / w.sum()


def combine(vectors: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Concatenate unit vectors scaled by sqrt(weight): the combined cosine is the weighted mean cosine."""
    return np.concatenate([v * np.sqrt(w) for v, w in zip(vectors, weights)], axis=1).astype(np.float32)


def encoder_cosines(queries: np.ndarray, db: np.ndarray, ids: np.ndarray, dims: list[int],
                    weights: np.ndarray, metric: list[np.ndarray] | None = None) -> np.ndarray:
    """(n_queries, k, n_encoders) cosine of each single encoder for every listed neighbour (NaN if none).

    With `metric` (per-encoder dimension weights of the learned scorer), n_encoders more channels follow: the
    weighted dot products sum_i w_i u_i v_i of the same neighbours (bitext_scoring.fit_scorer)."""
    out = np.full(ids.shape + (len(dims) * (2 if metric else 1),), np.nan, dtype=np.float32)
    if ids.size == 0:
        return out
    neighbours = db[np.maximum(ids, 0)]  # (nq, k, D)
    start = 0
    for e, (dim, w) in enumerate(zip(dims, weights)):
        q, d = queries[:, start : start + dim], neighbours[:, :, start : start + dim]
        out[:, :, e] = np.where(ids >= 0, np.einsum("qd,qkd->qk", q, d) / w, np.nan)
        if metric:
            out[:, :, len(dims) + e] = np.where(ids >= 0, np.einsum("qd,qkd->qk", q * metric[e], d) / w, np.nan)
        start += dim
    return out


# --- scoring one pair (shared by the Beam stage and mine_embeddings) ---------------------------------


@dataclass
class Mined:
    src: np.ndarray
    tgt: np.ndarray
    cos: np.ndarray
    margin: np.ndarray
    score: np.ndarray
    candidates: int
    filtered: dict[str, int]


LID_TOP_K = 5


def sentence_lid(identifier, texts: list[str], languages: list[str]) -> list[tuple[str, float, float]]:
    """(top language, its probability, probability of the expected language among the top LID_TOP_K) per
    sentence. The third value lets a sentence of a close language (Malay read as Indonesian, Bokmal as Danish,
    Galician as Portuguese) pass where LID still gives its own language some weight."""
    out = []
    for top, language in zip(identifier.top(texts, LID_TOP_K), languages):
        if not top:
            out.append(("und", 0.0, 0.0))
            continue
        expected = macro_language(language)
        out.append((top[0][0], top[0][1], sum((p for l, p in top if macro_language(l) == expected), 0.0)))
    return out


def lid_ok(lid: list[tuple[str, float, float]], language: str, reject_score: float, min_expected: float) -> np.ndarray:
    """LID probability of the expected language when LID names it; 0 (the side fails) when LID names another
    language with >= reject_score and gives the expected one < min_expected; else 1e-3 (uncertain)."""
    expected = macro_language(language)
    out = np.empty(len(lid), np.float32)
    for i, (label, score, p_expected) in enumerate(lid):
        if macro_language(label) == expected:
            out[i] = max(score, 1e-3)
        else:
            out[i] = 0.0 if score >= reject_score and p_expected < min_expected else 1e-3
    return out


def side_info(texts: list[str], lid: list[tuple[str, float, float]], language: str, config: BitextConfig) -> SideInfo:
    return SideInfo(texts, np.array([word_count(t) for t in texts], dtype=np.float32),
                    lid_ok(lid, language, config.lid_reject_score, config.lid_min_expected), language)


def score_candidates(fwd, bwd, fwd_enc, bwd_enc, src: SideInfo, tgt: SideInfo, encoders: tuple[str, ...],
                     config: BitextConfig, calibration: dict, features: bool = False):
    """Best candidates of both directions, their features and scores under the calibrated rule.

    The features are computed only when the rule's scorer reads them, or when the caller asks (`features`, for
    evaluation: then for every candidate); otherwise the second item is None. Words are embedded only for the
    candidates the scorer's prefilter does not rule out."""
    cands = best_candidates(fwd, bwd, config.margin)
    rule = scoring_rule(encoders, src.language, tgt.language, config.margin, config.scorer == "learned",
                        config.threshold, calibration)
    feats = None
    if features or rule.scorer is not None:
        feats = candidate_features(cands, fwd_enc, bwd_enc, encoders, src, tgt, config.margin, calibration,
                                   lambda e: word_encoder(e, config.device, config.encoder_threads),
                                   None if features else rule.scorer.screen)
    names = feature_names(encoders, has_metric(fwd_enc, encoders))
    score = rule.scorer.predict(feats, names) if rule.scorer is not None else cands.margin
    return cands, feats, score, rule


def filter_reason(a: str, b: str, words_a: float, words_b: float, lid_a: float, lid_b: float,
                  config: BitextConfig) -> str | None:
    """The first filter a selected pair fails, or None (dedup is checked by the caller)."""
    low, high = config.length_ratio
    if lid_a == 0 or lid_b == 0:
        return "lid"
    if near_identical(a, b, config.near_identical):
        return "near_identical"
    if not numbers_agree(a, b):
        return "numbers"
    if not low <= (words_a + 1) / (words_b + 1) <= high:
        return "length_ratio"
    return None


def finish_pair(fwd, bwd, fwd_enc, bwd_enc, src: SideInfo, tgt: SideInfo, encoders: tuple[str, ...],
                config: BitextConfig, calibration: dict) -> Mined:
    """Candidates -> scores -> selection by `config.mode` -> filters, for one language pair."""
    cands, _, score, rule = score_candidates(fwd, bwd, fwd_enc, bwd_enc, src, tgt, encoders, config, calibration)
    chosen = select(cands.src, cands.tgt, cands.direction, score, config.mode, rule.threshold)
    filtered = dict.fromkeys(FILTERS, 0)
    keep, seen = [], set()
    for c in chosen.tolist():
        i, j = int(cands.src[c]), int(cands.tgt[c])
        a, b = src.texts[i], tgt.texts[j]
        reason = filter_reason(a, b, src.words[i], tgt.words[j], src.lid_ok[i], tgt.lid_ok[j], config)
        if reason is None:
            key = (" ".join(a.lower().split()), " ".join(b.lower().split()))
            if key in seen:
                reason = "duplicate"
            else:
                seen.add(key)
                keep.append(c)
                continue
        filtered[reason] += 1
    keep = np.asarray(keep, dtype=np.int64)
    return Mined(cands.src[keep], cands.tgt[keep], cands.cos[keep], cands.margin[keep], score[keep],
                 len(cands.src), filtered)


def knn_both(src_vecs: list[np.ndarray], tgt_vecs: list[np.ndarray], encoders: tuple[str, ...],
             config: BitextConfig, calibration: dict, metric: list[np.ndarray] | None = None):
    """kNN lists of both directions over the combined vectors, with each encoder's cosines of the neighbours
    (and weighted dot products, given the scorer's `metric`)."""
    weights = combination_weights(encoders, calibration)
    x, y = combine(src_vecs, weights), combine(tgt_vecs, weights)
    dims = [v.shape[1] for v in src_vecs]
    fwd = _sharded(x, y, config)
    bwd = _sharded(y, x, config)
    return (fwd, bwd, encoder_cosines(x, y, fwd[1], dims, weights, metric),
            encoder_cosines(y, x, bwd[1], dims, weights, metric))


def scorer_metric(encoders: tuple[str, ...], src_lang: str, tgt_lang: str, config: BitextConfig,
                  calibration: dict) -> list[np.ndarray] | None:
    """The calibrated scorer's dimension weights for this pair, if it reads weighted dot products."""
    rule = scoring_rule(encoders, src_lang, tgt_lang, config.margin, config.scorer == "learned", config.threshold,
                        calibration)
    return rule.scorer.metric_for(encoders) if rule.scorer is not None else None


def mine_embeddings(src_vecs: list[np.ndarray], tgt_vecs: list[np.ndarray], src: SideInfo, tgt: SideInfo,
                    encoders: tuple[str, ...], config: BitextConfig, calibration: dict | None = None) -> Mined:
    """The whole mining of one pair in one process, from per-encoder embeddings of both sides."""
    calibration = calibration if calibration is not None else load_calibration(config.calibration)
    metric = scorer_metric(encoders, src.language, tgt.language, config, calibration)
    fwd, bwd, fwd_enc, bwd_enc = knn_both(src_vecs, tgt_vecs, encoders, config, calibration, metric)
    return finish_pair(fwd, bwd, fwd_enc, bwd_enc, src, tgt, encoders, config, calibration)


def _sharded(queries: np.ndarray, db: np.ndarray, config: BitextConfig):
    return sharded_knn(queries, db, config.k, config.shard_size, config.flat_max, config.nprobe, config.index,
                       config.pq_min)


# --- Beam glue ---------------------------------------------------------------------------------------


def _stat(key: str, metric: str, n: int = 1):
    return beam.pvalue.TaggedOutput("stats", ((STAGE, key, metric), n))


def sentence_key(doc_id: str, idx: int) -> str:
    return f"{doc_id}\x1f{idx}"


def _shard_of(key: str, n_shards: int) -> int:
    return xxhash.xxh64_intdigest(key.encode()) % n_shards


class _SegmentFn(beam.DoFn):
    def __init__(self, config: BitextConfig):
        self.config = config

    def setup(self):
        self.counters = Counters(STAGE)

    def process(self, doc: dict):
        partition = doc.get("partition") or "und"
        kept, short, long_ = split_sentences(doc.get("text") or "", doc.get("language") or "und", doc.get("script"),
                                             self.config.min_sentence_chars, self.config.max_sentence_chars)
        for metric, n in (("sentences_too_short", short), ("sentences_too_long", long_), ("sentences", len(kept))):
            if n:
                self.counters.inc(metric, n)
                yield _stat(partition, metric, n)
        if not kept:
            self.counters.inc("documents_without_sentences")
            yield _stat(partition, "documents_without_sentences")
        for seg in kept:
            yield {"partition": partition, "language": doc.get("language") or "und", "doc_id": doc["id"],
                   "idx": seg.index, "text": seg.text}


class SplitSentences(beam.PTransform):
    """Documents -> sentence dicts {partition, language, doc_id, idx, text}; stats on the `stats` output."""

    def __init__(self, config: BitextConfig):
        super().__init__()
        self.config = config

    def expand(self, documents):
        out = documents | "Segment" >> beam.ParDo(_SegmentFn(self.config)).with_outputs("stats", main="sentences")
        return {"sentences": out.sentences, "stats": out.stats}


class _LidFn(beam.DoFn):
    def setup(self):
        from transforms.langid import LanguageIdentifier

        self.lid = LanguageIdentifier()

    def process(self, batch: list[dict]):
        lid = sentence_lid(self.lid, [s["text"] for s in batch], [s["language"] for s in batch])
        for sent, (language, score, p_expected) in zip(batch, lid):
            yield dict(sent, lid_lang=language, lid_score=score, lid_expected=p_expected)


def _dedup_key(sent: dict):
    norm = " ".join(sent["text"].lower().split())
    return (sent["partition"], xxhash.xxh64_hexdigest(norm.encode())), sent


def _keep_first(item):
    (partition, _), sents = item
    sents = sorted(sents, key=lambda s: (s["doc_id"], s["idx"]))
    yield sents[0]
    if len(sents) > 1:
        yield _stat(partition, "sentences_duplicate", len(sents) - 1)


def _encode_group(sent: dict, counts: dict, group_size: int):
    """Keys a sentence to a fixed group of its partition. Encoder batches are then cut from sorted groups and never
    depend on how a runner bundled elements; neither do the embeddings, whose last bits change with a batch's
    padding and BLAS blocking."""
    key = sentence_key(sent["doc_id"], sent["idx"])
    return (sent["partition"], _shard_of(key, math.ceil(counts[sent["partition"]] / group_size))), sent


def _fixed_batches(item, batch_size: int):
    _, sents = item
    sents = sorted(sents, key=lambda s: (s["doc_id"], s["idx"]))
    for i in range(0, len(sents), batch_size):
        yield sents[i:i + batch_size]


class _EmbedFn(beam.DoFn):
    """Embeds a batch of sentences with the encoders their pairs need and routes them to kNN grid cells."""

    def __init__(self, config: BitextConfig):
        self.config = config

    def setup(self):
        self.calibration = load_calibration(self.config.calibration)
        self.counters = Counters(STAGE)
        self.progress = Progress(STAGE, "sentences embedded", every_s=10.0)

    def process(self, batch: list[dict], counts: dict, languages: dict):
        plans = plan_pairs(languages, self.config)
        by_partition: dict[str, list[tuple[PairPlan, str]]] = {}
        for plan in plans:
            by_partition.setdefault(plan.src, []).append((plan, "src"))
            by_partition.setdefault(plan.tgt, []).append((plan, "tgt"))
        todo = []
        for sent in batch:
            routes = by_partition.get(sent["partition"])
            if routes:
                todo.append((sent, routes))
                continue
            covered = any(macro_language(sent["language"]) in encoder_languages(e, self.config.encoder_languages)
                          for e in self.config.encoders)
            metric = "sentences_without_pair" if covered else "unsupported_language"
            self.counters.inc(metric)
            yield _stat(sent["partition"], metric)
        needed = sorted({e for _, routes in todo for plan, _ in routes for e in plan.encoders})
        vectors: dict[str, dict[int, np.ndarray]] = {}
        for encoder in needed:
            rows = [i for i, (_, routes) in enumerate(todo) if any(encoder in p.encoders for p, _ in routes)]
            emb = get_encoder(encoder, self.config.device, self.config.encoder_threads).encode(
                [todo[i][0]["text"] for i in rows])
            vectors[encoder] = dict(zip(rows, emb))
        self.progress.add(len(todo))
        groups = cell_groups(plans, counts, self.config.shard_size)
        shards = {part: n_shards(counts[part], self.config.shard_size)
                  for plan in plans for part in (plan.src, plan.tgt)}
        weights = {plan.encoders: combination_weights(plan.encoders, self.calibration) for plan in plans}
        for i, (sent, routes) in enumerate(todo):
            self.counters.inc("sentences_embedded")
            yield _stat(sent["partition"], "sentences_embedded")
            key = sentence_key(sent["doc_id"], sent["idx"])
            meta = (key, sent["doc_id"], sent["idx"], sent["text"], sent["lid_lang"], sent["lid_score"],
                    sent["lid_expected"])
            combined: dict[tuple[str, ...], np.ndarray] = {}  # one vector per encoder set, whatever the pairs
            as_target: dict[str, np.ndarray] = {}  # group -> vector: a target sentence goes once to each group
            for plan, side in routes:
                if plan.encoders not in combined:
                    combined[plan.encoders] = combine([vectors[e][i][None, :] for e in plan.encoders],
                                                      weights[plan.encoders])[0]
                vec = combined[plan.encoders]
                if side == "src":
                    a = _shard_of(key, shards[plan.src])
                    for b in range(shards[plan.tgt]):
                        yield (groups[(plan.name, a)], b), ("src", meta, vec, (plan, a))
                else:
                    for a in range(shards[plan.src]):
                        as_target.setdefault(groups[(plan.name, a)], vec)
            if as_target:
                b = _shard_of(key, shards[sent["partition"]])
                for group in sorted(as_target):
                    yield (group, b), ("tgt", meta, as_target[group], None)


class _KnnCellFn(beam.DoFn):
    """One grid cell: target shard b of a cell group against each source shard of the group, both directions."""

    def __init__(self, config: BitextConfig):
        self.config = config

    def setup(self):
        self.calibration = load_calibration(self.config.calibration)
        self.tables: dict[tuple, tuple] = {}  # per plan: combination weights, dimensions, metric; not per cell

    def process(self, item):
        _, records = item
        tgt = sorted((r for r in records if r[0] == "tgt"), key=lambda r: r[1][0])
        if not tgt:
            return
        units: dict[tuple[str, int], list] = {}
        for r in records:
            if r[0] == "src":
                units.setdefault((r[3][0].name, r[3][1]), []).append(r)
        y = np.stack([r[2] for r in tgt])  # the group's pairs share one encoder set, so one target matrix
        for unit in sorted(units):
            src = sorted(units[unit], key=lambda r: r[1][0])
            yield from self._cell(src[0][3][0], src, tgt, y)

    def _cell(self, plan: PairPlan, src: list, tgt: list, y: np.ndarray):
        """Source shard against target shard of one pair, both directions: partial kNN lists per query."""
        key = (plan.encoders, plan.src_lang, plan.tgt_lang)
        if key not in self.tables:
            self.tables[key] = (combination_weights(plan.encoders, self.calibration),
                                [get_dim(e, self.config) for e in plan.encoders],
                                scorer_metric(*key, self.config, self.calibration))
        weights, dims, metric = self.tables[key]
        x = np.stack([r[2] for r in src])
        for side, queries, db, q_recs, db_recs in (("src", x, y, src, tgt), ("tgt", y, x, tgt, src)):
            sims, ids = knn(queries, db, self.config.k, self.config.flat_max, self.config.nprobe,
                            index_spec=self.config.index, pq_min=self.config.pq_min)
            enc = encoder_cosines(queries, db, ids, dims, weights, metric)
            db_keys = [r[1][0] for r in db_recs]
            for q in range(len(q_recs)):
                neigh = [db_keys[j] if j >= 0 else None for j in ids[q].tolist()]
                yield (plan.name, side, q_recs[q][1][0]), (q_recs[q][1], plan, sims[q], neigh, enc[q])


def get_dim(encoder: str, config: BitextConfig) -> int:
    return get_encoder(encoder, config.device, config.encoder_threads).dim


def _merge_shards(item, k: int):
    """All shards' top-k lists of one query sentence -> its overall top-k (neighbour keys kept)."""
    (pair, side, _), parts = item
    parts = sorted(parts, key=lambda p: [n or "" for n in p[3]])
    meta, plan = parts[0][0], parts[0][1]
    sims = np.concatenate([p[2] for p in parts])
    neigh = [n for p in parts for n in p[3]]
    enc = np.concatenate([p[4] for p in parts])
    rank = sorted(range(len(neigh)), key=lambda i: (-float(sims[i]) if neigh[i] else math.inf, neigh[i] or ""))[:k]
    yield pair, (side, meta, plan, sims[rank], [neigh[i] for i in rank], enc[rank])


class _ScorePairFn(beam.DoFn):
    def __init__(self, config: BitextConfig):
        self.config = config

    def setup(self):
        self.calibration = load_calibration(self.config.calibration)
        self.counters = Counters(STAGE)
        self.progress = Progress(STAGE, "candidate pairs scored", every_s=10.0)

    def process(self, item):
        pair, records = item
        records = sorted(records, key=lambda r: (r[0], r[1][0]))
        plan: PairPlan = records[0][2]
        sides = {s: [r for r in records if r[0] == s] for s in ("src", "tgt")}
        index = {s: {r[1][0]: i for i, r in enumerate(sides[s])} for s in sides}
        k = self.config.k
        arrays = {}
        for s, other in (("src", "tgt"), ("tgt", "src")):
            recs = sides[s]
            sims = np.full((len(recs), k), -np.inf, np.float32)
            ids = np.full((len(recs), k), -1, np.int64)
            enc = np.full((len(recs), k, records[0][5].shape[-1]), np.nan, np.float32)
            for q, r in enumerate(recs):
                n = len(r[4])
                sims[q, :n] = r[3]
                ids[q, :n] = [index[other].get(key, -1) if key else -1 for key in r[4]]
                enc[q, :n] = r[5]
            sims[ids < 0] = -np.inf
            arrays[s] = (sims, ids, enc)
        infos = {s: side_info([r[1][3] for r in sides[s]], [r[1][4:7] for r in sides[s]],
                              plan.src_lang if s == "src" else plan.tgt_lang, self.config) for s in sides}
        mined = finish_pair(arrays["src"][:2], arrays["tgt"][:2], arrays["src"][2], arrays["tgt"][2],
                            infos["src"], infos["tgt"], plan.encoders, self.config, self.calibration)
        yield _stat(pair, "candidates", mined.candidates)
        self.counters.inc("candidates", mined.candidates)
        self.progress.add(mined.candidates)
        for reason, n in mined.filtered.items():
            if n:
                self.counters.inc(f"filtered_{reason}", n)
                yield _stat(pair, f"filtered_{reason}", n)
        self.counters.inc("kept", len(mined.src))
        yield _stat(pair, "kept", len(mined.src))
        encoder = encoder_set_name(plan.encoders)
        for i, j, cos, mar, score in zip(mined.src.tolist(), mined.tgt.tolist(), mined.cos.tolist(),
                                         mined.margin.tolist(), mined.score.tolist()):
            s, t = sides["src"][i][1], sides["tgt"][j][1]
            yield {
                "pair_id": xxhash.xxh64_hexdigest(f"{pair}\x00{s[3]}\x00{t[3]}".encode()),
                "pair": pair, "src_lang": plan.src_lang, "tgt_lang": plan.tgt_lang,
                "src_text": s[3], "tgt_text": t[3], "src_doc_id": s[1], "tgt_doc_id": t[1],
                "src_sent_idx": s[2], "tgt_sent_idx": t[2], "cosine": cos, "margin": mar, "score": score,
                "encoder": encoder,
            }


class Embed(beam.PTransform):
    """Sentences (with LID) -> kNN grid cells ((cell group, target shard), record); stats on `stats`."""

    def __init__(self, config: BitextConfig):
        super().__init__()
        self.config = config

    def expand(self, sentences):
        counts = sentences | "Count" >> beam.Map(lambda s: (s["partition"], 1)) | "Sum" >> beam.CombinePerKey(sum)
        languages = (sentences | "Lang" >> beam.Map(lambda s: (s["partition"], s["language"]))
                     | "OneLang" >> beam.CombinePerKey(min))
        out = (
            sentences
            | "EncodeGroup" >> beam.Map(_encode_group, beam.pvalue.AsDict(counts), self.config.batch_size * 64)
            | "GroupEncode" >> beam.GroupByKey()
            | "FixedBatches" >> beam.FlatMap(_fixed_batches, self.config.batch_size)
            | "Encode" >> beam.ParDo(_EmbedFn(self.config), beam.pvalue.AsDict(counts),
                                     beam.pvalue.AsDict(languages)).with_outputs("stats", main="cells")
        )
        return {"cells": out.cells, "stats": out.stats}


class MineBitext(beam.PTransform):
    """The `bitext` stage: documents pass through unchanged; mined pairs come out as the `bitext` table."""

    TABLES = {"bitext": TableSpec(BITEXT_SCHEMA, "bitext", partition_field="pair", sort_fields=("pair_id",))}

    def __init__(self, config: BitextConfig):
        super().__init__()
        self.config = config

    def expand(self, documents):
        config = self.config
        split = documents | "SplitSentences" >> SplitSentences(config)
        deduped = (
            split["sentences"]
            | "BatchLid" >> beam.BatchElements(min_batch_size=16, max_batch_size=512)
            | "Lid" >> beam.ParDo(_LidFn())
            | "DedupKey" >> beam.Map(_dedup_key)
            | "GroupDup" >> beam.GroupByKey()
            | "KeepFirst" >> beam.FlatMap(_keep_first).with_outputs("stats", main="sentences")
        )
        embedded = deduped.sentences | "Embed" >> Embed(config)
        scored = (
            embedded["cells"]
            | "GroupCells" >> beam.GroupByKey()
            | "KnnCell" >> beam.ParDo(_KnnCellFn(config))
            | "GroupQuery" >> beam.GroupByKey()
            | "MergeShards" >> beam.FlatMap(_merge_shards, config.k)
            | "GroupPair" >> beam.GroupByKey()
            | "ScorePair" >> beam.ParDo(_ScorePairFn(config)).with_outputs("stats", main="bitext")
        )
        stats = (
            (split["stats"], deduped.stats, embedded["stats"], scored.stats)
            | "FlattenStats" >> beam.Flatten()
            | "SumStats" >> beam.CombinePerKey(sum)
        )
        rejected = documents.pipeline | "NoRejected" >> beam.Create([])
        return {"documents": documents, "bitext": scored.bitext, "rejected": rejected, "stats": stats}
