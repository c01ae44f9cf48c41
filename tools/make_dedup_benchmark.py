"""Build a labelled near-duplicate benchmark from real sentences (Tatoeba dev text).

Base documents are random runs of real sentences of one language. Near-duplicates are made from them by
realistic edits (adjacent word swaps, insertions, deletions, a boilerplate header or footer, truncation),
applied one at a time until the word 5-gram Jaccard with the source drops to a target level drawn from
`--levels`; some are edited again (chains) and some are copies differing only in case and punctuation.
Ground truth is the exact Jaccard over all pairs of the same partition (sparse shingle-matrix product), so
it does not depend on how the variants were made.

Writes OUT/docs.jsonl (id, text, partition, language, script, quality_score, source) and, unless
--no-truth, OUT/truth_pairs.tsv (id_a, id_b, jaccard for every pair with jaccard >= --min-jaccard).
Tatoeba sentences are CC-BY 2.0 FR (https://tatoeba.org); OUT/NOTICE.md says so.

    python tools/make_dedup_benchmark.py --out /tmp/dedup-bench --docs 6000
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import xxhash

from transforms.text import needs_segmenter, script_of, segment_words
from transforms.dedup import shingle_words

TATOEBA = Path("/work/shared/data/tatoeba-dev")
LANGUAGES = {"eng": "eng_Latn", "fra": "fra_Latn", "deu": "deu_Latn", "spa": "spa_Latn", "rus": "rus_Cyrl",
             "cmn": "cmn_Hani"}
NOTICE = "Sentences from Tatoeba (https://tatoeba.org), CC-BY 2.0 FR; documents assembled and edited by\n" \
         "tools/make_dedup_benchmark.py.\n"


def load_sentences(root: Path, language: str) -> list[str]:
    """The language's sentences; English comes from the English side of every pair file."""
    if language == "eng":
        out = []
        for path in sorted(root.glob("*-eng.tsv")):
            out += [line.split("\t")[1].strip() for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
        return sorted(set(out))
    path = root / f"{language}-eng.tsv"
    return [line.split("\t")[0].strip() for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]


def shingle_set(text: str, n: int = 5) -> set[int]:
    words = shingle_words(text)
    if len(words) < n:
        return {xxhash.xxh3_64_intdigest(" ".join(words).encode())} if words else set()
    return {xxhash.xxh3_64_intdigest(" ".join(words[i : i + n]).encode()) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class Editor:
    """Word-level edits on one document; `joiner` is "" for scripts written without spaces."""

    def __init__(self, rng: random.Random, vocabulary: list[str], boilerplate: list[str], joiner: str):
        self.rng, self.vocabulary, self.boilerplate, self.joiner = rng, vocabulary, boilerplate, joiner

    def edit(self, words: list[str]) -> list[str]:
        rng, words = self.rng, list(words)
        kind = rng.choices(["swap", "insert", "delete", "header", "footer", "truncate"], [4, 4, 4, 1, 1, 1])[0]
        if kind == "swap" and len(words) > 1:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif kind == "insert":
            words.insert(rng.randrange(len(words) + 1), rng.choice(self.vocabulary))
        elif kind == "delete" and len(words) > 1:
            del words[rng.randrange(len(words))]
        elif kind == "header":
            words = self.split(rng.choice(self.boilerplate)) + words
        elif kind == "footer":
            words = words + self.split(rng.choice(self.boilerplate))
        elif kind == "truncate" and len(words) > 10:
            words = words[: len(words) - rng.randint(1, max(1, len(words) // 10))]
        return words

    def split(self, text: str) -> list[str]:
        return segment_words(text) if self.joiner == "" else text.split()

    def join(self, words: list[str]) -> str:
        return self.joiner.join(words)


def near_copy(editor: Editor, text: str, target: float, max_edits: int = 400) -> str:
    """Edit `text` until its Jaccard with the source would fall below `target`; return the last version at or
    above it (at least one edit)."""
    source = shingle_set(text)
    words = editor.split(text)
    best = editor.join(editor.edit(words))
    for _ in range(max_edits):
        candidate = editor.edit(words)
        if jaccard(source, shingle_set(editor.join(candidate))) < target:
            break
        words = candidate
        best = editor.join(words)
    return best


def noisy_copy(rng: random.Random, text: str) -> str:
    """Same normalised text: case and punctuation changes only."""
    text = text.upper() if rng.random() < 0.5 else text.lower()
    return text.replace(".", " !").replace(",", " ;") + rng.choice(["", " ...", " !!"])


def build(args) -> list[dict]:
    rng = random.Random(args.seed)
    languages = args.languages.split(",")
    pools = {lang: load_sentences(args.tatoeba, lang) for lang in languages}
    levels = [float(x) for x in args.levels.split(",")]
    docs: list[dict] = []
    n_base = int(args.docs * (1 - args.dup_fraction))
    for i in range(n_base):
        lang = languages[i % len(languages)]
        pool = pools[lang]
        sentences = rng.sample(pool, min(len(pool), rng.randint(args.min_sentences, args.max_sentences)))
        joiner = "" if needs_segmenter(None, sentences[0]) else " "
        docs.append({"id": f"{lang}-{i:07d}", "text": joiner.join(sentences), "lang": lang})
    n_dups = args.docs - n_base
    for j in range(n_dups):
        source = docs[rng.randrange(len(docs))]  # may be a variant itself: chains
        lang = source["lang"]
        pool = pools[lang]
        joiner = "" if needs_segmenter(None, source["text"]) else " "
        vocabulary = [w for s in rng.sample(pool, 20) for w in (segment_words(s) if joiner == "" else s.split())]
        editor = Editor(rng, vocabulary, pool[:5], joiner)
        if rng.random() < args.exact_fraction:
            text = noisy_copy(rng, source["text"])
        else:
            text = near_copy(editor, source["text"], rng.choice(levels))
        docs.append({"id": f"{lang}-v{j:07d}", "text": text, "lang": lang})
    rng.shuffle(docs)
    out = []
    for doc in docs:
        partition = LANGUAGES[doc["lang"]]
        out.append({"id": doc["id"], "text": doc["text"], "source": "dedup-benchmark", "language": doc["lang"],
                    "script": script_of(doc["text"]), "partition": partition,
                    "quality_score": round(rng.random(), 4)})
    return out


def truth_pairs(docs: list[dict], min_jaccard: float) -> list[tuple[str, str, float]]:
    """Exact Jaccard of every same-partition pair reaching `min_jaccard`, through X @ X.T on shingle sets."""
    pairs = []
    by_partition: dict[str, list[dict]] = {}
    for doc in docs:
        by_partition.setdefault(doc["partition"], []).append(doc)
    for group in by_partition.values():
        sets = [shingle_set(d["text"]) for d in group]
        vocab: dict[int, int] = {}
        rows, cols = [], []
        for r, s in enumerate(sets):
            for h in s:
                rows.append(r)
                cols.append(vocab.setdefault(h, len(vocab)))
        x = sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(sets), len(vocab)))
        inter = sp.triu(x @ x.T, k=1).tocoo()
        sizes = np.array([len(s) for s in sets])
        jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
        for a, b, j in zip(inter.row, inter.col, jac):
            if j >= min_jaccard:
                pairs.append((group[a]["id"], group[b]["id"], float(j)))
        empty = [i for i, s in enumerate(sets) if not s]  # no shingle: only equal to another empty text
        pairs += [(group[a]["id"], group[b]["id"], 1.0) for k, a in enumerate(empty) for b in empty[k + 1 :]]
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=6000)
    parser.add_argument("--languages", default=",".join(LANGUAGES))
    parser.add_argument("--tatoeba", type=Path, default=TATOEBA)
    parser.add_argument("--dup-fraction", type=float, default=0.3, help="share of documents that are variants")
    parser.add_argument("--exact-fraction", type=float, default=0.15, help="share of variants that are copies")
    parser.add_argument("--levels", default="0.5,0.6,0.65,0.7,0.75,0.8,0.85,0.9,0.95")
    parser.add_argument("--min-sentences", type=int, default=6)
    parser.add_argument("--max-sentences", type=int, default=18)
    parser.add_argument("--min-jaccard", type=float, default=0.3)
    parser.add_argument("--no-truth", action="store_true", help="skip the all-pairs ground truth (throughput runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for lang in args.languages.split(","):
        if lang not in LANGUAGES:
            parser.error(f"unknown language {lang!r}; choose from {', '.join(LANGUAGES)}")
    docs = build(args)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "docs.jsonl", "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    (args.out / "NOTICE.md").write_text(NOTICE, encoding="utf-8")
    summary = {"docs": len(docs), "out": str(args.out)}
    if not args.no_truth:
        pairs = truth_pairs(docs, args.min_jaccard)
        with open(args.out / "truth_pairs.tsv", "w", encoding="utf-8") as f:
            for a, b, j in pairs:
                f.write(f"{a}\t{b}\t{j:.6f}\n")
        summary["truth_pairs"] = len(pairs)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
