"""Dedup stage: MinHash arithmetic, star steps against union-find, and the Beam stage end to end."""

from __future__ import annotations

import random
from collections import defaultdict

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.config import DedupConfig
from transforms.dedup import (
    MERSENNE_61,
    ConnectedComponents,
    Dedup,
    MinHasher,
    VerifyPairs,
    band_layout,
    estimated_jaccard,
    exact_hash,
    large_star,
    lsh_threshold,
    repeat_weight,
    shingle_words,
    small_star,
)

# --- reference implementations -------------------------------------------------------------------------


def union_find_roots(edges) -> dict:
    """node -> smallest node of its component, for every node in `edges`."""
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    return {x: find(x) for x in list(parent)}


def star_rounds(edges) -> tuple[dict, int]:
    """The Beam rounds of ConnectedComponents, in memory: labels of non-root nodes and rounds used."""
    edges = {(min(u, v), max(u, v)) for u, v in edges if u != v}
    rounds = 0
    while True:
        changed = False
        for step in (large_star, small_star):
            neighbours = defaultdict(list)
            for u, v in edges:
                neighbours[u].append(v)
                neighbours[v].append(u)
            out = set()
            for node, adjacent in neighbours.items():
                new, moved = step(node, adjacent)
                out.update(new)
                changed |= moved
            edges = out
        rounds += 1
        if not changed:
            return {v: u for u, v in edges}, rounds


# --- pure functions --------------------------------------------------------------------------------------


def test_permutation_is_exact_universal_hash():
    hasher = MinHasher(16, seed=3)
    xs = np.array([0, 1, 2**61 - 2, 2**61 - 1, 2**61, 2**64 - 1, 12345678901234567890], dtype=np.uint64)
    got = hasher.permute(xs)
    for i, x in enumerate(xs.tolist()):
        for j in range(16):
            assert int(got[i, j]) == (int(hasher.a[j]) * (x % MERSENNE_61) + int(hasher.b[j])) % MERSENNE_61


def test_batched_signatures_equal_per_document_minimum():
    rng = np.random.default_rng(0)
    hasher = MinHasher(32, seed=1)
    # Lengths around the 1024-row chunk size, so documents straddle chunks.
    lists = [rng.integers(0, 2**63, size=int(n), dtype=np.uint64) for n in (1, 1500, 3, 1021, 2500, 7)]
    sigs = hasher.signatures(lists)
    for sig, hashes in zip(sigs, lists):
        assert np.array_equal(sig, hasher.permute(hashes).min(axis=0))
    with pytest.raises(ValueError):
        hasher.signatures([np.empty(0, dtype=np.uint64)])


def test_estimated_jaccard_tracks_true_jaccard():
    hasher = MinHasher(256, seed=7)
    a = np.arange(0, 1000, dtype=np.uint64) * np.uint64(2654435761)
    b = np.arange(250, 1250, dtype=np.uint64) * np.uint64(2654435761)  # Jaccard 750 / 1250 = 0.6
    sig_a, sig_b = hasher.signatures([a, b])
    assert abs(estimated_jaccard(sig_a.tobytes(), sig_b.tobytes()) - 0.6) < 0.08


def test_shingle_words_segments_before_normalising():
    assert shingle_words("Héllo, World! It's 2024.") == ["hello", "world", "it", "s", "0"]
    thai = shingle_words("เหลือเวลาอีกกี่ชั่วโมงกว่าจะเดินทางไปถึง?")
    assert "อีก" in thai and "เวลา" in thai  # words found by ICU on the unfolded text
    assert shingle_words("!!! ... ???") == []


def test_exact_hash_ignores_case_punctuation_and_accents():
    assert exact_hash("Café, open 24h!") == exact_hash("cafe open 99h")
    assert exact_hash("Café") != exact_hash("Cafés")
    assert exact_hash("") is None and exact_hash(" !? ") is None


def test_short_document_gets_one_shingle():
    hasher = MinHasher(8, seed=1)
    assert len(hasher.shingle_hashes(["a", "b"], 5)) == 1
    assert len(hasher.shingle_hashes(["a", "b", "c", "d", "e", "f"], 5)) == 2
    assert len(hasher.shingle_hashes([], 5)) == 0


def test_repeat_weights_follow_fineweb2_table():
    expected = {1: 1, 2: 2, 3: 3, 4: 3, 5: 5, 99: 5, 100: 8, 999: 8, 1000: 1, 50_000: 1}
    assert {n: repeat_weight(n) for n in expected} == expected


