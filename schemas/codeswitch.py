"""Arrow schema of synthetic code-switched samples (OUTPUT/codeswitch/part-*.parquet)."""

from __future__ import annotations

import pyarrow as pa

TAGGED_TOKEN = pa.struct([("token", pa.string()), ("lang", pa.string())])

CODESWITCH_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False, metadata={"doc": "hash of pair_id, sample index, seed"}),
        pa.field("pair_id", pa.string(), nullable=False, metadata={"doc": "the mined bitext pair it comes from"}),
        pa.field("pair", pa.string(), nullable=False, metadata={"doc": "e.g. deu_Latn-eng_Latn"}),
        pa.field("method", pa.string(), nullable=False, metadata={"doc": "alignment, dictionary or entity"}),
        pa.field("matrix_lang", pa.string(), nullable=False, metadata={"doc": "ISO 639-3 of the base sentence"}),
        pa.field("embedded_lang", pa.string(), nullable=False, metadata={"doc": "ISO 639-3 of inserted spans"}),
        pa.field("text", pa.string(), nullable=False),
        pa.field(
            "markup",
            pa.string(),
            nullable=False,
            metadata={"doc": "inserted spans wrapped as <de>Korallenriff</de>; tag = ISO 639-1 where one exists"},
        ),
        pa.field(
            "tokens",
            pa.list_(TAGGED_TOKEN),
            nullable=False,
            metadata={"doc": "every token with its ISO 639-3 language, or `univ` (punctuation, numbers, URLs)"},
        ),
        pa.field("n_spans", pa.int32(), nullable=False, metadata={"doc": "inserted spans (markup tags)"}),
        pa.field("n_switched", pa.int32(), nullable=False, metadata={"doc": "matrix words replaced"}),
        pa.field("cmi", pa.float32(), nullable=False, metadata={"doc": "Code-Mixing Index, 0..100"}),
        pa.field("m_index", pa.float32(), nullable=False),
        pa.field("i_index", pa.float32(), nullable=False),
        pa.field("burstiness", pa.float32(), nullable=False),
        pa.field("entropy", pa.float32(), nullable=False, metadata={"doc": "language entropy, bits"}),
    ]
)
