"""Pipelines: compose the stages in transforms/ into runnable jobs."""
