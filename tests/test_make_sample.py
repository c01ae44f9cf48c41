"""The built-in sample corpus: reproducible, up to date with its tool, and as varied as it claims."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from tools import make_sample as ms
from transforms.text import normalize_for_dedup

SHIPPED = ms.DEFAULT_OUT
FILES = (ms.JSONL_NAME, ms.WARC_NAME, "README.md", "NOTICE.md")
needs_data = pytest.mark.skipif(not ms.DEFAULT_DATA.is_dir(), reason="Tatoeba dev data not available")


def _lines(folder: Path) -> list[bytes]:
    return gzip.decompress((folder / ms.JSONL_NAME).read_bytes()).split(b"\n")[:-1]


def _records(folder: Path) -> list[dict]:
    out = []
    for line in _lines(folder):
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    if not ms.DEFAULT_DATA.is_dir():
        pytest.skip("Tatoeba dev data not available")
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    ms.build(a, seed=0)
    ms.build(b, seed=0)
    return a, b


@needs_data
def test_two_builds_are_byte_identical(builds):
    a, b = builds
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@needs_data
def test_shipped_sample_equals_a_fresh_build(builds):
    """Compared after decompression, so a different zlib build cannot fail it; README/NOTICE byte for byte."""
    fresh = builds[0]
    for name in FILES:
        shipped, new = (SHIPPED / name).read_bytes(), (fresh / name).read_bytes()
        if name.endswith(".gz"):
            shipped, new = gzip.decompress(shipped), gzip.decompress(new)
        assert shipped == new, f"{name} is stale: run `python -m tools.make_sample`"


@needs_data
def test_seed_changes_the_corpus():
    pools = ms.load_pools(ms.DEFAULT_DATA)
    first, other = ms.Builder(pools, 0), ms.Builder(pools, 1)
    first.clean()
    other.clean()
    assert [r.text for r in first.records] != [r.text for r in other.records]


def test_size_and_shape_of_the_shipped_sample():
    assert (SHIPPED / ms.JSONL_NAME).stat().st_size < 3 * 2**20
    assert (SHIPPED / ms.WARC_NAME).stat().st_size < 2**20
    records = _records(SHIPPED)
    assert 1500 <= len(records) <= 3000
    assert len({r["id"] for r in records if "id" in r}) == len(records)
    clean_langs = {r["lang"] for r in records if r["kind"] == "clean"}
    assert 30 <= len(clean_langs) <= 45
    assert "NOTICE.md" in (SHIPPED / "README.md").read_text()
    notice = (SHIPPED / "NOTICE.md").read_text()
    assert "CC-BY 2.0 FR" in notice and "https://tatoeba.org/eng/terms_of_use" in notice


def test_every_kind_is_present():
    kinds = Counter(r["kind"] for r in _records(SHIPPED))
    for kind in ms.KIND_DOC:
        assert kinds[kind] > 0, kind


def test_malformed_lines_are_really_malformed():
    bad_utf8 = bad_json = not_object = 0
    no_text = non_string = empty = blank = 0
    for line in _lines(SHIPPED):
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError:
            bad_utf8 += 1
            continue
        try:
            obj = json.loads(decoded)
        except ValueError:
            bad_json += 1
            continue
        if not isinstance(obj, dict):
            not_object += 1
            continue
        if "text" not in obj:
            no_text += 1
        elif not isinstance(obj["text"], str):
            non_string += 1
        elif obj["text"] == "":
            empty += 1
        elif not obj["text"].strip():
            blank += 1
        else:
            assert obj["kind"] != "malformed", obj["id"]
            continue
        assert obj["kind"] == "malformed", obj.get("id")
    assert (bad_utf8, bad_json, not_object) == (1, 2, 1)
    assert (no_text, non_string, empty, blank) == (1, 2, 1, 1)


def test_documents_do_what_their_kind_says():
    records = _records(SHIPPED)
    by_id = {r["id"]: r for r in records}
    words = {r["id"]: ms.count_words(r["text"]) for r in records if r["kind"] in ("clean", "short")}
    assert all(n >= 50 for i, n in words.items() if by_id[i]["kind"] == "clean")
    assert all(n < 50 for i, n in words.items() if by_id[i]["kind"] == "short")
    for r in records:
        origin = by_id.get(r.get("origin"))
        if r["kind"] == "exact_dup":
            assert normalize_for_dedup(r["text"]) == normalize_for_dedup(origin["text"])
        elif r["kind"] == "near_dup":
            assert r["text"] != origin["text"]
            assert ms.NEAR_DUP_MIN_JACCARD <= ms.jaccard(r["text"], origin["text"]) < 1
        elif r["kind"] == "parallel" and origin is not None:
            # an English page and its source page: the same paragraphs, pair for pair
            assert r["lang"] == "eng" and origin["kind"] == "parallel" and origin["lang"] in ms.PARALLEL_LANGS
            assert r["text"].count("\n") == origin["text"].count("\n")
        elif r["kind"] == "mixed_language":
            assert "+" in r["lang"]
        elif r["kind"] == "oversize":
            assert len(r["text"]) > 1_000_000
    assert {r["lang"] for r in records if r["kind"] == "parallel"} == {"eng", *ms.PARALLEL_LANGS}


def _segment(line: str, sentences: dict[str, str]) -> list[str]:
    """Split a paragraph back into the pool's sentences (longest match first)."""
    out, pos = [], 0
    while pos < len(line):
        match = max((s for s in sentences if line.startswith(s, pos)), key=len)
        out.append(match)
        pos += len(match) + 1
    return out


