"""Shared fixtures: real multilingual sentences (Tatoeba, see tests/data/README.md), small corpora written to
temporary folders, and a helper that runs `python -m pipelines.build` in-process and returns its manifest."""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"

# Beam's multi_processing workers are fresh interpreters: they must find the repository's packages too.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)


def _load_sentences() -> dict[str, list[str]]:
    by_lang: dict[str, list[str]] = defaultdict(list)
    for line in (DATA / "tatoeba_sentences.tsv").read_text(encoding="utf-8").splitlines():
        lang, sentence = line.split("\t", 1)
        by_lang[lang].append(sentence)
    return dict(by_lang)


SENTENCES = _load_sentences()
# What lid.176 answers for each fixture language: Tatoeba's `pes` (Iranian Persian) is lid.176's `fa`, which
# is the Persian macrolanguage `fas`.
EXPECTED_LID = {lang: ("fas" if lang == "pes" else lang) for lang in SENTENCES}
NO_SPACE = {"cmn", "jpn", "tha"}


def make_document(lang: str, n_sentences: int, start: int = 0, paragraph_every: int = 0) -> str:
    """A document of consecutive Tatoeba sentences of one language (wrapping around the fixture's list)."""
    pool = SENTENCES[lang]
    sentences = [pool[(start + i) % len(pool)] for i in range(n_sentences)]
    joiner = "" if lang in NO_SPACE else " "
    if not paragraph_every:
        return joiner.join(sentences)
    paragraphs = [joiner.join(sentences[i:i + paragraph_every]) for i in range(0, len(sentences), paragraph_every)]
    return "\n\n".join(paragraphs)


def multilingual_records(per_language: int = 3, n_sentences: int = 12, seed: int = 0) -> list[dict]:
    """Documents of every fixture language, with ids, in a shuffled but fixed order."""
    records = []
    for lang in SENTENCES:
        for k in range(per_language):
            text = make_document(lang, n_sentences, start=k * n_sentences, paragraph_every=4)
            records.append({"id": f"{lang}-{k}", "text": text, "gold": lang})
    random.Random(seed).shuffle(records)
    return records


def write_jsonl(path: Path, records: list, raw_lines: list[bytes] = ()) -> Path:
    """Records as JSON lines, then any raw (possibly broken) lines as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        for line in raw_lines:
            f.write(line + b"\n")
    return path


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """A small multilingual JSONL corpus (22 languages x 3 documents) plus one malformed line."""
    return write_jsonl(tmp_path / "in" / "corpus.jsonl", multilingual_records(), [b'{"id": "broken", "text": '])


@dataclass
class BuildRun:
    rc: int
    manifest: dict | None
    stdout: str
    stderr: str
    output: Path

    def rows(self, folder: str) -> list[dict]:
        return read_rows(self.output / folder)


def read_rows(folder: Path) -> list[dict]:
    """Every row of every Parquet file under `folder`, in file-name order."""
    rows = []
    for path in sorted(Path(folder).rglob("*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


@pytest.fixture()
def run_build(capsys):
    """Run `pipelines.build.run(argv)` in this process; returns a BuildRun with the manifest (if one was written)."""
    from pipelines.build import run

    def _run(argv: list[str]) -> BuildRun:
        output = Path(argv[argv.index("--output") + 1]) if "--output" in argv else Path("output")
        capsys.readouterr()
        rc = run(list(argv))
        captured = capsys.readouterr()
        manifest_path = output / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else None
        return BuildRun(rc, manifest, captured.out, captured.err, output)

    return _run


def error_lines(stderr: str) -> list[str]:
    """The lines babelbeam itself wrote as errors (Beam may log unrelated warnings on import)."""
    return [line for line in stderr.splitlines() if line.startswith("babelbeam: error")]
