"""Arrow schema of OUTPUT/mixture/: one row per category of an inferred tokenizer training mixture."""

from __future__ import annotations

import pyarrow as pa

MIXTURE_SCHEMA = pa.schema(
    [
        pa.field("category", pa.string(), nullable=False, metadata={"doc": "partition (fra_Latn) or folder name"}),
        pa.field("byte_share", pa.float64(), metadata={"doc": "inferred share of training bytes; null if left out"}),
        pa.field("pair_share", pa.float64(), metadata={"doc": "the LP's α: share of initial byte pairs"}),
        pa.field("sample_bytes", pa.int64(), metadata={"doc": "bytes of sample text counted for the category"}),
        pa.field("word_types", pa.int64(), metadata={"doc": "distinct pretokens in the sample"}),
        pa.field("included", pa.bool_(), metadata={"doc": "false: too little text, left out of the LP"}),
        pa.field("warning", pa.string()),
        pa.field("tokenizer", pa.string(), metadata={"doc": "merge-list file"}),
        pa.field("tokenizer_sha256", pa.string(), metadata={"doc": "sha256 of the merge-list file as stored"}),
        pa.field("merges_used", pa.int32()),
        pa.field("solver_status", pa.string(), metadata={"doc": "HiGHS model status of the last solve"}),
        pa.field("error", pa.string(), metadata={"doc": "why no mixture was inferred, if none was"}),
    ]
)
