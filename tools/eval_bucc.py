"""BUCC-style mining on the Tatoeba dev pairs: gold pairs hidden among distractors, P/R/F1 per language.

The task (one round; rounds rotate which lines are gold so that every line is gold once):
- Source pool of language L: every sentence of L in the chosen half of its dev file (even lines: calibration,
  odd lines: evaluation). One sixth are gold; the English of the other five sixths is withheld, so 5x as many
  source sentences as gold pairs have no translation in the English pool.
- English pool, one per language pair (L-eng), as in BUCC: L's gold translations plus 5x as many distractors
  taken from the English side of *other* dev files, whose source sentences are in no pool. Half of them are the
  closest sentence (character-trigram cosine) to a withheld translation of L: a close paraphrase of what a
  distractor source sentence means, but not its translation. The rest are drawn at random. No English
  sentence of any mined language's dev file is a distractor, so no distractor's translation is in a pool.
- A mined pair is correct when its English side equals (case- and space-insensitive) a reference translation
  of its source sentence in the dev file; recall is over every pooled source sentence whose translation is in
  the pool. With --beam, sentences are the stage's own segments of the dev lines: a row is correct when its
  English segment comes from a reference translation of its source segment's line, and recall counts the
  gold lines with at least one correct row.

    python -m tools.eval_bucc --out /tmp/bucc.json             # every system, pure-Python mining
    python -m tools.eval_bucc --beam --out /tmp/bucc_beam.json # the shipped stage end to end, one pipeline per pair
    python -m tools.eval_bucc --margin distance --out /tmp/bucc_distance.json  # cosine against the distance margin

Two-fold cross-fitting doubles the gold pairs per language: calibrate on the evaluation half, evaluate on the
calibration half with that file, and pool both folds' counts:

    python -m tools.calibrate_bitext --part eval --out /tmp/cal_eval.json
    python -m tools.eval_bucc --part calib --calibration /tmp/cal_eval.json --out /tmp/bucc_swapped.json
    python -m tools.eval_bucc --combine /tmp/bucc.json /tmp/bucc_swapped.json
    python -m tools.eval_bucc --combine /tmp/bucc.json /tmp/bucc_swapped.json --paired margin:usem3 cos:usem3

--paired resamples the source sentences of both folds (paired bootstrap) to tell a real F1 difference between two
systems from noise.

The cached embeddings of tools/eval_tatoeba.py are reused (--cache).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.eval_tatoeba import DATA, TARGET_LANGUAGES, all_languages, covered, embeddings, load_pairs
from transforms.bitext import knn_both, score_candidates, select, sentence_lid, side_info
from transforms.bitext_mining import near_identical, numbers_agree
from transforms.bitext_scoring import LogisticScorer, feature_names
from transforms.config import BitextConfig

N_ROUNDS = 6
DISTRACTOR_FACTOR = 5
# Every offline encoder is calibrated and compared, whichever of them BitextConfig ships enabled.
OFFLINE_ENCODERS = ("usem3", "e5-small")


def comparison_config() -> BitextConfig:
    """The shipped settings with every offline encoder enabled, so each encoder set can be mined."""
    return BitextConfig(encoders=list(OFFLINE_ENCODERS))


def shipped_system(language: str) -> str:
    """Name of the system the stage runs by default for `language`-eng (learned scorer over its encoder set)."""
    from transforms.bitext import pair_encoders

    return "learned:" + "+".join(pair_encoders(BitextConfig(), language, "eng"))


def norm(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass
class Corpus:
    """Dev files loaded once: texts, references, LID and per-encoder embeddings on demand."""

    cache: Path
    data: Path = DATA
    files: dict = field(default_factory=dict)
    vectors: dict = field(default_factory=dict)
    lid: dict = field(default_factory=dict)

    def pairs(self, language: str) -> tuple[list[str], list[str]]:
        if language not in self.files:
            self.files[language] = load_pairs(language, self.data)
        return self.files[language]

    def emb(self, encoder: str, language: str, side: str, lines: list[int]) -> np.ndarray:
        key = (encoder, language, side)
        table = self.vectors.setdefault(key, {})
        missing = [ln for ln in lines if ln not in table]
        if missing:
            src, eng = self.pairs(language)
            vecs = embeddings(encoder, language, side, src if side == "src" else eng, self.cache, missing)
            table.update(zip(missing, vecs))
        return np.stack([table[ln] for ln in lines])

    def lid_of(self, language: str, side: str) -> list[tuple[str, float, float]]:
        """The stage's sentence LID of a dev file side (`sentence_lid`, expecting the file's language)."""
        key = (language, side)
        if key not in self.lid:
            from transforms.langid import LanguageIdentifier

            if "model" not in self.lid:
                self.lid["model"] = LanguageIdentifier()
            texts = self.pairs(language)[0 if side == "src" else 1]
            expected = language if side == "src" else "eng"
            self.lid[key] = sentence_lid(self.lid["model"], texts, [expected] * len(texts))
        return self.lid[key]


@dataclass
class Round:
    """Line indices (into the full dev files) of one round's pools."""

    src: dict[str, list[int]]  # language -> pooled source lines
    gold: dict[str, list[int]]
    eng: dict[str, list[tuple[str, int]]]  # language -> (file language, line) of its own English pool


