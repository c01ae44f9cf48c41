"""Arrow schemas of the corpus: kept documents, rejected documents and quarantined records.

One schema for documents whatever stages ran: a column a stage did not fill is null, so shards from
different runs concatenate. `metadata` is a JSON object as text, because users' metadata has no fixed shape.
"""

from __future__ import annotations

import pyarrow as pa

QUALITY_SIGNALS = pa.struct(
    [
        ("n_words", pa.int32()),
        ("avg_word_length", pa.float32()),
        ("symbol_word_ratio", pa.float32()),
        ("bullet_lines_ratio", pa.float32()),
        ("ellipsis_lines_ratio", pa.float32()),
        ("non_alpha_words_ratio", pa.float32()),
        ("stop_words", pa.int32()),
        ("dup_line_frac", pa.float32()),
        ("dup_para_frac", pa.float32()),
        ("dup_line_char_frac", pa.float32()),
        ("dup_para_char_frac", pa.float32()),
        ("top_2gram_frac", pa.float32()),
        ("dup_5gram_frac", pa.float32()),
        ("line_punct_ratio", pa.float32()),
        ("short_line_ratio", pa.float32()),
        ("char_dup_ratio", pa.float32()),
        ("new_line_ratio", pa.float32()),
    ]
)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("language", pa.string(), metadata={"doc": "ISO 639-3, or und"}),
        pa.field("script", pa.string(), metadata={"doc": "ISO 15924, measured from the text"}),
        pa.field("language_score", pa.float32()),
        pa.field("partition", pa.string(), metadata={"doc": "lang_Script, e.g. fra_Latn"}),
        pa.field("quality_score", pa.float32(), metadata={"doc": "0..1 headroom under the thresholds"}),
        pa.field("quality_signals", QUALITY_SIGNALS),
        pa.field("dup_cluster_id", pa.string()),
        pa.field("dup_cluster_size", pa.int32()),
        pa.field("repeat_weight", pa.int32(), metadata={"doc": "FineWeb-2 rehydration weight"}),
        pa.field("metadata", pa.string(), metadata={"doc": "JSON object"}),
    ]
)

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False, metadata={"doc": "filter name, e.g. gopher_quality"}),
        pa.field("detail", pa.string(), metadata={"doc": "the rule and the value, e.g. min_doc_words: 12 < 50"}),
        pa.field("partition", pa.string()),
        pa.field("duplicate_of", pa.string(), metadata={"doc": "dedup: id of the kept document"}),
        pa.field("text", pa.large_string()),
        pa.field("metadata", pa.string()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False, metadata={"doc": "line, byte offset or row"}),
        pa.field("error", pa.string(), nullable=False),
        pa.field("raw", pa.large_binary(), metadata={"doc": "the unreadable bytes, as read"}),
    ]
)


def new_document(doc_id: str, text: str, source: str, metadata: str | None = None) -> dict:
    """A document as it leaves ingest: every schema column present, later stages fill the rest."""
    doc = dict.fromkeys(DOCUMENT_SCHEMA.names)
    doc.update(id=doc_id, text=text, source=source, metadata=metadata)
    return doc


def rejected(doc: dict, stage: str, reason: str, detail: str = "", duplicate_of: str | None = None) -> dict:
    return {
        "id": doc["id"],
        "source": doc.get("source"),
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "partition": doc.get("partition"),
        "duplicate_of": duplicate_of,
        "text": doc.get("text"),
        "metadata": doc.get("metadata"),
    }


def quarantined(source: str, location: str, error: str, raw: bytes | None) -> dict:
    return {"source": source, "location": location, "error": error, "raw": raw}