def test_band_layout_from_threshold():
    assert band_layout(DedupConfig()) == (14, 8)
    bands, rows = band_layout(DedupConfig(threshold=0.8))
    assert bands * rows <= 112 and lsh_threshold(bands, rows) > lsh_threshold(14, 8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=80))
def test_star_rounds_equal_union_find(edges):
    labels, _ = star_rounds(edges)
    roots = union_find_roots([(u, v) for u, v in edges if u != v])
    assert labels == {node: root for node, root in roots.items() if node != root}


def test_star_rounds_on_long_chains_converge_in_few_rounds():
    order = list(range(3000))
    random.Random(1).shuffle(order)
    for labels_of in (list(range(3000)), order):
        chain = [(labels_of[i], labels_of[i + 1]) for i in range(2999)]
        labels, rounds = star_rounds(chain)
        assert set(labels.values()) == {0} and len(labels) == 2999
        assert rounds <= 15


# --- Beam ------------------------------------------------------------------------------------------------


def _random_graphs(seed: int) -> list[tuple[tuple, tuple]]:
    """Disjoint random graphs, long chains (sorted, reversed and shuffled labels) and a big star, as nodes
    shaped like the stage's (group, rank, id)."""
    rng = random.Random(seed)
    edges = []
    for g in range(30):
        n = rng.randint(2, 30)
        for _ in range(rng.randint(1, 2 * n)):
            edges.append(((f"g{g}", 0.0, str(rng.randrange(n))), (f"g{g}", 0.0, str(rng.randrange(n)))))
    for name, order in (("sorted", range(120)), ("reversed", range(119, -1, -1)), ("shuffled", rng.sample(range(120), 120))):
        order = list(order)
        edges += [((name, float(order[i]), "x"), (name, float(order[i + 1]), "x")) for i in range(119)]
    edges += [(("star", 1.0, str(i)), ("star", 0.5, "centre")) for i in range(500)]
    return edges


def test_connected_components_in_beam_equal_union_find():
    edges = _random_graphs(seed=4)
    roots = union_find_roots([(u, v) for u, v in edges if u != v])
    expected = [(node, root) for node, root in roots.items() if node != root]
    with TestPipeline() as p:
        out = p | beam.Create(edges) | ConnectedComponents(max_rounds=9)
        assert_that(out["labels"], equal_to(expected))
        assert_that(out["stats"], equal_to([(("dedup", "all", "cc_rounds"), star_rounds(edges)[1] - 1)]), label="rounds")


def test_connected_components_raise_when_rounds_are_too_few():
    chain = [((("c", float(i), "")), ("c", float(i + 1), "")) for i in range(200)]
    with pytest.raises(Exception, match="did not converge"):
        with TestPipeline() as p:
            _ = p | beam.Create(chain) | ConnectedComponents(max_rounds=2)


def test_verify_pairs_drops_low_similarity_candidates():
    hasher = MinHasher(64, seed=1)
    base = np.arange(400, dtype=np.uint64) * np.uint64(11400714819323198485)
    a, b, c = hasher.signatures([base, base[:380], base[200:]])  # b ~ 0.95 of a, c ~ 0.5 of a
    node = {name: ("eng_Latn", 0.0, name) for name in "abc"}
    fingerprints = [(node["a"], b"", a.tobytes()), (node["b"], b"", b.tobytes()), (node["c"], b"", c.tobytes())]
    with TestPipeline() as p:
        out = {
            "edges": p | "E" >> beam.Create([(node["a"], node["b"]), (node["a"], node["c"])]),
            "fingerprints": p | "F" >> beam.Create(fingerprints),
        } | VerifyPairs(0.8)
        assert_that(out["edges"], equal_to([(node["a"], node["b"])]))


BOILERPLATE = (
    "Welcome to our online store where you will find the best deals on shoes bags and accessories "
    "for every season of the year with free shipping on all orders over fifty euros"
)
STORY = (
    "The old lighthouse keeper climbed the narrow stairs every evening to light the great lamp that "
    "guided the fishing boats safely back into the harbour through the fog"
)


def _doc(doc_id: str, text: str, partition: str = "eng_Latn", quality: float | None = None) -> dict:
    return {"id": doc_id, "text": text, "partition": partition, "quality_score": quality, "script": None,
            "source": "test", "metadata": None, "dup_cluster_id": None, "dup_cluster_size": None,
            "repeat_weight": None}


