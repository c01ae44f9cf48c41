"""Arrow schema of the dedup index (OUTPUT/dedup_index/<group>/part-*.parquet).

Incremental builds keep the fingerprints of every document a run kept, so that the next run deduplicates new
documents against everything published before (README, "Scheduled, incremental builds").
"""

from __future__ import annotations

import pyarrow as pa

DEDUP_INDEX_SCHEMA = pa.schema(
    [
        pa.field("group", pa.string(), nullable=False, metadata={"doc": "dedup group: partition, or `all`"}),
        pa.field("id", pa.string(), nullable=False),
        pa.field("exact_hash", pa.binary(16), nullable=False, metadata={"doc": "xxh3-128 of the normalised text"}),
        pa.field("signature", pa.binary(), nullable=False, metadata={"doc": "MinHash values as uint64, or empty"}),
    ]
)
