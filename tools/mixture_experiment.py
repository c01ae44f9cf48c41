"""Controlled experiment for mixture inference: train BPE on known mixtures, infer them back, score.

    python -m tools.mixture_experiment --categories DIR --n N --trials K --merges T --seed S

Each trial samples N categories and weights uniformly from the simplex, builds a training text with those byte
shares, trains a byte-level BPE with HF `tokenizers` (vocabulary 256 + T), infers the weights from its merge
list and prints log10 MSE per trial, its mean and standard deviation, next to the TEE and TC baselines and
the uniform 1/N guess. Pair counts are taken on a disjoint half of each category (`--count-on heldout`, as
the paper does with separate data) or on the lines the training text was drawn from (`--count-on train`).

`--make-tatoeba DIR` first writes one folder per language from the Tatoeba dev set (the non-English side of
each file, and English from all the English sides). Tatoeba has only 3–35 KB per language, far too little to
pin down pair frequencies, so `--make-wordfreq DIR --wordfreq-bytes B` writes B bytes per language for the 42
languages of `wordfreq` instead: lines of words drawn independently from each language's word-frequency list.
BPE merges never cross pretoken boundaries, so what it learns from a text is its word-frequency table; text
drawn from a real table keeps that (every word's spelling and its frequency) while word order is lost, which
BPE never sees. The lists are truncated (the 'small' ones to ~31k words covering ~95% of tokens), so the
rare-word tail is thinner than in real text.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.infer_mixture import CategoryError, category_files
from transforms.config import MixtureConfig
from transforms.mixture import CategorySample, infer
from transforms.mixture_merges import read_merge_list

TATOEBA_NOTICE = ("Sentences from Tatoeba (https://tatoeba.org), licensed CC-BY 2.0 FR; "
                  "one folder per language built by tools.mixture_experiment --make-tatoeba.\n")


def make_tatoeba_categories(src: Path, dst: Path) -> dict[str, int]:
    """One folder per language from `XXX-eng.tsv` files; English gathers every file's English side."""
    english: dict[str, None] = {}
    sizes = {}
    for tsv in sorted(src.glob("*-eng.tsv")):
        lang = tsv.name.split("-")[0]
        own: dict[str, None] = {}
        for line in tsv.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) != 2:
                continue
            own.setdefault(parts[0].strip(), None)
            english.setdefault(parts[1].strip(), None)
        own.pop("", None)
        if lang != "eng" and own:
            sizes[lang] = _write_category(dst / lang, list(own))
    english.pop("", None)
    sizes["eng"] = _write_category(dst / "eng", list(english))
    (dst / "NOTICE.txt").write_text(TATOEBA_NOTICE, encoding="utf-8")
    return sizes


WORDFREQ_NOTICE = ("Lines of words drawn from the word-frequency lists of wordfreq (Robyn Speer et al., "
                   "https://github.com/rspeer/wordfreq), whose data is licensed CC BY-SA 4.0; built by "
                   "tools.mixture_experiment --make-wordfreq.\n")
_NO_SPACES = {"ja", "zh"}  # languages written without spaces between words


def make_wordfreq_categories(dst: Path, n_bytes: int, seed: int, words_per_line: int = 12) -> dict[str, int]:
    """One folder per wordfreq language (ISO 639-3 names), `n_bytes` of lines of independently drawn words."""
    try:
        import langcodes
        import wordfreq
    except ImportError as exc:  # an optional dependency of this experiment only
        raise CategoryError(f"--make-wordfreq needs the 'eval' extra (pip install -e '.[eval]'): {exc}") from exc
    rng = np.random.default_rng(seed)
    sizes = {}
    for code in sorted(wordfreq.available_languages("best")):
        table = wordfreq.get_frequency_dict(code, "best")
        words = list(table)
        p = np.fromiter(table.values(), dtype=np.float64, count=len(words))
        p /= p.sum()
        sep = "" if code in _NO_SPACES else " "
        lines, size = [], 0
        while size < n_bytes:
            for row in rng.choice(len(words), size=(256, words_per_line), p=p):
                line = sep.join(words[i] for i in row)
                lines.append(line)
                size += len(line.encode("utf-8")) + 1
        name = langcodes.Language.get(code).to_alpha3()
        sizes[name] = _write_category(dst / name, lines)
    (dst / "NOTICE.txt").write_text(WORDFREQ_NOTICE, encoding="utf-8")
    return sizes