def test_parallel_pages_are_real_translation_pairs():
    """Each English page holds the English sides of its source page's Tatoeba pairs, paragraph by paragraph."""
    if not ms.DEFAULT_DATA.is_dir():
        pytest.skip("Tatoeba dev data not available")
    records = _records(SHIPPED)
    by_id = {r["id"]: r for r in records}
    english: dict[str, str] = {}
    for src, en in ms._read_pairs(ms.DEFAULT_DATA / "fra-eng.tsv"):
        english.setdefault(src, en)
    checked = 0
    for r in records:
        if r["kind"] == "parallel" and r.get("origin") and by_id[r["origin"]]["lang"] == "fra":
            src_lines = [line for line in by_id[r["origin"]]["text"].split("\n") if line]
            en_lines = [line for line in r["text"].split("\n") if line]
            assert len(src_lines) == len(en_lines)
            for src_line, en_line in zip(src_lines, en_lines):
                assert " ".join(english[s] for s in _segment(src_line, english)) == en_line
            checked += 1
    assert checked == ms.PARALLEL_DOCS_PER_LANG


def test_warc_pages_wrap_sample_documents():
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from warcio.archiveiterator import ArchiveIterator as WarcioIterator

    with open(SHIPPED / ms.WARC_NAME, "rb") as fh:  # an independent reader, checking every digest
        types = Counter(rec.rec_type for rec in WarcioIterator(fh, check_digests="raise"))
    assert types["warcinfo"] == 1 and types["request"] == ms.N_WARC_PAGES

    by_url = {r["url"]: r for r in _records(SHIPPED)}
    pages = 0
    with open(SHIPPED / ms.WARC_NAME, "rb") as fh:
        for rec in ArchiveIterator(fh, record_types=WarcRecordType.response, parse_http=True):
            body = rec.reader.read()
            if rec.http_content_type != "text/html" or not body:
                continue
            pages += 1
            html = bytes_to_str(body, rec.http_charset or detect_encoding(body))
            text = extract_plain_text(html, main_content=True)
            lines = [line for line in by_url[rec.headers["WARC-Target-URI"]]["text"].split("\n") if line.strip()]
            assert lines[0].strip() in text and lines[-1].strip() in text
            record = by_url[rec.headers["WARC-Target-URI"]]
            if record["kind"] != "boilerplate":  # the page chrome is not main content
                assert ms.chrome_for(record["lang"])["cookie"][0] not in text
    assert pages == ms.N_WARC_PAGES