def _trigram_matrix(texts: list[str], vocab: dict[str, int]):
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    for r, t in enumerate(texts):
        t = f" {norm(t)} "
        grams = {vocab.setdefault(t[i : i + 3], len(vocab)) for i in range(len(t) - 2)}
        rows += [r] * len(grams)
        cols += sorted(grams)
    m = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), 1 << 22))
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1))).ravel()
    return m.multiply(1 / np.maximum(norms, 1e-9)[:, None]).tocsr()


def build_round(corpus: Corpus, languages: list[str], distractor_files: list[str], part: str, rnd: int,
                seed: int = 0) -> Round:
    """Round `rnd`: the rnd-th sixth of each language's half is gold. The English distractors are the same in
    every round of a half (so each is embedded once); they are picked against every English sentence of the
    language's half, and every one of those is withheld in five rounds out of six."""
    src_pool, gold_pool, eng_pool = {}, {}, {}
    offset = 0 if part == "calib" else 1
    for lang in languages:
        lines = list(range(offset, len(corpus.pairs(lang)[0]), 2))
        size = len(lines) // N_ROUNDS
        gold = lines[rnd * size : (rnd + 1) * size]
        src_pool[lang], gold_pool[lang] = lines, gold
        eng_pool[lang] = [(lang, ln) for ln in gold]
    for lang, extra in distractors(corpus, tuple(languages), tuple(distractor_files), part, seed).items():
        eng_pool[lang] = sorted(eng_pool[lang] + extra)
    return Round(src_pool, gold_pool, eng_pool)


_distractor_cache: dict = {}


