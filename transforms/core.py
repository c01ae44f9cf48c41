"""The contract every stage follows, so that `pipelines.build` can compose stages without knowing them.

A stage is a `beam.PTransform`. Its `expand` returns a dict of PCollections:

- ``documents``: the documents it keeps (document stages), each a dict with the DOCUMENT_SCHEMA columns;
- ``rejected``: documents it drops, made with `schemas.documents.rejected` (stage, reason, detail);
- ``stats``: optional ``((stage, partition, metric), count)`` pairs, summed into the manifest;
- any name listed in the stage's ``TABLES``: extra rows that the pipeline writes as Parquet.

The pipeline, not the stage, counts documents in, kept and dropped per partition, writes every output with
one atomic sink, and builds the manifest from those counts, so the accounting works on every runner.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from apache_beam.metrics import Metrics


@dataclass(frozen=True)
class TableSpec:
    """An extra output of a stage: rows written under OUTPUT/<folder>/[<partition value>/]part-*.parquet."""

    schema: pa.Schema
    folder: str
    partition_field: str | None = None
    sort_fields: tuple[str, ...] = ()


class Counters:
    """Beam metrics counters of one stage, created on first use (counter names are data-derived)."""

    def __init__(self, stage: str):
        self.namespace = f"babelbeam.{stage}"
        self._counters = {}

    def inc(self, name: str, value: int = 1) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(self.namespace, name)
        counter.inc(value)
