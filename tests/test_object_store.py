"""Inputs and outputs on an object store (gs://, s3://) instead of a local folder: the whole pipeline reads and
writes only through Beam's FileSystems. An in-memory store with object-store semantics (flat keys, no folders,
rename by copy and delete) stands in for GCS, so any path that escapes to the local disk fails these tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystem import CompressionTypes, FileMetadata, FileSystem

from conftest import multilingual_records, write_jsonl

pytestmark = pytest.mark.slow


class _Upload(io.BytesIO):
    def __init__(self, store: dict, key: str):
        super().__init__()
        self.store, self.key = store, key

    def close(self):
        if not self.closed:
            self.store[self.key] = self.getvalue()  # the object appears whole, on close, as on GCS
        super().close()


class MemoryFileSystem(FileSystem):
    """`mem://bucket/key` objects in a dict. Beam finds it by its scheme once this module is imported."""

    store: dict[str, bytes] = {}

    @classmethod
    def scheme(cls):
        return "mem"

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/")] + [p.strip("/") for p in paths])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, prefix):
        for key in sorted(self.store):
            if key.startswith(prefix):
                yield FileMetadata(key, len(self.store[key]))

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        assert compression_type == CompressionTypes.UNCOMPRESSED
        return _Upload(self.store, path)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        assert compression_type == CompressionTypes.UNCOMPRESSED
        if path not in self.store:
            raise FileNotFoundError(path)
        return io.BytesIO(self.store[path])

    def copy(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names):
            self.store[dst] = self.store[src]

    def rename(self, source_file_names, destination_file_names):
        self.copy(source_file_names, destination_file_names)
        self.delete(source_file_names)

    def exists(self, path):
        return path in self.store

    def size(self, path):
        return len(self.store[path])

    def last_updated(self, path):
        return 0.0

    def checksum(self, path):
        return str(len(self.store[path]))

    def metadata(self, path):
        return FileMetadata(path, len(self.store[path]))

    def delete(self, paths):
        for path in paths:
            del self.store[path]


@pytest.fixture()
def bucket():
    MemoryFileSystem.store.clear()
    yield MemoryFileSystem.store
    MemoryFileSystem.store.clear()


def _rows(store: dict, prefix: str) -> list[dict]:
    rows = []
    for key in sorted(k for k in store if k.startswith(prefix) and k.endswith(".parquet")):
        rows.extend(pq.read_table(io.BytesIO(store[key])).to_pylist())
    return rows


def test_build_reads_and_writes_an_object_store_like_a_local_folder(tmp_path, bucket, run_build, monkeypatch):
    local_in = write_jsonl(tmp_path / "in" / "web" / "corpus.jsonl", multilingual_records(),
                           [b'{"id": "broken", "text": '])
    bucket["mem://b/in/web/corpus.jsonl"] = local_in.read_bytes()
    bucket["mem://b/in/.hidden"] = b"not an input"
    settings = b"dedup:\n  verify_jaccard: 0.7\n"
    (tmp_path / "settings.yaml").write_bytes(settings)
    bucket["mem://b/settings.yaml"] = settings
    stages = "langid,quality,dedup"
    local = run_build(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--stages", stages,
                       "--config", str(tmp_path / "settings.yaml")])
    assert local.rc == 0, local.stderr

    monkeypatch.chdir(tmp_path)  # anything written to a local "mem:" folder would land here
    remote = run_build(["--input", "mem://b/in", "--output", "mem://b/out", "--stages", stages,
                        "--config", "mem://b/settings.yaml"])
    assert remote.rc == 0, remote.stderr
    assert not Path(tmp_path, "mem:").exists()

    manifest = json.loads(bucket["mem://b/out/manifest.json"])
    assert manifest["config"]["dedup"]["verify_jaccard"] == 0.7
    assert manifest["accounting"] == local.manifest["accounting"] and manifest["accounting"]["closes"]
    assert [i["name"] for i in manifest["inputs"]] == ["web/corpus.jsonl"]
    assert [(o["path"], o["rows"]) for o in manifest["outputs"]] == [
        (o["path"], o["rows"]) for o in local.manifest["outputs"]]
    for folder in ("documents", "rejected", "quarantine"):
        assert _rows(bucket, f"mem://b/out/{folder}/") == local.rows(folder), folder
    assert "mem://b/out/report.html" in bucket
    assert not [k for k in bucket if "_staging" in k or ".tmp-" in k]  # staging removed, every rename done

    # the same run again is allowed; a different one needs --overwrite, as for a local folder
    assert run_build(["--input", "mem://b/in", "--output", "mem://b/out", "--stages", stages,
                      "--config", "mem://b/settings.yaml"]).rc == 0
    refused = run_build(["--input", "mem://b/in", "--output", "mem://b/out", "--stages", "langid"])
    assert refused.rc == 2 and "different run" in refused.stderr
    replaced = run_build(["--input", "mem://b/in", "--output", "mem://b/out", "--stages", "langid", "--overwrite"])
    assert replaced.rc == 0
    latest = json.loads(bucket["mem://b/out/manifest.json"])
    assert "dedup" not in latest["stages"]
    # exactly the new run's files remain: the earlier run's shards are gone
    listed = {f"mem://b/out/{o['path']}" for o in latest["outputs"]}
    assert {k for k in bucket if k.startswith("mem://b/out/")} == listed | {
        "mem://b/out/manifest.json", "mem://b/out/report.html"}


def test_missing_object_store_input_is_one_clear_error(bucket, run_build, tmp_path):
    result = run_build(["--input", "mem://b/nothing-here", "--output", str(tmp_path / "out")])
    assert result.rc == 2
    assert "no input matches 'mem://b/nothing-here'" in result.stderr
