"""transforms.io: readers (JSONL plain/gz/zst, Parquet, text, WARC), bad input, and the atomic Parquet sink."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
import pytest
import zstandard
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SENTENCES, error_lines, make_document, read_rows, write_jsonl
from schemas.documents import DOCUMENT_SCHEMA, new_document
from transforms.config import IngestConfig, OutputConfig
from transforms.io import (
    InputError,
    ReadDocuments,
    WriteParquetShards,
    _ReadFn,
    _SpillFn,
    _plan_shards,
    _row_bytes,
    expand_inputs,
    plan_reads,
)


def read_items(items, config: IngestConfig | None = None, text_field: str = "text", id_field: str = "id") -> dict:
    """Run the reader DoFn on work items directly; outputs by tag."""
    config = config or IngestConfig()
    fn = _ReadFn(config, text_field, id_field)
    fn.setup()
    out = {"documents": [], "rejected": [], "quarantine": []}
    for item in items:
        for result in fn.process(item):
            if isinstance(result, beam.pvalue.TaggedOutput):
                out[result.tag].append(result.value)
            else:
                out["documents"].append(result)
    return out


def read_paths(paths, input_format: str | None = None, config: IngestConfig | None = None, **kw) -> dict:
    config = config or IngestConfig()
    return read_items(plan_reads(expand_inputs([str(p) for p in paths], input_format), config), config, **kw)


RECORDS = [{"id": f"doc-{i}", "text": make_document("fra", 3, start=3 * i), "url": f"https://x/{i}"} for i in range(20)]


# --- JSONL -------------------------------------------------------------------------------------------


def _jsonl_bytes(records) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


@pytest.mark.parametrize("name, compress", [
    ("plain.jsonl", lambda b: b),
    ("gz.jsonl.gz", gzip.compress),
    ("zst.jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ("bare.gz", gzip.compress),
])
def test_jsonl_plain_gzip_zstd(tmp_path, name, compress):
    path = tmp_path / name
    path.write_bytes(compress(_jsonl_bytes(RECORDS)))
    out = read_paths([path])
    docs = sorted(out["documents"], key=lambda d: int(d["id"].split("-")[1]))
    assert [d["id"] for d in docs] == [r["id"] for r in RECORDS]
    assert [d["text"] for d in docs] == [r["text"] for r in RECORDS]
    assert json.loads(docs[3]["metadata"]) == {"url": "https://x/3"}
    assert docs[0]["source"] == name
    assert out["quarantine"] == [] and out["rejected"] == []


def test_custom_text_and_id_fields(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"key": "a", "body": "Bonjour tout le monde."}])
    doc = read_paths([path], text_field="body", id_field="key")["documents"][0]
    assert (doc["id"], doc["text"]) == ("a", "Bonjour tout le monde.")
    quarantined = read_paths([path])["quarantine"]  # default field `text` is missing
    assert len(quarantined) == 1 and "missing text field 'text'" in quarantined[0]["error"]


def _canonical(out: dict):
    """Reader output as comparable multisets; quarantine rows by their byte offset, error and raw bytes."""
    docs = Counter(json.dumps(d, sort_keys=True) for d in out["documents"])
    rejected = Counter(json.dumps(r, sort_keys=True) for r in out["rejected"])
    quarantine = Counter((q["location"].split("byte ")[-1].rstrip(")"), q["error"], q["raw"]) for q in out["quarantine"])
    return docs, rejected, quarantine


_line = st.one_of(
    st.builds(lambda t, i: json.dumps({"id": i, "text": t}, ensure_ascii=False).encode(),
              st.text(min_size=0, max_size=60), st.one_of(st.none(), st.text(max_size=5))),
    st.binary(max_size=30),  # malformed JSON, invalid UTF-8, blank lines
    st.just(b'{"text": "  "}'),
    st.just(b'{"id": 3}'),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line, min_size=0, max_size=25), split=st.integers(1, 64), crlf=st.booleans(),
       final_newline=st.booleans())
def test_byte_range_split_reads_exactly_the_whole_file(tmp_path_factory, lines, split, crlf, final_newline):
    lines = [ln.replace(b"\n", b" ").replace(b"\r", b" ") for ln in lines]
    eol = b"\r\n" if crlf else b"\n"
    data = eol.join(lines) + (eol if final_newline and lines else b"")
    path = tmp_path_factory.mktemp("split") / "data.jsonl"
    path.write_bytes(data)
    whole = read_paths([path], config=IngestConfig(split_bytes=10**9))
    config = IngestConfig(split_bytes=split)
    files = expand_inputs([str(path)])
    items = plan_reads(files, config)
    compressed = data.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd"))  # sniffed as gzip/zstd: never split
    if len(data) > split and not compressed:
        assert len(items) == -(-len(data) // split)
    assert _canonical(read_items(items, config)) == _canonical(whole)


def test_missing_ids_are_derived_stably(tmp_path):
    records = [{"text": "Guten Morgen, wie geht es dir heute?"}, {"id": "", "text": "Ein zweites Dokument hier."},
               {"id": 42, "text": "Numerische Kennung."}]
    path = write_jsonl(tmp_path / "sub" / "noid.jsonl", records)
    first = read_paths([path])["documents"]
    again = read_paths([tmp_path / "sub"])["documents"]  # through the folder: same relative name
    split = read_paths([path], config=IngestConfig(split_bytes=8))["documents"]
    ids = sorted(d["id"] for d in first)
    assert ids == sorted(d["id"] for d in again) == sorted(d["id"] for d in split)
    first_line = len(json.dumps(records[0]).encode()) + 1
    assert ids == sorted(["42", "noid.jsonl:0", f"noid.jsonl:{first_line}"])


# --- Parquet and text --------------------------------------------------------------------------------


def test_parquet_by_row_groups_with_derived_ids(tmp_path):
    rows = [{"id": None if i % 3 == 0 else f"p{i}", "text": make_document("deu", 2, start=i)} for i in range(10)]
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3)
    files = expand_inputs([str(path)])
    items = plan_reads(files, IngestConfig())
    assert [(i.row_group, i.start) for i in items] == [(0, 0), (1, 3), (2, 6), (3, 9)]
    docs = {d["text"]: d["id"] for d in read_items(items)["documents"]}
    assert [docs[r["text"]] for r in rows] == [r["id"] or f"data.parquet:{i}" for i, r in enumerate(rows)]


def test_parquet_bad_rows_and_unreadable_file(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["Hola a todos.", None]}), path)
    out = read_paths([path])
    assert [d["id"] for d in out["documents"]] == ["a"]
    assert len(out["quarantine"]) == 1 and "NoneType" in out["quarantine"][0]["error"]
    assert json.loads(out["quarantine"][0]["raw"])["id"] == "b"
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    out = read_paths([broken])
    assert out["documents"] == [] and "unreadable Parquet" in out["quarantine"][0]["error"]


def test_text_one_document_per_file_and_per_line(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("Premier paragraphe.\n\nDeuxième paragraphe.\n", encoding="utf-8")
    (folder / "b.txt").write_text("Une seule ligne.", encoding="utf-8")
    (folder / "empty.txt").write_text("  \n", encoding="utf-8")
    out = read_paths([folder])
    assert sorted((d["id"], d["text"]) for d in out["documents"]) == [
        ("a.txt", "Premier paragraphe.\n\nDeuxième paragraphe.\n"), ("b.txt", "Une seule ligne.")]
    assert [r["reason"] for r in out["rejected"]] == ["empty_text"]
    per_line = read_paths([folder], config=IngestConfig(text_lines=True, split_bytes=5))
    assert sorted(d["text"] for d in per_line["documents"]) == [
        "Deuxième paragraphe.", "Premier paragraphe.", "Une seule ligne."]
    assert len({d["id"] for d in per_line["documents"]}) == 3


def test_unknown_format_and_no_match_are_input_errors(tmp_path):
    (tmp_path / "data.xyz").write_text("x")
    with pytest.raises(InputError, match="--input_format"):
        expand_inputs([str(tmp_path / "data.xyz")])
    with pytest.raises(InputError, match="no input matches"):
        expand_inputs([str(tmp_path / "nothing*.jsonl")])
    assert expand_inputs([str(tmp_path / "data.xyz")], "text")[0].fmt == "text"


# --- WARC --------------------------------------------------------------------------------------------


def _warc(path: Path) -> Path:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    body = "".join(f"<p>{s}</p>" for s in SENTENCES["eng"][:12])
    html = (f"<html><head><title>T</title><script>var x = 1;</script></head><body><nav>Home | About</nav>"
            f"<article><h1>A story</h1>{body}</article><footer>Copyright</footer></body></html>").encode()
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for uri, ctype, payload in [("https://example.org/story", "text/html; charset=utf-8", html),
                                    ("https://example.org/logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)]:
            headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(uri, "response", payload=io.BytesIO(payload),
                                                          http_headers=headers))
        writer.write_record(writer.create_warc_record("https://example.org/story", "request",
                                                      payload=io.BytesIO(b"GET /story HTTP/1.1\r\n\r\n")))
        writer.write_record(writer.create_warc_record("https://example.org/plain", "conversion",
                                                      payload=io.BytesIO("Texte brut déjà extrait.".encode()),
                                                      warc_content_type="text/plain"))
    return path


def test_warc_html_is_extracted_and_non_text_is_rejected(tmp_path):
    out = read_paths([_warc(tmp_path / "crawl.warc.gz")])
    docs = {json.loads(d["metadata"])["url"]: d for d in out["documents"]}
    assert set(docs) == {"https://example.org/story", "https://example.org/plain"}
    story = docs["https://example.org/story"]["text"]
    assert SENTENCES["eng"][0] in story and SENTENCES["eng"][11] in story
    assert "<p>" not in story and "var x" not in story
    assert docs["https://example.org/plain"]["text"] == "Texte brut déjà extrait."
    assert [(r["reason"], r["detail"]) for r in out["rejected"]] == [("not_text", "image/png")]
    assert out["quarantine"] == []


# --- bad input ---------------------------------------------------------------------------------------


def test_bad_records_are_quarantined_with_raw_bytes_and_error(tmp_path):
    raw = [b'{"id": "x", "text": ', b'{"id": "u", "text": "caf\xe9"}', b'{"id": "m", "body": "no text"}',
           b'{"id": "n", "text": 17}', b'["a", "list"]', b'{"id": "e", "text": ""}', b'{"id": "w", "text": " \\n\\t "}']
    path = write_jsonl(tmp_path / "bad.jsonl", RECORDS[:2], raw)
    out = read_paths([path])
    assert sorted(d["id"] for d in out["documents"]) == ["doc-0", "doc-1"]
    by_raw = {q["raw"]: q["error"] for q in out["quarantine"]}
    assert set(by_raw) == set(raw[:5])
    assert by_raw[raw[0]].startswith("malformed JSON")
    assert by_raw[raw[1]].startswith("invalid UTF-8")
    assert "missing text field" in by_raw[raw[2]]
    assert "int, not a string" in by_raw[raw[3]]
    assert "not an object" in by_raw[raw[4]]
    assert all(q["source"] == "bad.jsonl" and q["location"] for q in out["quarantine"])
    assert sorted((r["id"], r["reason"]) for r in out["rejected"]) == [("e", "empty_text"), ("w", "empty_text")]


def test_oversize_document_truncated_by_default_and_dropped_on_request(tmp_path):
    big = ("Le chat dort sur le canapé. " * 400_000)[:10_000_000]
    path = write_jsonl(tmp_path / "big.jsonl", [{"id": "big", "text": big}, RECORDS[0]])
    out = read_paths([path])
    doc = next(d for d in out["documents"] if d["id"] == "big")
    assert len(doc["text"]) == IngestConfig().max_doc_chars and big.startswith(doc["text"])
    assert json.loads(doc["metadata"])["truncated_from_chars"] == 10_000_000
    dropped = read_paths([path], config=IngestConfig(oversize_policy="drop", max_doc_chars=5_000_000))
    assert [d["id"] for d in dropped["documents"]] == ["doc-0"]
    assert [(r["id"], r["reason"]) for r in dropped["rejected"]] == [("big", "oversize")]
    assert len(dropped["rejected"][0]["text"]) < 10_000  # the rejected table does not hold 10 MB


def _truncated_gzip(path: Path, n: int = 400) -> Path:
    records = [{"id": f"g{i}", "text": make_document("spa", 4, start=i)} for i in range(n)]
    data = gzip.compress(_jsonl_bytes(records))
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_gzip_keeps_what_was_read_and_quarantines_the_rest(tmp_path):
    out = read_paths([_truncated_gzip(tmp_path / "cut.jsonl.gz")])
    ids = [d["id"] for d in out["documents"]]
    assert 0 < len(ids) < 400
    assert ids == [f"g{i}" for i in range(len(ids))]  # a prefix, in order
    assert len(out["quarantine"]) == 1
    q = out["quarantine"][0]
    assert q["location"] == "end of stream" and "truncated" in q["error"]


@pytest.mark.slow
def test_truncated_gzip_build_exits_3_unless_allowed(tmp_path, run_build):
    path = _truncated_gzip(tmp_path / "cut.jsonl.gz")
    args = ["--input", str(path), "--stages", "langid"]
    result = run_build([*args, "--output", str(tmp_path / "out")])
    assert result.rc == 3
    assert len(error_lines(result.stderr)) == 1 and "--allow_corrupt_inputs" in result.stderr
    assert "Traceback" not in result.stderr
    acc = result.manifest["accounting"]
    assert acc["quarantined"] == acc["corrupt_inputs"] == 1 and acc["closes"]
    assert len(result.rows("quarantine")) == 1
    allowed = run_build([*args, "--allow_corrupt_inputs", "--output", str(tmp_path / "out2")])
    assert allowed.rc == 0 and error_lines(allowed.stderr) == []
    assert allowed.manifest["accounting"]["kept"] == acc["kept"] > 0


# --- the sink ----------------------------------------------------------------------------------------


def _docs(n: int) -> list[dict]:
    langs = ["fra", "deu", "rus", "cmn"]
    docs = []
    for i in range(n):
        lang = langs[i % len(langs)]
        doc = new_document(f"id-{i:04d}", make_document(lang, 1 + i % 7, start=i), "s.jsonl")
        doc.update(language=lang, partition=f"{lang}_X", language_score=0.5)
        docs.append(doc)
    return docs


def _write(rows, out: Path, config: OutputConfig, options: list[str] | None = None, partition="partition"):
    with BeamTestPipeline(options=PipelineOptions(options or [])) as p:
        written = (p | beam.Create(rows, reshuffle=False)
                   | WriteParquetShards(str(out), "documents", DOCUMENT_SCHEMA, config, partition_field=partition))
        assert_that(written | beam.Map(lambda f: f["rows"]) | beam.combiners.Count.Globally().without_defaults()
                    | beam.Map(lambda n: n > 0), equal_to([True]))


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sink_is_byte_identical_across_runs_and_worker_counts(tmp_path):
    rows = _docs(120)
    config = OutputConfig(spill_bytes=4_000, hash_buckets=8)
    _write(rows, tmp_path / "a", config)
    _write(list(reversed(rows)), tmp_path / "b", config,
           ["--direct_num_workers=2", "--direct_running_mode=multi_threading"])
    a, b = _file_bytes(tmp_path / "a" / "documents"), _file_bytes(tmp_path / "b" / "documents")
    assert a and a == b
    assert {k.split("/")[0] for k in a} == {"fra_X", "deu_X", "rus_X", "cmn_X"}
    assert not list(tmp_path.rglob("*.tmp-*"))
    meta = pq.ParquetFile(tmp_path / "a" / "documents" / "fra_X" / "part-00000.parquet").metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    ids = pq.read_table(tmp_path / "a" / "documents" / "fra_X" / "part-00000.parquet").column("id").to_pylist()
    # rows come bucket by bucket (hash of the id), each bucket sorted by id
    order = [(xxhash.xxh64_intdigest(i.encode()) % config.hash_buckets, i) for i in ids]
    assert order == sorted(order) and len(set(b for b, _ in order)) > 1


def test_sink_bounds_shard_size_and_keeps_every_row_once(tmp_path):
    rows = _docs(300)
    config = OutputConfig(max_shard_bytes=3_000, hash_buckets=16, spill_bytes=2_000, row_group_rows=7)
    _write(rows, tmp_path / "out", config)
    files = sorted((tmp_path / "out" / "documents").rglob("*.parquet"))
    per_partition = Counter(p.parent.name for p in files)
    assert all(n >= 3 for n in per_partition.values()), per_partition
    written = read_rows(tmp_path / "out" / "documents")
    assert sorted(r["id"] for r in written) == sorted(r["id"] for r in rows)  # each row exactly once
    biggest_row = max(map(_row_bytes, rows))
    for path in files:
        table = pq.read_table(path)
        assert sum(map(_row_bytes, table.to_pylist())) <= config.max_shard_bytes + biggest_row, path
        assert pq.ParquetFile(path).metadata.num_row_groups == -(-table.num_rows // 7)
    names = [p.name for p in files if p.parent.name == "fra_X"]
    assert names == [f"part-{i:05d}.parquet" for i in range(len(names))]
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_spill_sends_one_reference_per_file_and_partition(tmp_path):
    """What the sink shuffles is one reference per (spill file, partition), listing its buckets: per-bucket
    references made the DirectRunner's driver grow with the corpus (tools/bench/RESULTS_pipeline.md)."""
    rows = _docs(80)
    fn = _SpillFn(str(tmp_path), DOCUMENT_SCHEMA, "partition", 8, 10**9)
    fn.start_bundle()
    assert [out for row in rows for out in fn.process(row)] == []  # under spill_bytes: nothing flushed yet
    refs = [w.value for w in fn.finish_bundle()]
    assert sorted(part for part, _ in refs) == sorted({r["partition"] for r in rows})
    assert len({ref.path for _, ref in refs}) == 1
    batches = [batch for _, ref in refs for _, batch, _ in ref.buckets]
    assert sorted(batches) == list(range(len(batches)))  # every record batch of the file, once
    for part, ref in refs:
        mine = [r for r in rows if r["partition"] == part]
        assert sum(n for _, _, n in ref.buckets) == sum(map(_row_bytes, mine))
        assert len({b for b, _, _ in ref.buckets}) == len(ref.buckets) > 1
        plans = list(_plan_shards((part, [ref, ref]), max_shard_bytes=10**9))
        assert len(plans) == 1 and [b for b, _ in plans[0][3]] == sorted(b for b, _, _ in ref.buckets)
        assert all(len(pieces) == 2 for _, pieces in plans[0][3])  # a bucket gathers its pieces of every file