def _write_category(folder: Path, lines: list[str]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    data = "\n".join(lines) + "\n"
    (folder / "text.txt").write_text(data, encoding="utf-8")
    return len(data.encode("utf-8"))


def load_lines(files: list[Path]) -> list[str]:
    lines = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        lines.extend(line + "\n" for line in text.splitlines() if line.strip())
    return lines


def draw_bytes(lines: list[str], target: int, rng: np.random.Generator) -> list[str]:
    """About `target` bytes of lines: whole shuffled passes over the pool, then a random partial pass."""
    out, size = [], 0
    while size < target:
        for i in rng.permutation(len(lines)):
            if size >= target:
                break
            out.append(lines[i])
            size += len(lines[i].encode("utf-8"))
    return out


def head_bytes(lines: list[str], limit: int | None) -> list[str]:
    """The first lines (already shuffled) holding about `limit` bytes; all of them when `limit` is None."""
    if limit is None:
        return lines
    sizes = np.cumsum([len(s.encode("utf-8")) for s in lines])
    return lines[: int(np.searchsorted(sizes, limit)) + 1]


def train_bpe(texts: list[str], merges: int, path: Path):
    """Byte-level BPE as HF `tokenizers` trains it (GPT-2 regex pretokenizer, 256 base bytes)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=256 + merges, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return tok


def bytes_per_token(tok, lines: list[str]) -> float:
    enc = tok.encode_batch(lines)
    n_tokens = sum(len(e.ids) for e in enc)
    return sum(len(s.encode("utf-8")) for s in lines) / max(n_tokens, 1)


def tc_baseline(tok, count_lines: list[list[str]]) -> np.ndarray:
    """Token classification: each merged token goes to the category where it is most frequent; shares of tokens."""
    vocab = tok.get_vocab_size()
    freq = np.zeros((len(count_lines), vocab))
    for i, lines in enumerate(count_lines):
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(lines)] or [np.zeros(0, int)])
        freq[i] = np.bincount(ids, minlength=vocab)[:vocab]
        freq[i] /= max(freq[i].sum(), 1)
    merged = freq[:, 256:]
    seen = merged.sum(axis=0) > 0
    counts = np.bincount(merged[:, seen].argmax(axis=0), minlength=len(count_lines)).astype(float)
    return counts / counts.sum()


def tee_predict(train_r: np.ndarray, train_a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """TEE: fit log α = a log r + b on other trials' (efficiency ratio, true share), predict, normalise."""
    x, y = np.log(np.clip(train_r, 1e-6, None)), np.log(np.clip(train_a, 1e-4, None))
    slope, intercept = np.polyfit(x, y, 1)
    pred = np.exp(slope * np.log(np.clip(r, 1e-6, None)) + intercept)
    return pred / pred.sum()


def log_mse(est: np.ndarray, true: np.ndarray) -> float:
    return float(np.log10(np.mean((est - true) ** 2) + 1e-300))


def summarize(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "per_trial": [round(v, 3) for v in values]}


def run(args: argparse.Namespace) -> dict:
    cats = category_files(args.categories)
    names = sorted(cats)
    if args.n > len(names):
        raise CategoryError(f"--n {args.n} but {args.categories} has only {len(names)} categories")
    rng = np.random.default_rng(args.seed)
    pools: dict[str, tuple[list[str], list[str]]] = {}
    for name in names:
        lines = load_lines(cats[name])
        if args.max_bytes_per_category:
            lines = draw_bytes(lines, args.max_bytes_per_category, rng) if sum(map(len, lines)) > \
                args.max_bytes_per_category else lines
        lines = [lines[i] for i in rng.permutation(len(lines))]
        if args.count_on == "heldout":
            half = len(lines) // 2
            pools[name] = (lines[:half], lines[half:])
        else:
            pools[name] = (lines, lines)
    config = MixtureConfig(top_merges=None, min_category_bytes=0, warn_category_bytes=0,
                           constraints_per_round=args.per_round, max_rounds=args.max_rounds,
                           max_seconds=args.max_seconds)
    trials, solo_bpt = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.trials):
            chosen = sorted(rng.choice(names, size=args.n, replace=False).tolist())
            alpha = rng.dirichlet(np.ones(args.n))
            texts, sizes = [], []
            for name, a in zip(chosen, alpha):
                part = draw_bytes(pools[name][0], int(round(a * args.train_bytes)), rng)
                texts.extend(part)
                sizes.append(sum(len(s.encode("utf-8")) for s in part))
            true = np.asarray(sizes, dtype=float) / sum(sizes)
            path = Path(tmp) / f"trial{k}.json"
            started = time.perf_counter()
            tok = train_bpe([texts[i] for i in rng.permutation(len(texts))], args.merges, path)
            train_s = time.perf_counter() - started
            merge_list = read_merge_list(path)
            samples = {}
            for name in chosen:
                s = CategorySample()
                for line in pools[name][1]:
                    s.add(line, merge_list.pretokenizer)
                samples[name] = s
            report = infer(samples, merge_list, config)
            if report["error"]:
                raise RuntimeError(f"trial {k}: {report['error']}")
            est = np.asarray([row["byte_share"] for row in report["categories"]])
            count_lines = [head_bytes(pools[name][1], args.baseline_bytes) for name in chosen]
            for name, lines in zip(chosen, count_lines):
                if name not in solo_bpt:
                    solo = train_bpe(head_bytes(pools[name][0], args.baseline_bytes), args.merges,
                                     Path(tmp) / "solo.json")
                    solo_bpt[name] = bytes_per_token(solo, lines)
            ratio = np.asarray([bytes_per_token(tok, lines) / solo_bpt[name]
                                for name, lines in zip(chosen, count_lines)])
            trials.append({
                "categories": chosen, "true": true.tolist(), "estimate": est.tolist(),
                "tc": tc_baseline(tok, count_lines).tolist(), "tee_ratio": ratio.tolist(),
                "merges": len(merge_list.merges), "train_seconds": round(train_s, 2),
                "solver": {key: report["solver"][key]
                           for key in ("status", "rounds", "constraints", "converged", "gap")},
                "timing": report["timing"],
                "count_bytes": [int(samples[c].n_bytes) for c in chosen],
            })
    return score(trials, args)


