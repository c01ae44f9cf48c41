"""Counting what every stage keeps and drops, from the data itself rather than from runner metrics.

Runner metrics do not exist on every runner (the DaskRunner has no metrics API), so the manifest's accounting
is computed by ordinary transforms and written as a JSON file that the driver reads after the run.
"""

from __future__ import annotations

import json
import os
import time
import logging

import apache_beam as beam

from transforms import fs

log = logging.getLogger("babelbeam")


def _event_key(stage: str, kind: str, reason):
    def key(row: dict):
        partition = row.get("partition") or "_all"
        if callable(reason):
            why = reason(row)
        else:
            why = (row.get(reason) or "") if reason else ""
        return (stage, partition, kind, why), 1

    return key


def count_events(pcoll, label: str, stage: str, kind: str, reason=None):
    """((stage, partition, kind, reason), count) totals; kind is in, kept, dropped or quarantined.

    `reason` is a field name of the row or a function of the row. The counts are summed right here, where Beam
    combines them inside each bundle, so one total per key leaves the stage rather than one event per record.
    """
    return pcoll | label >> beam.Map(_event_key(stage, kind, reason)) | f"{label}Sum" >> beam.CombinePerKey(sum)


def document_profile(doc: dict):
    """Report stats of a kept document: count and words per partition, its duplicate-cluster size."""
    partition = doc.get("partition") or "_all"
    signals = doc.get("quality_signals") or {}
    words = signals.get("n_words") or len(doc["text"].split())
    yield ("report", partition, "documents"), 1
    yield ("report", partition, "words"), words
    yield ("report", partition, "chars"), len(doc["text"])
    if doc.get("dup_cluster_size"):
        yield ("report", "dup_cluster_size", str(doc["dup_cluster_size"])), 1


def value_histogram(field: str, width: float, group_field: str | None = None, split_field: str | None = None):
    """A FlatMap function binning `row[field]` by `width`: ((\"report\", name, bin), 1). With `split_field`, one
    histogram per value of it (`hist:margin:e5-small`): values on different scales are not pooled."""

    def profile(row: dict):
        value = row.get(field)
        if value is None:
            return
        name = f"hist:{field}" + (f":{row.get(split_field) or '_all'}" if split_field else "")
        yield ("report", name, f"{round(value / width) * width:.4g}"), 1
        if group_field:
            yield ("report", row.get(group_field) or "_all", f"{field}:rows"), 1

    return profile


class WriteJson(beam.PTransform):
    """Collect a (small) PCollection into one JSON list, written to a temporary name and renamed."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, pcoll):
        return pcoll | "Collect" >> beam.combiners.ToList() | "Write" >> beam.Map(_write_json, self.path)


def _write_json(items: list, path: str) -> str:
    fs.write_atomic(path, json.dumps(sorted(items, key=json.dumps), ensure_ascii=False, default=str).encode())
    return path


class Progress:
    """Counts what a worker has done and logs it, with the rate, at most every `every_s` seconds: a long step
    (embedding, scoring) shows it is moving."""

    def __init__(self, name: str, what: str, every_s: float = 5.0):
        self.name, self.what, self.every_s = name, what, every_s
        self.done = 0
        self.started = self.last = time.monotonic()

    def add(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            log.warning("[%s] worker %d: %s %s (%.0f/s)", self.name, os.getpid(), f"{self.done:,}", self.what, rate)


class _ProgressFn(beam.DoFn):
    """Pass elements through, logging how many this worker has seen."""

    def __init__(self, name: str, every_s: float):
        self.name = name
        self.every_s = every_s

    def setup(self):
        self.progress = Progress(self.name, "documents", self.every_s)

    def process(self, element):
        self.progress.add()
        yield element


class LogProgress(beam.PTransform):
    def __init__(self, name: str, every_s: float = 5.0):
        super().__init__()
        self.name = name
        self.every_s = every_s

    def expand(self, pcoll):
        return pcoll | beam.ParDo(_ProgressFn(self.name, self.every_s))
