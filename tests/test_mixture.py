"""Mixture inference: readers, merge replay, LP recovery, the Beam stage and bad input."""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest

from schemas.mixture import MIXTURE_SCHEMA
from transforms.config import MixtureConfig
from transforms.mixture import CategorySample, InferMixture, infer, report_rows
from transforms.mixture_apply import _merge_word, apply_merges, base_symbols
from transforms.mixture_lp import solve_mixture
from transforms.mixture_merges import (
    MergeListError,
    check_pretokenizer,
    decode_byte_level,
    default_merge_list_path,
    read_merge_list,
    regex_pretokenizer,
)

TATOEBA = "/work/shared/data/tatoeba-dev"


def _lines(lang: str, side: int = 0) -> list[str]:
    with open(os.path.join(TATOEBA, f"{lang}-eng.tsv"), encoding="utf-8") as f:
        return [line.split("\t")[side] + "\n" for line in f.read().splitlines()]


def _train(texts: list[str], merges: int, path):
    from tools.mixture_experiment import train_bpe

    return train_bpe(texts, merges, path)


def _direct_counts(table: dict, merges: list, byte_level: bool) -> Counter:
    """Reference: pair counts after applying all merges to each word from scratch."""
    counts: Counter = Counter()
    for word, cnt in table.items():
        syms = base_symbols(word, byte_level)
        for left, right in merges:
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == left and syms[i + 1] == right:
                    out.append(left + right)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        for k in range(len(syms) - 1):
            counts[syms[k], syms[k + 1]] += cnt
    return counts


# --- merge replay --------------------------------------------------------------------------------------


def test_merge_word_changes_only_overlapping_pairs():
    # a b a b c with (a, b) -> X: pairs go from {ab:2, ba:1, bc:1} to {XX:1, Xc:1}
    out, changes = _merge_word([1, 2, 1, 2, 3], 1, 2, 9)
    assert out == [9, 9, 3]
    delta = Counter()
    for x, y, d in changes:
        delta[x, y] += d
    assert {k: v for k, v in delta.items() if v} == {(1, 2): -2, (2, 1): -1, (2, 3): -1, (9, 9): 1, (9, 3): 1}
    out, changes = _merge_word([5, 5, 5], 5, 5, 7)  # overlapping pair: left to right, like HF
    assert out == [7, 5]


def test_trace_matches_full_recount(tmp_path):
    texts = _lines("fra")[:200] + _lines("deu")[:200]
    _train(texts, 300, tmp_path / "tok.json")
    ml = read_merge_list(tmp_path / "tok.json")
    tables = {"fra": Counter(), "deu": Counter()}
    for line in _lines("fra")[:200]:
        tables["fra"].update(ml.pretokenizer(line))
    for line in _lines("deu")[:200]:
        tables["deu"].update(ml.pretokenizer(line))
    trace = apply_merges(tables, ml)
    for t_check in (0, 57, len(ml.merges)):
        expected = {c: _direct_counts(tables[c], ml.merges[:t_check], True) for c in tables}
        pairs = np.arange(trace.n_pairs)
        got = trace.at(np.full(trace.n_pairs, t_check), pairs)
        for ci, cat in enumerate(trace.categories):
            assert got[:, ci].sum() == sum(expected[cat].values())
            assert sorted(got[:, ci][got[:, ci] > 0].tolist()) == sorted(v for v in expected[cat].values() if v)
    assert (trace.merge_pair >= 0).all()  # every merge was learnt from this very text


# --- the LP --------------------------------------------------------------------------------------------


def test_recovers_known_mixture_exactly_when_counting_on_training_text(tmp_path):
    langs = ["fra", "deu", "spa", "ita"]
    pools = {lang: _lines(lang) for lang in langs}
    reps = {"fra": 6, "deu": 2, "spa": 1, "ita": 3}
    texts = [line for lang in langs for line in pools[lang] * reps[lang]]
    _train(texts, 800, tmp_path / "tok.json")
    ml = read_merge_list(tmp_path / "tok.json")
    samples = {}
    for lang in langs:
        s = CategorySample()
        for line in pools[lang]:
            s.add(line, ml.pretokenizer)
        samples[lang] = s
    report = infer(samples, ml, MixtureConfig(min_category_bytes=0, warn_category_bytes=0))
    assert report["error"] is None and report["solver"]["optimal"]
    sizes = {lang: samples[lang].n_bytes * reps[lang] for lang in langs}
    total = sum(sizes.values())
    est = {row["category"]: row["byte_share"] for row in report["categories"]}
    mse = np.mean([(est[lang] - sizes[lang] / total) ** 2 for lang in langs])
    assert mse < 1e-6, (est, sizes)
    assert report["solver"]["constraints"] > 0 and report["solver"]["rounds"] >= 1


