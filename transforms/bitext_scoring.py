"""Scoring mined candidates: calibrated margin thresholds, agreement features and a light learned scorer.

Plain margin cannot tell a translation from a close paraphrase well enough with the small offline encoders
(environment.md: best pooled F1 0.70-0.75). Each candidate therefore gets a feature vector -- margins and
cosines of the combined and of each single encoder, the lead over the runner-up, whether both directions chose
it, and agreement of numbers, length, final punctuation and language ID -- and a logistic regression fitted on
the calibration half of the dev pairs (tools/calibrate_bitext.py) turns it into a probability. The shipped
parameters live in transforms/data/bitext_thresholds.json.

Sentence embeddings blur the one word in which a close paraphrase differs ("Yesterday was Monday" against
"Yesterday was Saturday"). With e5-small in the set, a soft word alignment adds that view: every word is embedded
on its own, and each side's words are matched to their most similar word on the other side (IDF-weighted, as
BERTScore does), with the share of words left without a mutual best match. USE-m's single-word vectors add
nothing measurable, so only e5-small's are used (tools/bench/RESULTS_bitext.md, "Word alignment").

A cosine weighs every embedding dimension alike, although some dimensions carry topic (shared by a paraphrase)
and others the exact meaning. The learned scorer therefore also reads, per encoder, a learned weighted dot
product of the two sentence vectors, sum_i w_i u_i v_i (a diagonal bilinear similarity): calibration fits one
coefficient per dimension on the products u_i v_i, strongly regularised (METRIC_L2), and folds them into w.

Embedding every word of every candidate costs more than embedding the sentences (e5-small embeds ~140 single
words per second per thread). A scorer that reads the word alignment therefore carries a prefilter: the same
logistic regression without the alignment features. Only candidates the prefilter does not rule out get their
words embedded; the rest score 0. Its cut is the lowest prefilter score of any calibration candidate that the
full scorer gives at least PREFILTER_FLOOR, below every calibrated threshold.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from transforms.bitext_encoders import macro_language
from transforms.bitext_mining import Candidates, final_punct, margin, neighbourhood_mean, numbers_of
from transforms.text import is_punctuation_token, segment_words

THRESHOLDS_PATH = Path(__file__).parent / "data" / "bitext_thresholds.json"
AGREEMENT_FEATURES = ("gap", "mutual", "numbers", "length_z", "punct", "lid")
ALIGNMENT_FEATURES = ("align", "unaligned_src", "unaligned_tgt")
# Encoders whose single-word embeddings feed the word alignment (measured: e5-small helps, USE-m does not).
WORD_ENCODERS = ("e5-small",)
# L2 penalty of the per-dimension product coefficients (standardised), against 1.0 for the other features:
# cross-fitted F1 is flat between 300 and 3000 (tools/bench/RESULTS_bitext.md, "Learned weighted dot product").
METRIC_L2 = 1000.0
# Full-scorer probability under which a calibration candidate may be lost to the prefilter (every calibrated
# threshold is above it: the lowest per-language cut is ~0.2).
PREFILTER_FLOOR = 0.1


@lru_cache(maxsize=4)
def load_calibration(path: str | None = None) -> dict:
    return json.loads(Path(path or THRESHOLDS_PATH).read_text(encoding="utf-8"))


def encoder_set_name(encoders: tuple[str, ...]) -> str:
    return "+".join(encoders)


def feature_names(encoders: tuple[str, ...], metric: bool = False) -> list[str]:
    names = ["margin", "cos"]
    if len(encoders) > 1:
        for e in encoders:
            names += [f"margin:{e}", f"cos:{e}"]
    return names + list(AGREEMENT_FEATURES) + alignment_names(encoders) + (metric_names(encoders) if metric else [])


def metric_names(encoders: tuple[str, ...]) -> list[str]:
    return [f"metric:{e}" for e in encoders]


def alignment_names(encoders: tuple[str, ...]) -> list[str]:
    return [f"{a}:{e}" for e in encoders if e in WORD_ENCODERS for a in ALIGNMENT_FEATURES]


def content_words(text: str) -> list[str]:
    """Lower-cased words without punctuation or digits (numbers have their own feature); ICU segments CJK/Thai."""
    return [t.lower() for t in segment_words(text) if not is_punctuation_token(t) and not t.isdigit()]


def idf_weights(sentences: list[list[str]]) -> dict[str, float]:
    """Smoothed inverse document frequency over one side's sentences (as content words): rare words carry the
    meaning."""
    df = Counter(w for words in sentences for w in set(words))
    n = len(sentences)
    return {w: math.log((n + 1) / (c + 1)) + 1.0 for w, c in df.items()}


def word_alignment(pairs: list[tuple[list[str], list[str]]], src_idf: dict[str, float], tgt_idf: dict[str, float],
                   encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """(len(pairs), 3) for pairs of content-word lists: IDF-weighted alignment F (mean best-match cosine of each
    side's words, harmonic mean of both directions) and the IDF share of source and of target words without a
    mutual best match.

    `encode` embeds words (normalised rows); each distinct word is embedded once. A side with no content word
    gets the neutral values (0.5, 0.5, 0.5)."""
    vocab = sorted({w for wa, wb in pairs for w in wa + wb})
    table = dict(zip(vocab, encode(vocab))) if vocab else {}
    out = np.full((len(pairs), 3), 0.5, np.float32)
    for r, (wa, wb) in enumerate(pairs):
        if not wa or not wb:
            continue
        sim = np.stack([table[w] for w in wa]) @ np.stack([table[w] for w in wb]).T
        ia = np.array([src_idf.get(w, 1.0) for w in wa])
        ib = np.array([tgt_idf.get(w, 1.0) for w in wb])
        p = float(sim.max(axis=1) @ ia / ia.sum())
        rc = float(sim.max(axis=0) @ ib / ib.sum())
        best_b, best_a = sim.argmax(axis=1), sim.argmax(axis=0)
        linked_a = best_a[best_b] == np.arange(len(wa))  # a's best b has a as its best
        linked_b = best_b[best_a] == np.arange(len(wb))
        out[r] = (2 * p * rc / max(p + rc, 1e-9), ia @ ~linked_a / ia.sum(), ib @ ~linked_b / ib.sum())
    return out


@dataclass
class SideInfo:
    """What the scorer needs of one side's sentences."""

    texts: list[str]
    words: np.ndarray  # word counts
    lid_ok: np.ndarray  # LID probability of the expected language, 0 when LID says another language
    language: str


def length_stats(calibration: dict, src_lang: str, tgt_lang: str) -> tuple[float, float]:
    """Expected log word-count ratio src/tgt and its spread; languages are measured against English."""
    table = calibration.get("length", {})
    default = table.get("default", [0.0, 0.35])
    ms, ss = table.get(macro_language(src_lang), default)
    mt, st = table.get(macro_language(tgt_lang), default)
    if macro_language(tgt_lang) == "eng":
        mt, st = 0.0, 0.0
    if macro_language(src_lang) == "eng":
        ms, ss = 0.0, 0.0
    return ms - mt, max(math.sqrt(ss**2 + st**2), 0.1)


def candidate_features(
    cands: Candidates,
    fwd_enc: np.ndarray,
    bwd_enc: np.ndarray,
    encoders: tuple[str, ...],
    src: SideInfo,
    tgt: SideInfo,
    margin_kind: str,
    calibration: dict,
    encode_words: Callable[[str], Callable[[list[str]], np.ndarray]],
    screen: Callable[[np.ndarray, list[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """(n_candidates, len(feature_names(encoders, metric))) features, metric = has_metric(fwd_enc, encoders).

    fwd_enc/bwd_enc: per-encoder views of each kNN list, shape (n_queries, k, n_encoders) or, with a learned
    metric, (n_queries, k, 2 * n_encoders): cosines, then weighted dot products (bitext.encoder_cosines); NaN for
    missing neighbours (the lists themselves are ranked by the combined cosine). encode_words(encoder) is the
    function that embeds words for the alignment features. `screen(features, names)`, when given, picks the rows
    that get alignment features (a scorer's prefilter, which reads none of them); the other rows keep NaN there.
    """
    n = len(cands.src)
    cols = [cands.margin, cands.cos]
    from_fwd = cands.direction == 0
    query = np.where(from_fwd, cands.src, cands.tgt)

    def view(channel: int) -> np.ndarray:
        """The candidate's value of one channel of the kNN list it came from."""
        at_fwd = fwd_enc[np.minimum(query, len(fwd_enc) - 1), cands.position, channel] if len(fwd_enc) else np.zeros(n)
        at_bwd = bwd_enc[np.minimum(query, len(bwd_enc) - 1), cands.position, channel] if len(bwd_enc) else np.zeros(n)
        return np.where(from_fwd, at_fwd, at_bwd)

    if len(encoders) > 1:
        for e in range(len(encoders)):
            mean_x = _nanmean(fwd_enc[:, :, e])
            mean_y = _nanmean(bwd_enc[:, :, e])
            cos_e = view(e)
            cols += [margin(cos_e, mean_x[cands.src], mean_y[cands.tgt], margin_kind), cos_e]
    keys = cands.src * (int(cands.tgt.max(initial=0)) + 1) + cands.tgt
    fwd_keys, bwd_keys = set(keys[cands.direction == 0].tolist()), set(keys[cands.direction == 1].tolist())
    mutual = np.array([k in fwd_keys and k in bwd_keys for k in keys.tolist()], dtype=np.float32)
    mu, sd = length_stats(calibration, src.language, tgt.language)
    log_ratio = np.log((src.words[cands.src] + 1.0) / (tgt.words[cands.tgt] + 1.0))
    numbers = np.empty(n, np.float32)
    punct = np.empty(n, np.float32)
    for c, (i, j) in enumerate(zip(cands.src.tolist(), cands.tgt.tolist())):
        na, nb = numbers_of(src.texts[i]), numbers_of(tgt.texts[j])
        numbers[c] = 0.0 if (na and nb and na != nb) else (1.0 if na and na == nb else 0.5)
        punct[c] = float(final_punct(src.texts[i]) == final_punct(tgt.texts[j]))
    lid = np.minimum(src.lid_ok[cands.src], tgt.lid_ok[cands.tgt])
    cols += [cands.second_gap, mutual, numbers, np.abs(log_ratio - mu) / sd, punct, lid]
    word_encoders = [e for e in encoders if e in WORD_ENCODERS]
    aligned_at = len(cols)
    cols += [np.full(n, np.nan)] * (len(ALIGNMENT_FEATURES) * len(word_encoders))
    if has_metric(fwd_enc, encoders):
        cols += [view(len(encoders) + e) for e in range(len(encoders))]
    if not n:
        return np.zeros((0, len(cols)), np.float32)
    feats = np.stack([np.asarray(c, dtype=np.float32) for c in cols], axis=1)
    if word_encoders:
        rows = np.flatnonzero(screen(feats, feature_names(encoders, has_metric(fwd_enc, encoders)))) \
            if screen is not None else np.arange(n)
        src_words, tgt_words = [content_words(t) for t in src.texts], [content_words(t) for t in tgt.texts]
        pairs = [(src_words[i], tgt_words[j]) for i, j in zip(cands.src[rows].tolist(), cands.tgt[rows].tolist())]
        src_idf, tgt_idf = idf_weights(src_words), idf_weights(tgt_words)
        for k, e in enumerate(word_encoders):
            at = aligned_at + k * len(ALIGNMENT_FEATURES)
            feats[rows, at:at + len(ALIGNMENT_FEATURES)] = word_alignment(pairs, src_idf, tgt_idf, encode_words(e))
    return feats


def has_metric(views: np.ndarray, encoders: tuple[str, ...]) -> bool:
    """Whether kNN views carry weighted dot products after the cosines."""
    return views.ndim == 3 and views.shape[2] == 2 * len(encoders)


def _nanmean(values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return np.zeros(len(values), np.float32)
    return neighbourhood_mean(np.where(np.isnan(values), -np.inf, values))


@dataclass
class LogisticScorer:
    """p(translation | features) = sigmoid(coef . standardised features + intercept).

    `metric` holds, per encoder, the dimension weights w of the feature metric:<encoder> = sum_i w_i u_i v_i.
    With a `prefilter` (a scorer on a subset of the features), rows it scores below `prefilter_cut` score 0 and
    need none of the features only this scorer reads."""

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    metric: dict[str, np.ndarray] = field(default_factory=dict)
    prefilter: LogisticScorer | None = None
    prefilter_cut: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> LogisticScorer:
        metric = {e: np.asarray(w, np.float32) for e, w in d.get("metric", {}).items()}
        pre = d.get("prefilter")
        return cls(list(d["features"]), np.asarray(d["mean"]), np.asarray(d["scale"]), np.asarray(d["coef"]),
                   float(d["intercept"]), metric, cls.from_dict(pre["model"]) if pre else None,
                   float(pre["cut"]) if pre else 0.0)

    def to_dict(self) -> dict:
        d = {"features": self.features, "mean": _round(self.mean), "scale": _round(self.scale),
             "coef": _round(self.coef), "intercept": round(float(self.intercept), 6)}
        if self.metric:
            d["metric"] = {e: [float(f"{v:.5g}") for v in w] for e, w in self.metric.items()}
        if self.prefilter is not None:
            d["prefilter"] = {"model": self.prefilter.to_dict(), "cut": round(self.prefilter_cut, 6)}
        return d

    def screen(self, X: np.ndarray, names: list[str]) -> np.ndarray:
        """Rows the full scorer must see: those the prefilter does not rule out (all rows without one)."""
        if self.prefilter is None:
            return np.ones(len(X), dtype=bool)
        return self.prefilter.predict(X, names) >= self.prefilter_cut

    def metric_for(self, encoders: tuple[str, ...]) -> list[np.ndarray] | None:
        """Dimension weights in encoder order, or None when the scorer reads no weighted dot product."""
        return [self.metric[e] for e in encoders] if self.metric else None

    def predict(self, X: np.ndarray, names: list[str]) -> np.ndarray:
        rows = self.screen(X, names)
        cols = [names.index(f) for f in self.features]
        z = (X[np.ix_(rows, cols)] - self.mean) / self.scale @ self.coef + self.intercept
        out = np.zeros(len(X), np.float32)
        out[rows] = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        return out


def _round(a: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in a]


def fit_logistic(X: np.ndarray, y: np.ndarray, features: list[str], l2: float | np.ndarray = 1.0,
                 iters: int = 50) -> LogisticScorer:
    """L2-regularised logistic regression by Newton's method (IRLS): exact and fast up to a thousand features.
    `l2` is one penalty or one per feature (on standardised features)."""
    mean = X.mean(axis=0)
    scale = np.where(X.std(axis=0) > 1e-6, X.std(axis=0), 1.0)
    Z = np.hstack([(X - mean) / scale, np.ones((len(X), 1))])
    w = np.zeros(Z.shape[1])
    reg = np.append(np.broadcast_to(np.asarray(l2, float), (Z.shape[1] - 1,)), 0.0)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(Z @ w, -30, 30)))
        grad = Z.T @ (p - y) + reg * w
        hess = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticScorer(features, mean, scale, w[:-1], float(w[-1]))


def fit_scorer(X: np.ndarray, y: np.ndarray, features: list[str], products: dict[str, np.ndarray],
               metric_l2: float = METRIC_L2) -> LogisticScorer:
    """The logistic scorer on `features` plus, per encoder, the per-dimension products u*v of the candidate's two
    sentence vectors (products[encoder], (n, dim)); each encoder's product coefficients are folded into one
    feature metric:<encoder> with weights w, so scoring needs one dot product per candidate, not `dim` columns."""
    encoders = list(products)
    full = np.hstack([X] + [products[e] for e in encoders])
    l2 = np.concatenate([np.ones(X.shape[1])] + [np.full(products[e].shape[1], metric_l2) for e in encoders])
    model = fit_logistic(full, y, features + [f"u*v:{e}:{i}" for e in encoders for i in range(products[e].shape[1])], l2)
    n, start, intercept, metric = len(features), len(features), model.intercept, {}
    for e in encoders:
        part = slice(start, start + products[e].shape[1])
        metric[e] = (model.coef[part] / model.scale[part]).astype(np.float32)
        intercept -= float(metric[e] @ model.mean[part])
        start = part.stop
    k = len(encoders)
    return LogisticScorer(features + metric_names(tuple(encoders)), np.append(model.mean[:n], np.zeros(k)),
                          np.append(model.scale[:n], np.ones(k)), np.append(model.coef[:n], np.ones(k)), intercept,
                          metric)


def with_prefilter(scorer: LogisticScorer, X: np.ndarray, y: np.ndarray, names: list[str], skipped: list[str],
                   floor: float = PREFILTER_FLOOR) -> LogisticScorer:
    """`scorer` with a prefilter: a logistic regression on every feature in `names` but `skipped`, cut at the
    lowest prefilter score of any row of X that `scorer` gives at least `floor`."""
    subset = [n for n in names if n not in skipped]
    prefilter = fit_logistic(X[:, [names.index(n) for n in subset]], y, subset)
    prefilter = LogisticScorer.from_dict(prefilter.to_dict())  # the rounded model, as the stage will load it
    above = scorer.predict(X, names) >= floor
    cut = float(prefilter.predict(X, names)[above].min()) if above.any() else 0.0
    return replace(scorer, prefilter=prefilter, prefilter_cut=math.floor(cut * 1e6) / 1e6)


@dataclass
class ScoringRule:
    """How a pair's candidates are scored and where the cut is."""

    scorer: LogisticScorer | None
    threshold: float
    source: str  # where the threshold came from, for the README and logs


def scoring_rule(encoders: tuple[str, ...], src_lang: str, tgt_lang: str, margin_kind: str, use_scorer: bool,
                 threshold: float | None, calibration: dict) -> ScoringRule:
    """The calibrated rule for an encoder set and language pair; `threshold` overrides the calibrated cut."""
    name = encoder_set_name(encoders)
    lang = macro_language(src_lang) if macro_language(tgt_lang) == "eng" else macro_language(tgt_lang)
    entry = calibration.get("scorers", {}).get(name, {}).get(margin_kind)
    if use_scorer and entry:
        scorer = LogisticScorer.from_dict(entry["model"])
        cut = entry.get("per_language", {}).get(lang, entry["threshold"])
        return ScoringRule(scorer, cut if threshold is None else threshold, f"scorer:{name}:{margin_kind}")
    margins = calibration.get("margin_thresholds", {}).get(name, {}).get(margin_kind)
    if threshold is not None:
        return ScoringRule(None, threshold, "config")
    if margins is None:
        default = {"ratio": 1.06, "distance": 0.0}[margin_kind]
        return ScoringRule(None, default, "uncalibrated (stopes default)")
    return ScoringRule(None, margins.get("per_language", {}).get(lang, margins["threshold"]), f"margin:{name}:{margin_kind}")
