"""Reading documents (JSONL, Parquet, plain text, WARC/WET) and writing Parquet shards atomically.

Reading: the driver turns the inputs into work items (byte ranges of uncompressed JSONL/text files, row
groups of Parquet files, whole compressed or WARC files), so that big inputs spread over workers. Every record
becomes a document, a rejected record (empty text, oversize) or a quarantined record with its raw bytes and
the error: nothing is silently lost.

Writing: `WriteParquetShards` works on every runner, the DaskRunner included, because it uses only ParDo and
GroupByKey. Workers spill rows to Arrow files, a planner packs hash buckets into size-bounded shards, and each
shard is sorted by its sort key and written to a temporary name, then renamed. The bytes of a shard depend
only on the set of rows, never on the worker count or bundle boundaries.
"""

from __future__ import annotations

import gzip
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
import zstandard
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from schemas.documents import new_document, quarantined, rejected
from transforms import fs
from transforms.config import IngestConfig, OutputConfig
from transforms.core import Counters
from transforms.text import safe_path_component

FORMATS = ("jsonl", "parquet", "text", "warc")
_SUFFIX_FORMATS = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".txt": "text",
    ".text": "text", ".md": "text", ".warc": "warc", ".wet": "warc", ".arc": "warc",
}
_COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
STAGE = "ingest"


class InputError(ValueError):
    """A user mistake about the inputs (no match, unknown format); the message says what to do."""


# --- planning the reads (driver side) ----------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    path: str  # absolute, or a URL (gs://...)
    name: str  # stable name used in `source` and derived ids: relative to the input root
    fmt: str
    compression: str | None
    size: int


@dataclass(frozen=True)
class WorkItem:
    file: InputFile
    start: int = 0  # byte offset, or first row of a Parquet row group
    end: int | None = None  # byte offset (exclusive)
    row_group: int | None = None


def _sniff_compression(path: str) -> str | None:
    with fs.open_read(path) as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return None