def _check_dedup(docs: list[dict], config: DedupConfig, check) -> None:
    """Run the stage and call check(kept by id, rejected by id, stats dict) inside a Beam matcher."""
    with TestPipeline() as p:
        out = p | beam.Create(docs) | Dedup(config)
        tagged = (
            out["documents"] | "TagKept" >> beam.Map(lambda d: ("kept", d)),
            out["rejected"] | "TagRejected" >> beam.Map(lambda r: ("rejected", r)),
            out["stats"] | "TagStats" >> beam.Map(lambda s: ("stats", s)),
        ) | beam.Flatten()

        def matcher(actual):
            kept = {d["id"]: d for kind, d in actual if kind == "kept"}
            rejected = {r["id"]: r for kind, r in actual if kind == "rejected"}
            check(kept, rejected, dict(s for kind, s in actual if kind == "stats"))

        assert_that(tagged, matcher)


def test_dedup_stage_end_to_end():
    near = STORY + " tonight"  # one more word: Jaccard 23/24
    docs = [
        _doc("a", STORY, quality=0.5),
        _doc("b", STORY.upper() + " !!!", quality=0.9),  # exact copy, better quality: kept
        _doc("c", near, quality=0.1),
        _doc("d", "Completely unrelated sentence about mountains rivers and the weather in spring time"),
        _doc("e", ""),
        _doc("f", "!!! ??? ..."),
        _doc("g", "12 345 6789"),
        _doc("h", "12 345 6789"),
        _doc("fr", STORY, partition="fra_Latn"),  # another partition: not a duplicate by default
    ]

    def check(kept, rejected, stats):
        assert set(kept) == {"b", "d", "e", "f", "g", "fr"}
        assert (kept["b"]["dup_cluster_id"], kept["b"]["dup_cluster_size"], kept["b"]["repeat_weight"]) == ("b", 3, 3)
        assert (kept["d"]["dup_cluster_id"], kept["d"]["dup_cluster_size"], kept["d"]["repeat_weight"]) == ("d", 1, 1)
        assert (rejected["a"]["reason"], rejected["a"]["duplicate_of"]) == ("exact_duplicate", "b")
        assert (rejected["c"]["reason"], rejected["c"]["duplicate_of"]) == ("near_duplicate", "b")
        assert (rejected["h"]["reason"], rejected["h"]["duplicate_of"]) == ("exact_duplicate", "g")
        assert rejected["a"]["stage"] == "dedup" and rejected["a"]["text"] == STORY
        assert stats[("dedup", "eng_Latn", "empty_text")] == 2
        assert stats[("dedup", "eng_Latn", "exact_duplicate")] == 2
        assert stats[("dedup", "eng_Latn", "near_duplicate")] == 1
        assert stats[("dedup", "eng_Latn", "clusters")] == 2
        assert stats[("dedup", "eng_Latn", "candidate_pairs")] == 1

    _check_dedup(docs, DedupConfig(repeat_weights=True, max_rounds=3), check)


def test_cross_language_option_and_smallest_id_rule():
    docs = [_doc("z", STORY, "fra_Latn", quality=0.9), _doc("y", STORY + " again", "eng_Latn", quality=0.1)]

    def check(kept, rejected, stats):
        assert list(kept) == ["y"] and kept["y"]["dup_cluster_size"] == 2
        assert (rejected["z"]["reason"], rejected["z"]["duplicate_of"]) == ("near_duplicate", "y")

    _check_dedup(docs, DedupConfig(per_language=False, keep="smallest_id", max_rounds=2), check)


def _letters(i: int) -> str:
    return "".join(chr(ord("a") + int(d)) for d in f"{i:04d}")


def test_giant_cluster_of_boilerplate_copies():
    docs = [_doc(f"copy{i:05d}", BOILERPLATE, quality=0.5) for i in range(2000)]
    # Near copies with a distinct last word (letters: numbers are all normalised to 0): Jaccard 27/28.
    docs += [_doc(f"near{i:05d}", f"{BOILERPLATE} {_letters(i)}", quality=0.5) for i in range(300)]
    docs.append(_doc("other", STORY))

    def check(kept, rejected, stats):
        assert set(kept) == {"copy00000", "other"}
        assert kept["copy00000"]["dup_cluster_size"] == 2300
        assert {r["duplicate_of"] for r in rejected.values()} == {"copy00000"}
        reasons = defaultdict(int)
        for r in rejected.values():
            reasons[r["reason"]] += 1
        assert reasons == {"exact_duplicate": 1999, "near_duplicate": 300}

    _check_dedup(docs, DedupConfig(max_rounds=3, verify_jaccard=0.6), check)