def distractors(corpus: Corpus, languages: tuple[str, ...], distractor_files: tuple[str, ...], part: str,
                seed: int) -> dict[str, list[tuple[str, int]]]:
    """Each language's English distractors. They are disjoint across languages (a sentence serves one pool),
    which keeps the picks and their cached embeddings independent of how the pools are grouped."""
    key = (languages, distractor_files, part, seed)
    if key in _distractor_cache:
        return _distractor_cache[key]
    rng = np.random.default_rng([seed, 0 if part == "calib" else 1])
    offset = 0 if part == "calib" else 1
    # English sentences of every pooled language (both halves) are never distractors.
    taken = {norm(e) for lang in languages for e in corpus.pairs(lang)[1]}
    pool_texts, pool_ids = [], []
    for lang in distractor_files:
        eng = corpus.pairs(lang)[1]
        for line in range(offset, len(eng), 2):
            if norm(eng[line]) not in taken:
                taken.add(norm(eng[line]))
                pool_texts.append(eng[line])
                pool_ids.append((lang, line))
    vocab: dict[str, int] = {}
    pool_m = _trigram_matrix(pool_texts, vocab)
    used: set[int] = set()
    out: dict[str, list[tuple[str, int]]] = {}
    for lang in languages:
        eng = corpus.pairs(lang)[1]
        lines = list(range(offset, len(eng), 2))
        want = DISTRACTOR_FACTOR * (len(lines) // N_ROUNDS)
        sims = (_trigram_matrix([eng[ln] for ln in lines], vocab) @ pool_m.T).toarray()
        picked = []
        for row in rng.permutation(len(lines)):
            if len(picked) >= want // 2:
                break
            for cand in np.argsort(-sims[row]).tolist():
                if cand not in used and not near_identical(pool_texts[cand], eng[lines[row]], 0.75):
                    used.add(cand)
                    picked.append(cand)
                    break
        rest = [i for i in rng.permutation(len(pool_texts)).tolist() if i not in used][: want - len(picked)]
        used.update(rest)
        out[lang] = [pool_ids[i] for i in picked + rest]
    _distractor_cache[key] = out
    return out


def prf(correct: int, mined: int, found: int, true: int) -> dict[str, float]:
    """Precision correct/mined, recall found/true, and F1 (found differs from correct only where one gold line
    can give several mined rows, as in the --beam path)."""
    p, r = correct / max(mined, 1), found / max(true, 1)
    return {"p": round(p, 4), "r": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-9), 4)}


