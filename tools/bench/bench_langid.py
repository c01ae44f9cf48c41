"""Language-ID overhead: `transforms.langid.LanguageIdentifier.predict` against raw fastText `predict`.

Both classify the same texts with the same bundled lid.176.ftz, in the same process, in batches of
`--batch` (the Beam stage's batch size). The raw side only replaces newlines (fastText needs one line), as
datatrove does; ours also cuts to `max_chars`, normalises whitespace, maps labels to ISO 639-3 and measures
the script of every text. Best of `--repeats` timings. Prints JSON.

    python -m tools.bench.bench_langid --texts 20000
"""

from __future__ import annotations

import argparse
import json
import random
import time

from tools.bench.bench_pipeline import TATOEBA, load_pools, make_document
from transforms.langid import DEFAULT_MODEL, LanguageIdentifier, map_label


def make_texts(n: int, seed: int = 0) -> list[str]:
    """Half single sentences, half 200-500-word documents, over every Tatoeba language."""
    pools = load_pools(TATOEBA)
    langs = sorted(lang for lang in pools if lang != "eng")
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        if i % 2:
            texts.append(make_document(rng, pools, langs))
        else:
            texts.append(rng.choice(pools[rng.choice(langs)]))
    return texts


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    texts = make_texts(args.texts)
    batches = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
    lid = LanguageIdentifier(DEFAULT_MODEL)
    model = lid.model  # the same fastText object: only the work around predict differs

    def raw():
        for batch in batches:
            model.predict([t.replace("\n", " ") for t in batch], k=1)

    def ours():
        for batch in batches:
            lid.predict(batch)

    raw(), ours()  # warm up
    t_raw = _best(raw, args.repeats)
    t_ours = _best(ours, args.repeats)
    # ours must report the raw model's own answer, mapped to ISO 639-3
    same = sum(
        lang == map_label(lab[0])[0]
        for batch in batches[:4]
        for (lang, _, _), lab in zip(lid.predict(batch), model.predict([t.replace("\n", " ") for t in batch], k=1)[0])
    )
    chars = sum(map(len, texts))
    print(json.dumps({
        "texts": len(texts), "mean_chars": round(chars / len(texts)), "batch": args.batch, "repeats": args.repeats,
        "raw_fasttext_s": round(t_raw, 3), "langid_predict_s": round(t_ours, 3),
        "raw_texts_per_s": round(len(texts) / t_raw), "langid_texts_per_s": round(len(texts) / t_ours),
        "overhead": round(t_ours / t_raw - 1, 3), "labels_checked": min(len(texts), 4 * args.batch),
        "labels_consistent": same,
    }, indent=1))


if __name__ == "__main__":
    main()