def score(trials: list[dict], args: argparse.Namespace) -> dict:
    method, tc, tee, uniform = [], [], [], []
    for k, trial in enumerate(trials):
        true = np.asarray(trial["true"])
        method.append(log_mse(np.asarray(trial["estimate"]), true))
        tc.append(log_mse(np.asarray(trial["tc"]), true))
        uniform.append(log_mse(np.full(len(true), 1 / len(true)), true))
        others = [t for j, t in enumerate(trials) if j != k]
        if others:  # leave-one-trial-out fit, so no trial's truth is used to score itself
            fit_r = np.concatenate([t["tee_ratio"] for t in others])
            fit_a = np.concatenate([t["true"] for t in others])
            tee.append(log_mse(tee_predict(fit_r, fit_a, np.asarray(trial["tee_ratio"])), true))
    out = {
        "n": args.n, "trials": len(trials), "merges_requested": args.merges, "seed": args.seed,
        "train_bytes": args.train_bytes, "count_on": args.count_on, "baseline_bytes": args.baseline_bytes,
        "count_bytes_per_category_mean": float(np.mean([np.mean(t["count_bytes"]) for t in trials])),
        "merges_learned_mean": float(np.mean([t["merges"] for t in trials])),
        "log10_mse": summarize(method), "tc": summarize(tc), "uniform": summarize(uniform),
        "apply_mb_per_s_mean": float(np.mean([t["timing"]["apply_mb_per_s"] for t in trials])),
        "solve_seconds_mean": float(np.mean([t["timing"]["solve_seconds"] for t in trials])),
        "converged": sum(bool(t["solver"]["converged"]) for t in trials),
        "details": trials if args.details else None,
    }
    if tee:
        out["tee"] = summarize(tee)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", type=Path, help="one sub-folder (or file) of text per category")
    ap.add_argument("--make-tatoeba", type=Path, metavar="DIR", help="build category folders from Tatoeba into DIR")
    ap.add_argument("--make-wordfreq", type=Path, metavar="DIR",
                    help="build category folders of text drawn from wordfreq's word-frequency lists into DIR")
    ap.add_argument("--wordfreq-bytes", type=int, default=4_000_000, help="bytes per language for --make-wordfreq")
    ap.add_argument("--tatoeba-src", type=Path, default=Path("/work/shared/data/tatoeba-dev"))
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--merges", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-bytes", type=int, default=2_000_000, help="size of each trial's training text")
    ap.add_argument("--count-on", choices=["heldout", "train"], default="heldout")
    ap.add_argument("--max-bytes-per-category", type=int, help="sample each category down to this size first")
    ap.add_argument("--baseline-bytes", type=int,
                    help="text per category for the TEE/TC baselines (default: the same as the method's); they "
                    "level off by 2 MB, so a cap saves most of a large trial's time")
    ap.add_argument("--per-round", type=int, help="cap on constraints added per LP round (default: none)")
    ap.add_argument("--max-rounds", type=int, default=100)
    ap.add_argument("--max-seconds", type=float, help="LP time budget per trial (default: none)")
    ap.add_argument("--details", action="store_true", help="include every trial's weights and estimates")
    args = ap.parse_args(argv)
    made = None
    try:
        if args.make_tatoeba:
            made = make_tatoeba_categories(args.tatoeba_src, args.make_tatoeba)
        elif args.make_wordfreq:
            made = make_wordfreq_categories(args.make_wordfreq, args.wordfreq_bytes, args.seed)
    except CategoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if made is not None:
        print(json.dumps({"categories": len(made), "bytes": made}, sort_keys=True))
        if not args.categories:
            return 0
    if not args.categories:
        ap.error("--categories is required")
    try:
        result = run(args)
    except CategoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