@dataclass
class Records:
    """Greedy (`max`) acceptance order of one system on one language, over all rounds."""

    score: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    passes: list[bool] = field(default_factory=list)
    unit: list[int] = field(default_factory=list)  # per selected pair: index of its source sentence in `gold`
    gold: list[bool] = field(default_factory=list)  # per pooled source sentence: its translation is in the pool

    @property
    def n_true(self) -> int:
        return sum(self.gold)

    def _kept(self, threshold: float) -> np.ndarray:
        s, p = np.asarray(self.score, dtype=np.float64), np.asarray(self.passes, bool)
        return (s >= threshold) & p if len(s) else np.zeros(0, bool)

    def prf(self, threshold: float) -> dict[str, float]:
        kept = self._kept(threshold)
        tp = int((kept & np.asarray(self.correct, bool)).sum())
        mined = int(kept.sum())
        return prf(tp, mined, tp, self.n_true) | {"mined": mined, "tp": tp, "true": self.n_true}

    def best(self) -> tuple[float, dict]:
        if not self.score:
            return 0.0, self.prf(np.inf)
        cands = np.unique(np.asarray(self.score))
        results = [(float(t), self.prf(t)) for t in cands[:: max(len(cands) // 400, 1)]]
        return max(results, key=lambda r: r[1]["f1"])

    def extend(self, other: Records) -> None:
        self.unit += [u + len(self.gold) for u in other.unit]
        self.gold += other.gold
        self.score += other.score
        self.correct += other.correct
        self.passes += other.passes

    def outcomes(self, threshold: float) -> str:
        """One digit per pooled source sentence, 4*gold + 2*kept + correct: what a paired bootstrap resamples."""
        code = 4 * np.asarray(self.gold, dtype=np.int64)
        kept = self._kept(threshold)
        if len(kept):  # max mode selects each source sentence at most once
            code[np.asarray(self.unit)[kept]] += 2 + np.asarray(self.correct, dtype=np.int64)[kept]
        return "".join(map(str, code.tolist()))


def encoder_sets(language: str, config: BitextConfig) -> list[tuple[str, ...]]:
    from transforms.bitext import pair_encoders

    full = pair_encoders(config, language, "eng")
    singles = [(e,) for e in full]
    return singles + ([full] if len(full) > 1 else [])


def prefetch(corpus: Corpus, rnd: Round, encoders: list[str]) -> None:
    """Embed every sentence a round needs in one call per file (the cache is per line)."""
    by_file: dict[str, list[int]] = {}
    for pool in rnd.eng.values():
        for lang, line in pool:
            by_file.setdefault(lang, []).append(line)
    for enc in encoders:
        for lang, lines in rnd.src.items():
            if covered(enc, lang):
                corpus.emb(enc, lang, "src", lines)
                corpus.emb(enc, lang, "eng", lines)
        for lang, lines in sorted(by_file.items()):
            corpus.emb(enc, lang, "eng", lines)


def collect(corpus: Corpus, rnd: Round, systems: dict, config: BitextConfig, calibration: dict,
            features_out: dict | None = None) -> dict[tuple[str, str], Records]:
    """Run every system of every language on one round: {(system, language): Records}.

    systems: name -> (encoder set, scoring) where scoring is "cos", "margin" or a LogisticScorer.
    features_out, when given, collects (features, label, language, per-encoder products u*v of the two sentence
    vectors) of every candidate per encoder set (calibration).
    """
    out: dict[tuple[str, str], Records] = {}
    prefetch(corpus, rnd, sorted({e for encs, _ in systems.values() for e in encs}))
    for lang, lines in rnd.src.items():
        pool = rnd.eng[lang]
        eng_texts = [corpus.pairs(l)[1][ln] for l, ln in pool]
        tgt = side_info(eng_texts, [corpus.lid_of(l, "eng")[ln] for l, ln in pool], "eng", config)
        src_all, eng_all = corpus.pairs(lang)
        refs: dict[str, set[str]] = {}
        for s, e in zip(src_all, eng_all):
            refs.setdefault(norm(s), set()).add(norm(e))
        src_texts = [src_all[ln] for ln in lines]
        src = side_info(src_texts, [corpus.lid_of(lang, "src")[ln] for ln in lines], lang, config)
        eng_norm = {norm(t) for t in eng_texts}
        gold = [bool(refs[norm(t)] & eng_norm) for t in src_texts]
        by_set = {}
        for name, (encs, scoring) in systems.items():
            if not set(encs) <= set(encoder_sets(lang, config)[-1] if encoder_sets(lang, config) else ()):
                continue
            metric = scoring.metric_for(encs) if isinstance(scoring, LogisticScorer) else None
            key = (encs, name if metric else None)  # a learned metric changes the kNN views: mine per scorer
            if key not in by_set:
                src_v = [corpus.emb(e, lang, "src", lines) for e in encs]
                tgt_v = [np.concatenate([corpus.emb(e, l, "eng", [ln]) for l, ln in pool]) for e in encs]
                fwd, bwd, fe, be = knn_both(src_v, tgt_v, encs, config, calibration, metric)
                cfg = config.model_copy(update={"scorer": "margin"})
                by_set[key] = score_candidates(fwd, bwd, fe, be, src, tgt, encs, cfg, calibration, features=True)[:2]
                if features_out is not None and metric is None:
                    cands, feats = by_set[key]
                    labels = [norm(eng_texts[j]) in refs[norm(src_texts[i])]
                              for i, j in zip(cands.src.tolist(), cands.tgt.tolist())]
                    products = {e: src_v[n][cands.src] * tgt_v[n][cands.tgt] for n, e in enumerate(encs)}
                    features_out.setdefault(encs, []).append((feats, np.asarray(labels, np.float32), lang, products))
            cands, feats = by_set[key]
            if scoring == "cos":
                score = cands.cos
            elif scoring == "margin":
                score = cands.margin
            else:
                score = scoring.predict(feats, feature_names(encs, metric is not None))
            chosen = select(cands.src, cands.tgt, cands.direction, score, "max", -np.inf)
            rec = Records(gold=list(gold))
            for c in chosen.tolist():
                i, j = int(cands.src[c]), int(cands.tgt[c])
                a, b = src_texts[i], eng_texts[j]
                rec.unit.append(i)
                rec.score.append(float(score[c]))
                rec.correct.append(norm(b) in refs[norm(a)])
                low, high = config.length_ratio
                ratio = (src.words[i] + 1) / (tgt.words[j] + 1)
                rec.passes.append(bool(src.lid_ok[i] > 0 and tgt.lid_ok[j] > 0 and numbers_agree(a, b)
                                       and not near_identical(a, b, config.near_identical) and low <= ratio <= high))
            out[(name, lang)] = rec
    return out


def systems_from(calibration: dict) -> dict:
    """Every system the calibration file describes: cosine and margin per encoder set, learned scorers."""
    systems = {}
    for set_name, entry in calibration.get("margin_thresholds", {}).items():
        encs = tuple(set_name.split("+"))
        systems[f"cos:{set_name}"] = (encs, "cos")
        systems[f"margin:{set_name}"] = (encs, "margin")
    for set_name, entry in calibration.get("scorers", {}).items():
        encs = tuple(set_name.split("+"))
        systems[f"learned:{set_name}"] = (encs, LogisticScorer.from_dict(entry["ratio"]["model"]))
    for abl_name, entry in calibration.get("ablations", {}).items():
        systems[abl_name] = (tuple(entry["encoders"]), LogisticScorer.from_dict(entry["model"]))
    return systems


def calibrated_threshold(system: str, lang: str, calibration: dict, margin_kind: str = "ratio") -> float:
    kind, _, set_name = system.partition(":")
    if kind == "learned":
        entry = calibration["scorers"][set_name]["ratio"]
        return entry.get("per_language", {}).get(_macro(lang), entry["threshold"])
    if kind in ("cos", "margin"):
        entry = calibration["margin_thresholds"][set_name][kind if kind == "cos" else margin_kind]
        return entry.get("per_language", {}).get(_macro(lang), entry["threshold"])
    return calibration["ablations"][system]["threshold"]


def one_threshold_each(calibration: dict) -> dict:
    """The calibration with its per-language thresholds dropped, so each system uses its one fitted threshold.

    A margin is meant to put every language on one scale (that is what LASER's single 1.06 relies on); this shows
    how much each system loses without thresholds fitted per language."""
    out = copy.deepcopy(calibration)
    for group in ("margin_thresholds", "scorers"):
        for kinds in out.get(group, {}).values():
            for entry in kinds.values():
                entry.pop("per_language", None)
    return out


def _macro(lang: str) -> str:
    from transforms.bitext_encoders import macro_language

    return macro_language(lang)


def distractor_files(languages: list[str], n: int, data: Path = DATA) -> list[str]:
    """Dev files whose English sides serve as distractors: the first n (alphabetically) not being mined."""
    return [l for l in all_languages(data) if l not in languages and l not in TARGET_LANGUAGES][:n]


def run_beam_round(corpus: Corpus, rnd: Round, lang: str, config: BitextConfig) -> list[dict]:
    """The stage itself on one language pair of a round (its own English pool): each pool becomes documents of
    10 lines; returns the mined rows."""
    import apache_beam as beam

    from transforms.bitext import MineBitext

    docs = []
    lines, src = rnd.src[lang], corpus.pairs(lang)[0]
    for d in range(0, len(lines), 10):
        docs.append({"id": f"{lang}-{d}", "text": "\n".join(src[ln] for ln in lines[d : d + 10]),
                     "language": lang, "partition": f"{lang}_X", "script": None})
    pool = rnd.eng[lang]
    for d in range(0, len(pool), 10):
        docs.append({"id": f"eng-{d}", "text": "\n".join(corpus.pairs(l)[1][ln] for l, ln in pool[d : d + 10]),
                     "language": "eng", "partition": "eng_X", "script": None})
    # Rows go through files: a closure appending to a local list would append to a pickled copy.
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline() as p:
            out = p | beam.Create(docs) | MineBitext(config)
            out["bitext"] | beam.Map(lambda r: json.dumps(r, default=str)) | beam.io.WriteToText(f"{tmp}/rows")
        return [json.loads(line) for path in sorted(Path(tmp).glob("rows*"))
                for line in path.read_text(encoding="utf-8").splitlines()]


def lines_of_sentences(lines: list[str], language: str) -> dict[str, set[str]]:
    """norm(sentence) -> norm(dev lines) it was segmented from. The stage splits a multi-sentence Tatoeba line, so
    a mined row is correct when its English sentence comes from a reference translation of its source line."""
    from transforms.bitext_segment import split_sentences

    out: dict[str, set[str]] = {}
    for line in lines:
        for seg in split_sentences(line, language)[0] or [None]:
            out.setdefault(norm(seg.text if seg else line), set()).add(norm(line))
    return out


class _CachedEncoder:
    """Answers from the dev-file embedding cache; falls back to the real encoder for unseen text."""

    def __init__(self, name: str, corpus: Corpus):
        from transforms.bitext_encoders import get_encoder

        self.name = name
        self.real = get_encoder(name)
        self.dim = self.real.dim
        self.table = {}
        for (enc, lang, side), vectors in corpus.vectors.items():
            if enc == name:
                texts = corpus.pairs(lang)[0 if side == "src" else 1]
                self.table.update((texts[ln], v) for ln, v in vectors.items())

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.table]
        if missing:
            self.table.update(zip(missing, self.real.encode(missing)))
        return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def paired_bootstrap(units_a: str, units_b: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """F1(a) - F1(b) over the same source sentences (Records.outcomes), with a 95% percentile interval from
    resampling sentences, and the share of resamples where a is not better. Both systems are scored on every
    resample of the same sentences, so the variation they share cancels."""
    if len(units_a) != len(units_b):
        raise ValueError("paired bootstrap: the systems were run on different sentences")
    digits = np.frombuffer((units_a + units_b).encode("ascii"), dtype=np.uint8)
    codes = (digits.astype(np.int64) - ord("0")).reshape(2, -1)
    # Per sentence and system: (true positive, kept, gold) counts; a resample sums them over drawn sentences.
    counts = np.stack([codes % 4 == 3, codes % 4 >= 2, codes >= 4], axis=-1).astype(np.int64)

    def f1(summed: np.ndarray) -> np.ndarray:
        tp, mined, true = summed[..., 0], summed[..., 1], summed[..., 2]
        p, r = tp / np.maximum(mined, 1), tp / np.maximum(true, 1)
        return 2 * p * r / np.maximum(p + r, 1e-9)

    rng, n, diffs = np.random.default_rng(seed), codes.shape[1], []
    for start in range(0, n_boot if n else 0, 100):  # 100 resamples at a time keeps memory at ~100 x n
        draws = rng.integers(0, n, size=(min(100, n_boot - start), n))
        summed = counts[:, draws].sum(axis=2)  # (2 systems, draws, 3)
        diffs.append(f1(summed[0]) - f1(summed[1]))
    diff = np.concatenate(diffs) if diffs else np.zeros(1)
    lo, hi = np.percentile(diff, [2.5, 97.5])
    whole = f1(counts.sum(axis=1))
    return {"diff": round(float(whole[0] - whole[1]), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "p_not_better": round(float((diff <= 0).mean()), 4)}


def combine_reports(reports: list[dict], paired: tuple[str, str] | None = None) -> dict:
    """Per system and language, P/R/F1 at each report's own calibrated thresholds from the summed counts; the
    reports must cover disjoint halves (each evaluated with a calibration fitted on the other). `paired`: two
    systems to compare per language and pooled with paired_bootstrap."""
    parts = [r["task"]["part"] for r in reports]
    if len(set(parts)) != len(parts):
        raise SystemExit(f"eval_bucc --combine: the reports must be on different halves, got {parts}")
    counts: dict[str, dict[str, list[int]]] = {}
    units: dict[str, dict[str, str]] = {}
    for report in reports:
        for name, entry in report["systems"].items():
            for lang, result in entry["per_language"].items():
                c = counts.setdefault(name, {}).setdefault(lang, [0, 0, 0])
                at = result["at_default"]
                c[0], c[1], c[2] = c[0] + at["tp"], c[1] + at["mined"], c[2] + at["true"]
                units.setdefault(name, {}).setdefault(lang, "")
                units[name][lang] += at.get("units", "")

    def scored(tp: int, mined: int, true: int) -> dict:
        return prf(tp, mined, tp, true) | {"true": true}

    systems = {}
    for name, langs in counts.items():
        pooled = [sum(c[i] for c in langs.values()) for i in range(3)]
        systems[name] = {"per_language": {lang: scored(*c) for lang, c in sorted(langs.items())},
                         "pooled": scored(*pooled)}
    out = {"task": {"parts": parts, "calibrations": [r["task"].get("calibration") for r in reports]},
           "systems": systems}
    if paired:
        a, b = paired
        missing = [n for n in paired if n not in units or not all(units[n].values())]
        if missing:
            raise SystemExit(f"eval_bucc --paired: no per-sentence outcomes for {missing} in these reports "
                             f"(systems: {sorted(units)})")
        langs = sorted(set(units[a]) & set(units[b]))
        out["paired"] = {"systems": [a, b], "per_language": {
            lang: paired_bootstrap(units[a][lang], units[b][lang]) for lang in langs}}
        out["paired"]["pooled"] = paired_bootstrap("".join(units[a][l] for l in langs),
                                                   "".join(units[b][l] for l in langs))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--languages", nargs="*", default=list(TARGET_LANGUAGES))
    ap.add_argument("--part", choices=["eval", "calib"], default="eval")
    ap.add_argument("--rounds", type=int, default=N_ROUNDS)
    ap.add_argument("--distractor-files", type=int, default=30)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bitext_cache"))
    ap.add_argument("--prefetch", action="store_true", help="only embed what both halves need, then exit")
    ap.add_argument("--beam", action="store_true", help="run the MineBitext stage end to end at shipped defaults")
    ap.add_argument("--encoders", nargs="+", choices=OFFLINE_ENCODERS, help="--beam: encoders to enable instead of "
                    "BitextConfig's default")
    ap.add_argument("--margin", choices=["ratio", "distance"], default="ratio",
                    help="margin of the margin:* systems; distance runs only the cos:* and margin:* systems, since "
                         "the learned scorers are fitted on ratio-margin features")
    ap.add_argument("--calibration", type=Path, help="thresholds and scorers to evaluate (default: the shipped file); "
                    "one fitted on the other half than --part")
    ap.add_argument("--combine", nargs="+", type=Path, metavar="REPORT",
                    help="pool the counts of reports on disjoint halves (cross-fitting) and print F1 per language")
    ap.add_argument("--paired", nargs=2, metavar=("SYSTEM_A", "SYSTEM_B"),
                    help="with --combine: paired bootstrap of F1(A) - F1(B) per language over the same sentences")
    ap.add_argument("--one-threshold", action="store_true",
                    help="ignore the per-language thresholds: each system uses its single calibrated threshold")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.paired and not args.combine:
        ap.error("--paired compares systems of --combine reports")
    if args.combine:
        combined = combine_reports([json.loads(p.read_text()) for p in args.combine],
                                   tuple(args.paired) if args.paired else None)
        text = json.dumps(combined, indent=1)
        if args.out:
            args.out.write_text(text)
        print(text)
        return
    from transforms.bitext_scoring import load_calibration

    config = BitextConfig(encoders=args.encoders) if args.encoders else BitextConfig()
    calibration = load_calibration(str(args.calibration) if args.calibration else None)
    if args.one_threshold:
        calibration = one_threshold_each(calibration)
    corpus = Corpus(args.cache)
    dfiles = distractor_files(args.languages, args.distractor_files)
    if args.prefetch:
        for part in ("calib", "eval"):
            for r in range(args.rounds):
                prefetch(corpus, build_round(corpus, args.languages, dfiles, part, r), list(OFFLINE_ENCODERS))
                print(part, r, "embedded", file=sys.stderr, flush=True)
        return
    report: dict = {"task": {"languages": args.languages, "part": args.part, "rounds": args.rounds,
                             "distractor_files": dfiles, "calibration": str(args.calibration or "shipped"),
                             "one_threshold": args.one_threshold},
                    "shipped_default": {lang: shipped_system(lang) for lang in args.languages}}
    if args.beam:
        from transforms.bitext_encoders import register_encoder

        rounds = [build_round(corpus, args.languages, dfiles, args.part, r) for r in range(args.rounds)]
        for rnd in rounds:
            prefetch(corpus, rnd, config.encoders)
        for e in config.encoders:
            register_encoder(e, _CachedEncoder(e, corpus))
        totals: dict[str, list[int]] = {}
        for r, rnd in enumerate(rounds):
            for lang, lines in rnd.src.items():
                eng_norm = {norm(corpus.pairs(l)[1][ln]) for l, ln in rnd.eng[lang]}
                src_all, eng_all = corpus.pairs(lang)
                refs: dict[str, set[str]] = {}
                for s, e in zip(src_all, eng_all):
                    refs.setdefault(norm(s), set()).add(norm(e))
                t = totals.setdefault(lang, [0, 0, 0, 0])
                t[2] += sum(1 for ln in lines if refs[norm(src_all[ln])] & eng_norm)
                src_lines = lines_of_sentences([src_all[ln] for ln in lines], lang)
                eng_lines = lines_of_sentences([corpus.pairs(l)[1][ln] for l, ln in rnd.eng[lang]], "eng")
                found = set()
                for row in run_beam_round(corpus, rnd, lang, config):
                    hits = {a for a in src_lines.get(norm(row["src_text"]), ())
                            if refs[a] & eng_lines.get(norm(row["tgt_text"]), set())}
                    t[0] += bool(hits)
                    t[1] += 1
                    found |= hits
                t[3] += len(found)
            print(f"round {r} done", file=sys.stderr, flush=True)
        per = {}
        for lang, (tp, mined, n_true, hit) in sorted(totals.items()):
            per[lang] = prf(tp, mined, hit, n_true) | {"mined": mined, "true": n_true}
        tp, mined, n_true, hit = (sum(v[i] for v in totals.values()) for i in range(4))
        report["stage"] = {"encoders": config.encoders, "per_language": per, "pooled": prf(tp, mined, hit, n_true)}
    else:
        systems = systems_from(calibration)
        if args.margin != "ratio":
            systems = {name: system for name, system in systems.items() if name.split(":")[0] in ("cos", "margin")}
        mining = comparison_config().model_copy(update={"margin": args.margin})
        report["task"]["margin"] = args.margin
        merged: dict[tuple[str, str], Records] = {}
        for r in range(args.rounds):
            rnd = build_round(corpus, args.languages, dfiles, args.part, r)
            for key, rec in collect(corpus, rnd, systems, mining, calibration).items():
                merged.setdefault(key, Records()).extend(rec)
            print(f"round {r} done", file=sys.stderr, flush=True)
        table: dict = {}
        for name in systems:
            langs = sorted(l for (n, l) in merged if n == name)
            if not langs:
                continue
            pooled, pooled_best = Records(), Records()
            entry = {"per_language": {}}
            for lang in langs:
                rec = merged[(name, lang)]
                t = calibrated_threshold(name, lang, calibration, args.margin)
                best_t, best = rec.best()
                entry["per_language"][lang] = {"at_default": rec.prf(t) | {"threshold": round(t, 4),
                                                                           "units": rec.outcomes(t)},
                                               "best": best | {"threshold": round(best_t, 4)}}
                pooled.extend(Records([s - t for s in rec.score], rec.correct, rec.passes, rec.unit, rec.gold))
                pooled_best.extend(rec)
            entry["pooled_at_default"] = pooled.prf(0.0)
            entry["min_f1_at_default"] = min(v["at_default"]["f1"] for v in entry["per_language"].values())
            best_t, best = pooled_best.best()
            entry["pooled_best_single_threshold"] = best | {"threshold": round(best_t, 4)}
            table[name] = entry
            print(name, json.dumps(entry["pooled_at_default"]), "min", entry["min_f1_at_default"], file=sys.stderr)
        report["systems"] = table
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
