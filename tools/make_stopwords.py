"""Build transforms/data/stopwords.json: per-language stop words for Gopher's stop-word rule.

Gopher requires at least 2 of 8 very frequent English function words. For other languages we take the most
frequent words of each language in `wordfreq` (which must be installed to run this tool; the pipeline only
reads the JSON). Languages without a wordfreq list get no entry, and the rule is skipped for them.

    pip install wordfreq && python -m tools.make_stopwords
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transforms.langid import map_label
from transforms.text import script_of

OUT = Path(__file__).resolve().parent.parent / "transforms" / "data" / "stopwords.json"


def build(per_language: int) -> dict:
    import wordfreq

    table = {}
    for code in sorted(wordfreq.available_languages()):
        iso3, _ = map_label("nb" if code == "nb" else code)
        if code == "nb":
            iso3 = "nob"
        if iso3 in ("und", "kor"):  # Korean particles attach to words: wordfreq's tokens never match ours
            continue
        words = []
        for word in wordfreq.top_n_list(code, 200):
            # one-letter words are elided forms ("l'", "d'") that our tokenizer keeps attached
            if len(word) < 2 and script_of(word) not in ("Hani", "Jpan", "Hira", "Kana"):
                continue
            if not any(ch.isalpha() for ch in word):
                continue
            words.append(word)
            if len(words) == per_language:
                break
        table[iso3] = words
    return {
        "source": f"wordfreq {wordfreq.__version__ if hasattr(wordfreq, '__version__') else ''}".strip(),
        "license": "wordfreq data: CC BY-SA 4.0 (Robyn Speer, https://github.com/rspeer/wordfreq)",
        "rule": f"the {per_language} most frequent words of at least 2 letters (1 for CJK)",
        "note": "Korean is left out: its particles attach to words written with spaces",
        "languages": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per_language", type=int, default=10)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.write_text(json.dumps(build(args.per_language), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