def _detect_format(path: str, forced: str | None) -> str:
    if forced:
        return forced
    name = PurePosixPath(fs.basename(path))
    suffixes = [s.lower() for s in name.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes.pop()
    if not suffixes:
        # a bare `.gz`/`.zst` file is compressed JSONL
        if name.suffix.lower() in _COMPRESSION_SUFFIXES:
            return "jsonl"
        raise InputError(f"cannot tell the format of {path}; pass --input_format ({', '.join(FORMATS)})")
    fmt = _SUFFIX_FORMATS.get(suffixes[-1])
    if fmt is None:
        raise InputError(f"cannot tell the format of {path}; pass --input_format ({', '.join(FORMATS)})")
    return fmt


def expand_inputs(patterns: list[str], input_format: str | None = None) -> list[InputFile]:
    """Files named by paths, globs or folders (searched recursively, hidden files skipped), local or on an object
    store, sorted, with format and size."""
    if input_format is not None and input_format not in FORMATS:
        raise InputError(f"unknown --input_format '{input_format}'; choose one of {', '.join(FORMATS)}")
    found: dict[str, InputFile] = {}
    for pattern in patterns:
        matches = fs.glob(pattern)
        if not matches and fs.is_dir(pattern):  # an object-store folder is a prefix, not an object
            matches = [pattern.rstrip("/")]
        if not matches:
            raise InputError(f"no input matches '{pattern}'")
        for match in matches:
            if fs.is_dir(match):
                files = [p for p in fs.list_files(match) if not fs.basename(p).startswith(".")]
                base = match
            else:
                files, base = [match], fs.dirname(match)
            for path in files:
                fmt = _detect_format(path, input_format)
                full = fs.absolute(path)
                found[full] = InputFile(path=full, name=fs.relative(path, base), fmt=fmt,
                                        compression=_sniff_compression(full), size=fs.size(full))
    if not found:
        raise InputError(f"no input files found in {', '.join(patterns)}")
    return sorted(found.values(), key=lambda f: f.path)


def plan_reads(files: list[InputFile], config: IngestConfig) -> list[WorkItem]:
    """Split files into work items: byte ranges, Parquet row groups, or whole files where unsplittable."""
    items: list[WorkItem] = []
    for f in files:
        line_based = f.fmt == "jsonl" or (f.fmt == "text" and config.text_lines)
        if f.fmt == "parquet":
            try:
                with fs.open_read(f.path) as handle:
                    meta = pq.ParquetFile(handle).metadata
            except Exception:  # unreadable: the reader quarantines the whole file with the error
                items.append(WorkItem(f, row_group=-1))
                continue
            first = 0
            for rg in range(meta.num_row_groups):
                items.append(WorkItem(f, start=first, row_group=rg))
                first += meta.row_group(rg).num_rows
        elif line_based and f.compression is None and f.size > config.split_bytes:
            for start in range(0, f.size, config.split_bytes):
                items.append(WorkItem(f, start=start, end=min(start + config.split_bytes, f.size)))
        else:
            items.append(WorkItem(f))
    return items


# --- reading (worker side) ---------------------------------------------------------------------------


class CorruptInput(Exception):
    """A compressed stream that ends early or cannot be decoded."""


CORRUPT_STREAM = "end of stream"  # the quarantine location of a truncated or corrupt compressed file


def quarantine_reason(row: dict) -> str:
    return "corrupt_stream" if row.get("location") == CORRUPT_STREAM else "unreadable_record"


def _open_stream(f: InputFile):
    raw = fs.open_read(f.path)
    if f.compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if f.compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return io.BufferedReader(reader)
    return raw


def _iter_lines(item: WorkItem):
    """(location, byte offset, line) for the lines that start inside the item's byte range.

    The offset is counted in the decompressed stream, so a derived id does not depend on how a file was split.
    """
    f = item.file
    stream = _open_stream(f)
    try:
        if f.compression is None and item.end is not None:
            stream.seek(item.start)
            if item.start > 0:
                stream.seek(item.start - 1)
                if stream.read(1) != b"\n":
                    stream.readline()  # the partial line belongs to the previous range
            while True:
                pos = stream.tell()
                if pos >= item.end:
                    return
                line = stream.readline()
                if not line:
                    return
                yield f"byte {pos}", pos, line
        else:
            number, pos = 0, 0
            while True:
                try:
                    line = stream.readline()
                except (EOFError, OSError, zstandard.ZstdError) as exc:
                    raise CorruptInput(f"{f.compression} stream is truncated or corrupt after line {number}: {exc}")
                if not line:
                    return
                number += 1
                yield f"line {number} (byte {pos})", pos, line
                pos += len(line)
    finally:
        stream.close()


class _ReadFn(beam.DoFn):
    """Turn one work item into documents, rejected records and quarantined records."""

    def __init__(self, config: IngestConfig, text_field: str, id_field: str):
        self.config = config
        self.text_field = text_field
        self.id_field = id_field

    def setup(self):
        self.counters = Counters(STAGE)

    def _finish(self, doc: dict):
        """Empty and oversize text is handled here, once for every format."""
        self.counters.inc("records")
        text = doc["text"]
        if not text.strip():
            self.counters.inc("dropped.empty_text")
            return beam.pvalue.TaggedOutput("rejected", rejected(doc, STAGE, "empty_text", "empty or whitespace-only"))
        if len(text) > self.config.max_doc_chars:
            if self.config.oversize_policy == "drop":
                self.counters.inc("dropped.oversize")
                detail = f"{len(text)} chars > max_doc_chars {self.config.max_doc_chars}"
                return beam.pvalue.TaggedOutput("rejected", rejected(dict(doc, text=text[:1000]), STAGE, "oversize", detail))
            self.counters.inc("truncated")
            meta = json.loads(doc["metadata"] or "{}")
            meta["truncated_from_chars"] = len(text)
            doc = dict(doc, text=text[: self.config.max_doc_chars], metadata=_dumps(meta))
        return doc

    def _quarantine(self, f: InputFile, location: str, error: str, raw: bytes | None):
        self.counters.inc("records")
        self.counters.inc("quarantined")
        return beam.pvalue.TaggedOutput("quarantine", quarantined(f.name, location, error, raw))

    def process(self, item: WorkItem):
        f = item.file
        try:
            if f.fmt == "parquet":
                yield from self._parquet(item)
            elif f.fmt == "warc":
                yield from self._warc(item)
            elif f.fmt == "text" and not self.config.text_lines:
                yield from self._whole_text(item)
            else:
                yield from self._lines(item)
        except CorruptInput as exc:
            self.counters.inc("corrupt_inputs")
            yield self._quarantine(f, CORRUPT_STREAM, str(exc), None)

    def _record_to_doc(self, f: InputFile, record, position) -> dict | str:
        """A parsed record -> document, or the reason it cannot be one."""
        if not isinstance(record, dict):
            return f"record is a JSON {type(record).__name__}, not an object"
        if self.text_field not in record:
            return f"missing text field '{self.text_field}'"
        text = record[self.text_field]
        if not isinstance(text, str):
            return f"text field '{self.text_field}' is {type(text).__name__}, not a string"
        doc_id = record.get(self.id_field)
        doc_id = f"{f.name}:{position}" if doc_id is None or doc_id == "" else str(doc_id)
        rest = {k: v for k, v in record.items() if k not in (self.text_field, self.id_field)}
        return new_document(doc_id, text, f.name, _dumps(rest) if rest else None)

    def _lines(self, item: WorkItem):
        f = item.file
        for location, position, raw in _iter_lines(item):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                decoded = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield self._quarantine(f, location, f"invalid UTF-8: {exc.reason} at byte {exc.start}", line)
                continue
            if f.fmt == "text":
                result = new_document(f"{f.name}:{position}", decoded, f.name)
            else:
                try:
                    result = self._record_to_doc(f, json.loads(decoded), position)
                except json.JSONDecodeError as exc:
                    result = f"malformed JSON: {exc.msg} at column {exc.colno}"
            if isinstance(result, str):
                yield self._quarantine(f, location, result, line)
            else:
                yield self._finish(result)

    def _whole_text(self, item: WorkItem):
        f = item.file
        with _open_stream(f) as stream:
            try:
                data = stream.read()
            except (EOFError, OSError, zstandard.ZstdError) as exc:
                raise CorruptInput(f"{f.compression} stream is truncated or corrupt: {exc}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield self._quarantine(f, "file", f"invalid UTF-8: {exc.reason} at byte {exc.start}", data)
            return
        yield self._finish(new_document(f.name, text, f.name))

    def _parquet(self, item: WorkItem):
        f = item.file
        try:
            with fs.open_read(f.path) as handle:
                table = pq.ParquetFile(handle).read_row_group(item.row_group)
        except Exception as exc:
            yield self._quarantine(f, "file" if item.row_group == -1 else f"row group {item.row_group}",
                                   f"unreadable Parquet: {exc}", None)
            return
        for offset, record in enumerate(table.to_pylist()):
            row = item.start + offset
            result = self._record_to_doc(f, record, row)
            if isinstance(result, str):
                raw = json.dumps(record, default=str, ensure_ascii=False).encode("utf-8")
                yield self._quarantine(f, f"row {row}", result, raw)
            else:
                yield self._finish(result)

    def _warc(self, item: WorkItem):
        from fastwarc.warc import ArchiveIterator, WarcRecordType
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.encoding import bytes_to_str, detect_encoding

        f = item.file
        wanted = WarcRecordType.response | WarcRecordType.conversion | WarcRecordType.resource
        with fs.open_read(f.path) as stream:
            for number, record in enumerate(ArchiveIterator(stream, record_types=wanted, parse_http=True)):
                location = f"record {number}"
                try:
                    record_id = record.headers.get("WARC-Record-ID", "").strip("<>") or f"{f.name}:{number}"
                    url = record.headers.get("WARC-Target-URI")
                    body = record.reader.read()
                    if record.record_type == WarcRecordType.conversion:
                        text = body.decode("utf-8")
                    else:
                        content_type = (record.http_headers.get("Content-Type", "") if record.http_headers else "")
                        if content_type and "html" not in content_type and "text" not in content_type:
                            self.counters.inc("records")
                            self.counters.inc("dropped.not_text")
                            doc = new_document(record_id, "", f.name, _dumps({"url": url, "content_type": content_type}))
                            yield beam.pvalue.TaggedOutput("rejected", rejected(doc, STAGE, "not_text", content_type))
                            continue
                        html = bytes_to_str(body, detect_encoding(body))
                        text = extract_plain_text(html, main_content=True)
                except Exception as exc:  # one bad record must not stop the archive
                    yield self._quarantine(f, location, f"unreadable WARC record: {exc}", None)
                    continue
                meta = {"url": url, "date": record.headers.get("WARC-Date")}
                yield self._finish(new_document(record_id, text, f.name, _dumps(meta)))


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class ReadDocuments(beam.PTransform):
    """Work items -> {"documents", "rejected", "quarantine"}. Items are shuffled so files spread over workers."""

    def __init__(self, items: list[WorkItem], config: IngestConfig, text_field: str = "text", id_field: str = "id"):
        super().__init__()
        self.items = items
        self.config = config
        self.text_field = text_field
        self.id_field = id_field

    def expand(self, pbegin):
        results = (
            pbegin
            | "WorkItems" >> beam.Create(self.items)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadFn(self.config, self.text_field, self.id_field)).with_outputs(
                "rejected", "quarantine", main="documents"
            )
        )
        return {"documents": results.documents, "rejected": results.rejected, "quarantine": results.quarantine}


def checksum_file(path: str, chunk: int = 8 * 2**20) -> str:
    h = xxhash.xxh3_128()
    with fs.open_read(path) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --- writing -----------------------------------------------------------------------------------------


def _row_bytes(row: dict) -> int:
    return 64 + sum(len(v) for v in row.values() if isinstance(v, (str, bytes)))


@dataclass(frozen=True)
class SpillRef:
    """One spill file's share of one partition: (bucket, record batch index, bytes) for each bucket it holds.

    One reference per (file, partition) rather than per (file, partition, bucket): the references are what the
    sink shuffles, and on the DirectRunner every shuffle sits in the driver, so per-bucket references made the
    driver grow with the number of spills times the 64 buckets.
    """

    path: str
    buckets: tuple[tuple[int, int, int], ...]


class _SpillFn(beam.DoFn):
    """Buffer rows by (partition, bucket); past `spill_bytes`, write them to one Arrow IPC file."""

    def __init__(self, staging: str, schema: pa.Schema, partition_field: str | None, buckets: int, spill_bytes: int):
        self.staging = staging
        self.schema = schema
        self.partition_field = partition_field
        self.buckets = buckets
        self.spill_bytes = spill_bytes

    def start_bundle(self):
        self.buffer: dict[tuple[str, int], list[dict]] = {}
        self.group_bytes: dict[tuple[str, int], int] = {}  # _row_bytes summed per group, measured once per row
        self.size = 0

    def process(self, row: dict):
        part = safe_path_component(str(row.get(self.partition_field) or "")) if self.partition_field else ""
        key_value = str(row.get("id") or row.get("pair_id") or row.get("sample_id") or _dumps(row))
        bucket = xxhash.xxh64_intdigest(key_value.encode()) % self.buckets
        self.buffer.setdefault((part, bucket), []).append(row)
        nbytes = _row_bytes(row)
        self.group_bytes[(part, bucket)] = self.group_bytes.get((part, bucket), 0) + nbytes
        self.size += nbytes
        if self.size >= self.spill_bytes:
            yield from self._flush()

    def finish_bundle(self):
        for part, ref in self._flush():
            yield WindowedValue((part, ref), GlobalWindow().max_timestamp(), [GlobalWindow()])

    def _flush(self):
        """One Arrow IPC file per flush, one record batch per (partition, bucket), so a reader fetches only
        its bucket's batch (by seeking, also on object stores)."""
        if not self.buffer:
            return []
        keys = sorted(self.buffer)
        path = fs.join(self.staging, f"spill-{uuid.uuid4().hex}.arrow")
        sink = pa.BufferOutputStream()
        by_partition: dict[str, list[tuple[int, int, int]]] = {}
        with pa.ipc.new_file(sink, self.schema) as writer:
            for index, (part, bucket) in enumerate(keys):
                group = self.buffer[(part, bucket)]
                writer.write_batch(pa.RecordBatch.from_pylist(group, schema=self.schema))
                by_partition.setdefault(part, []).append((bucket, index, self.group_bytes[(part, bucket)]))
        fs.write_atomic(path, sink.getvalue().to_pybytes())
        self.buffer, self.group_bytes, self.size = {}, {}, 0
        return [(part, SpillRef(path, tuple(buckets))) for part, buckets in by_partition.items()]


def _plan_shards(partition_and_refs, max_shard_bytes: int):
    """Pack a partition's buckets, in order, into shards of at most `max_shard_bytes` (a bucket is never split
    across files here; a bucket bigger than the bound gets a shard of its own, split into files by the writer).

    Yields (partition, first file index, number of files, [(bucket, [(spill path, batch index), ...]), ...])."""
    partition, spill_refs = partition_and_refs
    located: dict[int, list[tuple[str, int]]] = {}
    sizes: dict[int, int] = {}
    for ref in spill_refs:
        for bucket, batch, nbytes in ref.buckets:
            located.setdefault(bucket, []).append((ref.path, batch))
            sizes[bucket] = sizes.get(bucket, 0) + nbytes
    shards: list[list] = []
    current, size = [], 0
    for bucket in sorted(located):
        refs, nbytes = located[bucket], sizes[bucket]
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append((bucket, refs, nbytes))
        size += nbytes
    if current:
        shards.append(current)
    index = 0
    for shard in shards:
        nbytes = sum(b[2] for b in shard)
        files = max(1, -(-nbytes // max_shard_bytes))
        yield (partition, index, files, [(bucket, refs) for bucket, refs, _ in shard])
        index += files


class _WriteShardFn(beam.DoFn):
    def __init__(self, output_dir: str, base: str, schema: pa.Schema, sort_fields: tuple[str, ...],
                 config: OutputConfig, prefix: str):
        self.output_dir = output_dir
        self.prefix = prefix
        self.base = base
        self.schema = schema
        self.sort_fields = sort_fields
        self.config = config

    def _bucket_table(self, refs: list[tuple[str, int]]) -> pa.Table:
        """One hash bucket's rows, from its (spill path, batch index) pieces, sorted: the unit held in memory
        while a shard is written."""
        batches = []
        for path, batch in sorted(refs):
            with fs.open_read(path) as source:
                batches.append(pa.ipc.open_file(source).get_batch(batch))
        table = pa.Table.from_batches(batches, schema=self.schema)
        keys = [(name, "ascending") for name in self.sort_fields if name in self.schema.names]
        return table.sort_by(keys) if keys else table

    def _write(self, folder: str, index: int, tables) -> dict:
        final = fs.join(folder, f"part-{self.prefix}{index:05d}.parquet")
        compression = None if self.config.compression == "none" else self.config.compression
        level = self.config.compression_level if compression in ("zstd", "gzip") else None
        group = self.config.row_group_rows
        rows, pending = 0, []
        with fs.atomic_create(final) as handle, pq.ParquetWriter(
                handle, self.schema, compression=compression or "none", compression_level=level,
                write_statistics=True) as writer:
            for table in tables:  # full row groups across bucket boundaries; the remainder waits
                pending.append(table)
                if sum(t.num_rows for t in pending) >= group:
                    joined = pa.concat_tables(pending)
                    full = joined.num_rows - joined.num_rows % group
                    writer.write_table(joined.slice(0, full), row_group_size=group)
                    rows += full
                    pending = [joined.slice(full)] if full < joined.num_rows else []
            if pending:
                rest = pa.concat_tables(pending)
                writer.write_table(rest, row_group_size=group)
                rows += rest.num_rows
        return {"path": fs.relative(final, self.output_dir), "partition": fs.basename(folder)
                if folder != self.base else "", "rows": rows, "bytes": fs.size(final)}

    def process(self, plan):
        """Write a shard bucket by bucket in bucket order, each bucket sorted by the sort key, so memory holds
        one bucket, not the shard. A bucket larger than the shard bound is split into `n_files` files."""
        partition, first_index, n_files, buckets = plan
        folder = fs.join(self.base, partition) if partition else self.base
        if n_files == 1:
            yield self._write(folder, first_index, (self._bucket_table(refs) for _, refs in buckets))
            return
        (_, refs), = buckets  # the planner gives an oversize bucket a shard of its own
        table = self._bucket_table(refs)
        per_file = -(-table.num_rows // n_files)
        for k in range(n_files):
            yield self._write(folder, first_index + k, [table.slice(k * per_file, per_file)])


class WriteParquetShards(beam.PTransform):
    """Rows (dicts) -> OUTPUT/<folder>/[<partition>/]part-<prefix>XXXXX.parquet, sorted, size-bounded, atomic.

    `prefix` names an incremental run's shards so they never collide with earlier runs' shards.

    Returns a PCollection of {"path", "partition", "rows", "bytes"} for the manifest.
    """

    def __init__(self, output_dir: str, folder: str, schema: pa.Schema, config: OutputConfig,
                 partition_field: str | None = None, sort_fields: tuple[str, ...] = ("id",), prefix: str = ""):
        super().__init__()
        self.prefix = prefix
        self.output_dir = output_dir
        self.base = fs.join(output_dir, folder)
        self.staging = fs.join(output_dir, "_staging", folder.replace("/", "_"))
        self.schema = schema
        self.config = config
        self.partition_field = partition_field
        self.sort_fields = tuple(sort_fields) + tuple(n for n in ("text", "source") if n not in sort_fields)

    def expand(self, rows):
        """`rows` is one PCollection or several (a tuple): each is spilled where it is produced and only the
        spill references are flattened. A Flatten of the rows themselves would make the DirectRunner buffer
        every row of its inputs in the driver."""
        cfg = self.config
        inputs = rows if isinstance(rows, (tuple, list)) else (rows,)
        refs = [
            pcoll | f"Spill{i or ''}" >> beam.ParDo(_SpillFn(self.staging, self.schema, self.partition_field,
                                                             cfg.hash_buckets, cfg.spill_bytes))
            for i, pcoll in enumerate(inputs)
        ]
        return (
            (refs[0] if len(refs) == 1 else refs | "AllSpills" >> beam.Flatten())
            | "GroupPartitions" >> beam.GroupByKey()
            | "Plan" >> beam.FlatMap(_plan_shards, cfg.max_shard_bytes)
            | "SpreadShards" >> beam.Reshuffle()
            | "Write" >> beam.ParDo(_WriteShardFn(self.output_dir, self.base, self.schema, self.sort_fields, cfg,
                                                     self.prefix))
        )
