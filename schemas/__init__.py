"""Arrow schemas for everything babelbeam writes. See README, "Output layout and schemas"."""

from schemas.documents import DOCUMENT_SCHEMA, QUARANTINE_SCHEMA, REJECTED_SCHEMA

__all__ = ["DOCUMENT_SCHEMA", "QUARANTINE_SCHEMA", "REJECTED_SCHEMA"]
