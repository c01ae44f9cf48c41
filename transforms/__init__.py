"""Stage transforms: one module per pipeline stage, plus shared text, I/O and config."""