def test_solver_failure_is_reported_not_hidden(tmp_path):
    texts = _lines("fra")[:300] + _lines("deu")[:300]
    _train(texts, 200, tmp_path / "tok.json")
    ml = read_merge_list(tmp_path / "tok.json")
    tables = {lang: Counter(w for line in _lines(lang)[:300] for w in ml.pretokenizer(line)) for lang in ("fra", "deu")}
    trace = apply_merges(tables, ml, {"fra": 1, "deu": 1})
    result = solve_mixture(trace, time_limit=1e-9)
    assert not result.optimal
    assert "time limit" in result.status.lower()
    assert np.isnan(result.byte_shares).all()


def _held_out_trace(tmp_path, merges: int = 40):
    """Three languages, tokenizer trained on some lines, pairs counted on others: many violated pairs."""
    langs = ("fra", "deu", "spa")
    _train([line for lang in langs for line in _lines(lang)[:150] * (1 + langs.index(lang))], merges,
           tmp_path / "tok.json")
    ml = read_merge_list(tmp_path / "tok.json")
    tables = {lang: Counter(w for line in _lines(lang)[200:320] for w in ml.pretokenizer(line)) for lang in langs}
    return apply_merges(tables, ml, {lang: 1 for lang in langs})


def _full_lp(trace, scale: float, eps: float, fixed_alpha=None) -> float:
    """The LP with every (merge, pair) constraint at once, each relaxed by `eps`; returns its optimal objective
    (scaled units)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    n, T, P = len(trace.categories), trace.n_merges, trace.n_pairs
    norm = scale / trace.pairs0
    rows, cols, vals, r = [], [], [], 0
    for t in range(T):
        m = trace.merge_pair[t]
        counts = trace.at(np.full(P, t), np.arange(P)) * norm
        if m < 0 or not counts[m].any():
            continue
        for p in np.flatnonzero(counts.any(axis=1)):
            if p == m:
                continue
            diff = counts[m] - counts[p]  # Σ α diff + v_t + v_p ≥ 0  ->  −Σ α diff − v_t − v_p ≤ 0
            rows += [r] * (n + 2)
            cols += list(range(n)) + [n + t, n + T + p]
            vals += (-diff).tolist() + [-1.0, -1.0]
            r += 1
    a_ub = coo_matrix((vals, (rows, cols)), shape=(r, n + T + P)).tocsr()
    cost = np.r_[np.zeros(n), np.ones(T + P)]
    bounds = [(a, a) for a in fixed_alpha] if fixed_alpha is not None else [(0, None)] * n
    res = linprog(cost, A_ub=a_ub, b_ub=np.full(r, eps), A_eq=np.r_[np.ones(n), np.zeros(T + P)][None, :], b_eq=[1],
                  bounds=bounds + [(0, None)] * (T + P), method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


@pytest.mark.parametrize("strides,per_merge,purge", [((), 10, None), ((4,), 10, None), ((4, 2), 2, 1)])
def test_lazy_lp_solves_the_full_lp(tmp_path, strides, per_merge, purge):
    trace = _held_out_trace(tmp_path)
    result = solve_mixture(trace, coarse_strides=strides, per_merge=per_merge, purge_after=purge,
                           phase_gap=0.05 if purge else 0.0)
    assert result.converged and result.optimal
    if purge:  # rows were deleted from the model, and the optimum is still the full LP's
        assert result.purged > 0
    assert result.rounds > 1  # the instance does need more than one round of constraints
    assert result.violated_last_round == 0 and result.gap == 0.0
    assert all(entry["in_model_violated"] == 0 for entry in result.round_log)  # nothing is ever re-added
    full = _full_lp(trace, 1e6, result.tolerance)
    assert result.objective == pytest.approx(full, rel=1e-6)
    # the lazy α is an optimal α of the full LP: fixing it there costs nothing more
    assert _full_lp(trace, 1e6, result.tolerance, fixed_alpha=result.alpha) == pytest.approx(full, rel=1e-6)


def test_lp_bounds_bracket_the_optimum_when_stopped_early(tmp_path):
    trace = _held_out_trace(tmp_path)
    result = solve_mixture(trace, max_rounds=1)
    full = _full_lp(trace, 1e6, result.tolerance)
    assert not result.converged and result.violated_last_round > 0
    assert result.objective <= full * (1 + 1e-9) <= result.upper_bound * (1 + 1e-9)
    assert 0 < result.gap < 1


# --- readers -------------------------------------------------------------------------------------------


def test_tiktoken_reader_rebuilds_merge_order(tmp_path):
    ml = read_merge_list(default_merge_list_path())
    assert len(ml.merges) == 100_256 - 256  # every multi-byte rank of cl100k_base
    assert ml.merges[2] == (b"i", b"n")
    assert ml.pretokenizer.name == "cl100k"
    assert ml.pretokenizer("Hello world's 12345") == [b"Hello", b" world", b"'s", b" ", b"123", b"45"]
    # a small rank file with the same format, gzipped: ranks 256.. must come back as merges in rank order
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"ab": 256, b"abc": 257, b"bc": 258})
    data = "\n".join(f"{base64.b64encode(k).decode()} {v}" for k, v in ranks.items()).encode()
    (tmp_path / "toy_cl100k.tiktoken.gz").write_bytes(gzip.compress(data))
    toy = read_merge_list(tmp_path / "toy_cl100k.tiktoken.gz")
    assert toy.merges == [(b"a", b"b"), (b"ab", b"c"), (b"b", b"c")]


def test_hf_json_list_merges_and_merges_txt_agree(tmp_path):
    tok = _train(_lines("fra"), 100, tmp_path / "tok.json")
    spec = json.loads((tmp_path / "tok.json").read_text())
    assert isinstance(spec["model"]["merges"][0], list)  # recent tokenizers write [a, b]
    ml = read_merge_list(tmp_path / "tok.json")
    lines = ["#version: 0.2"] + [" ".join(m) for m in spec["model"]["merges"]]
    (tmp_path / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    txt = read_merge_list(tmp_path / "merges.txt")
    assert txt.merges == ml.merges
    assert txt.pretokenizer.name == "gpt2"
    sentence = "Ça coûte 12 euros, n'est-ce pas ?"
    hf_pieces = [decode_byte_level(p) for p, _ in tok.pre_tokenizer.pre_tokenize_str(sentence)]
    assert ml.pretokenizer(sentence) == hf_pieces == txt.pretokenizer(sentence)


def test_sentencepiece_bpe_reader(tmp_path):
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(_lines("fra") + _lines("ita")), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=400,
                                   model_type="bpe", minloglevel=2)
    ml = read_merge_list(tmp_path / "sp.model")
    proc = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    pieces = {proc.id_to_piece(i) for i in range(proc.get_piece_size())}
    assert ml.merges and all(a + b in pieces for a, b in ml.merges)
    assert ml.pretokenizer("le chat") == ["\u2581le", "\u2581chat"]
    assert check_pretokenizer(ml) == 0.0
    # pickles by description, as Beam needs
    import pickle

    assert pickle.loads(pickle.dumps(ml.pretokenizer))("le chat") == ["\u2581le", "\u2581chat"]


def test_unparsable_merge_lists_raise_clear_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(MergeListError, match="not valid JSON"):
        read_merge_list(tmp_path / "bad.json")
    (tmp_path / "wp.json").write_text(json.dumps({"model": {"type": "WordPiece", "vocab": {}}}), encoding="utf-8")
    with pytest.raises(MergeListError, match="needs a BPE merge list"):
        read_merge_list(tmp_path / "wp.json")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b c\n", encoding="utf-8")
    with pytest.raises(MergeListError, match="two space-separated tokens"):
        read_merge_list(tmp_path / "merges.txt")
    (tmp_path / "x_cl100k.tiktoken").write_text("!!! notbase64\n", encoding="utf-8")
    with pytest.raises(MergeListError, match="base64"):
        read_merge_list(tmp_path / "x_cl100k.tiktoken")
    (tmp_path / "x.model").write_bytes(b"\x00garbage")
    with pytest.raises(MergeListError, match="not a SentencePiece model"):
        read_merge_list(tmp_path / "x.model")
    with pytest.raises(MergeListError, match="cannot read"):
        read_merge_list(tmp_path / "missing.json")


def test_mismatched_pretokenizer_is_an_error():
    ml = read_merge_list(default_merge_list_path()).top(20_000)
    ml.pretokenizer = regex_pretokenizer("gpt2")
    with pytest.raises(MergeListError, match="does not match"):
        check_pretokenizer(ml)


# --- the stage, the CLI and bad categories -------------------------------------------------------------


def _write_categories(root, langs, n_lines=None):
    for lang in langs:
        (root / lang).mkdir(parents=True)
        (root / lang / "text.txt").write_text("".join(_lines(lang)[:n_lines]), encoding="utf-8")


def test_cli_bad_category_folders(tmp_path, capsys):
    from tools.infer_mixture import main

    (tmp_path / "empty" / "fra").mkdir(parents=True)
    (tmp_path / "empty" / "deu").mkdir(parents=True)
    (tmp_path / "empty" / "deu" / "a.txt").write_text("Hallo\n", encoding="utf-8")
    assert main(["--categories", str(tmp_path / "empty"), "--top-merges", "100"]) == 2
    assert "no files: fra" in capsys.readouterr().err
    _write_categories(tmp_path / "one", ["fra"])
    assert main(["--categories", str(tmp_path / "one")]) == 2
    assert "single category" in capsys.readouterr().err


def test_cli_tiny_category_is_left_out_with_warning(tmp_path, capsys):
    from tools.infer_mixture import main

    _write_categories(tmp_path / "cats", ["fra", "deu", "spa"])
    (tmp_path / "cats" / "spa" / "text.txt").write_text("Hola.\n", encoding="utf-8")
    _train(_lines("fra") * 3 + _lines("deu"), 500, tmp_path / "tok.json")
    out = tmp_path / "out"
    rc = main(["--merges", str(tmp_path / "tok.json"), "--categories", str(tmp_path / "cats"),
               "--output", str(out), "--min-category-bytes", "1000"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "spa: left out" in err and "unreliable" in err
    report = json.loads((out / "mixture" / "report.json").read_text())
    shares = {r["category"]: r["byte_share"] for r in report["categories"]}
    assert shares["spa"] is None and abs(shares["fra"] + shares["deu"] - 1) < 1e-9
    fra, deu = (sum(len(x.encode()) for x in _lines(lang)) for lang in ("fra", "deu"))
    assert shares["fra"] == pytest.approx(3 * fra / (3 * fra + deu), abs=1e-3)  # trained on fra x3 + deu
    assert (out / "mixture" / "mixture.png").read_bytes()[:4] == b"\x89PNG"
    assert report["tokenizer"]["sha256"] and report["solver"]["status"] == "Optimal"


def test_beam_stage_single_partition_reports_error(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    docs = [{"id": str(i), "text": line, "partition": "fra_Latn"} for i, line in enumerate(_lines("fra")[:50])]
    _train([d["text"] for d in docs], 100, tmp_path / "tok.json")
    config = MixtureConfig(merges=str(tmp_path / "tok.json"))
    with TestPipeline() as p:
        out = p | beam.Create(docs) | InferMixture(config, str(tmp_path))
        assert_that(out["mixture"] | beam.Map(lambda r: (r["category"], r["included"], r["error"] is not None)),
                    equal_to([("fra_Latn", False, True)]), label="rows")
        assert_that(out["stats"] | beam.Filter(lambda kv: kv[0][2] == "failed"),
                    equal_to([(("mixture", "_all", "failed"), 1)]), label="stats")
    report = json.loads((tmp_path / "mixture" / "report.json").read_text())
    assert "at least 2 categories" in report["error"]


def test_beam_stage_counts_by_partition_and_matches_direct(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that

    docs = []
    for lang, part in (("fra", "fra_Latn"), ("deu", "deu_Latn"), ("rus", "rus_Cyrl")):
        docs += [{"id": f"{lang}{i}", "text": line, "partition": part} for i, line in enumerate(_lines(lang))]
    _train([d["text"] for d in docs], 1500, tmp_path / "tok.json")
    config = MixtureConfig(merges=str(tmp_path / "tok.json"), min_category_bytes=1000)
    direct_samples = defaultdict(CategorySample)
    merges = read_merge_list(tmp_path / "tok.json")
    for d in docs:
        direct_samples[d["partition"]].add(d["text"], merges.pretokenizer)
    direct = {r["category"]: r["byte_share"] for r in report_rows(infer(direct_samples, merges, config))}

    def check(rows):
        pa.Table.from_pylist(rows, schema=MIXTURE_SCHEMA)  # rows fit the schema
        got = {r["category"]: r["byte_share"] for r in rows}
        assert got.keys() == direct.keys()
        for k in got:
            assert got[k] == pytest.approx(direct[k], abs=1e-9)

    with TestPipeline() as p:
        out = p | beam.Create(docs) | InferMixture(config, str(tmp_path))
        assert_that(out["mixture"], check)
    assert (tmp_path / "mixture" / "mixture.png").exists()