def test_sink_partition_values_cannot_escape_the_output(tmp_path):
    rows = _docs(12)
    evil = ["../../evil", "/abs/path", "..", "a\x00b", "x/../../y", "ｆｒａ"]
    for row, value in zip(rows, evil * 2):
        row["partition"] = value
    out = tmp_path / "nest" / "out"
    _write(rows, out, OutputConfig())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all((out / "documents") in p.parents for p in files if p.suffix == ".parquet")
    assert not (tmp_path / "evil").exists() and not Path("/abs/path").exists()
    assert sorted(r["id"] for r in read_rows(out / "documents")) == sorted(r["id"] for r in rows)
    for p in (out / "documents").iterdir():
        assert p.is_dir() and p.resolve().parent == (out / "documents").resolve()


def test_read_documents_transform_outputs_by_tag(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", RECORDS[:5], [b"not json", b'{"id": "e", "text": ""}'])
    config = IngestConfig(split_bytes=64)
    items = plan_reads(expand_inputs([str(path)]), config)
    assert len(items) > 5
    with BeamTestPipeline() as p:
        read = p | ReadDocuments(items, config)
        assert_that(read["documents"] | "Ids" >> beam.Map(lambda d: d["id"]), equal_to([r["id"] for r in RECORDS[:5]]),
                    label="docs")
        assert_that(read["rejected"] | "Reasons" >> beam.Map(lambda r: r["reason"]), equal_to(["empty_text"]),
                    label="rejected")
        assert_that(read["quarantine"] | "Raw" >> beam.Map(lambda q: q["raw"]), equal_to([b"not json"]),
                    label="quarantine")


def test_atomic_create_leaves_nothing_when_the_write_fails(tmp_path):
    from transforms import fs

    target = str(tmp_path / "sub" / "part-00000.parquet")
    with pytest.raises(RuntimeError):
        with fs.atomic_create(target) as f:
            f.write(b"half a shard")
            raise RuntimeError("worker died")
    assert fs.list_files(str(tmp_path)) == []
    fs.write_atomic(target, b"whole")
    assert fs.list_files(str(tmp_path)) == [target] and fs.read_bytes(target) == b"whole"
