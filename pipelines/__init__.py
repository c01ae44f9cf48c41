"""Pipelines: compose the stages in transforms/ into runnable jobs."""

import logging

# Beam logs this on import whenever the optional GCP client is absent; it says nothing about babelbeam.
logging.getLogger().addFilter(lambda record: "apitools not found" not in record.getMessage())
