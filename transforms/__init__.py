"""Stage transforms: one module per pipeline stage, plus shared text, I/O and config."""

import logging

# babelbeam's own messages (progress, warnings) print as plain lines, whatever Beam does to the root logger.
_log = logging.getLogger("babelbeam")
if not _log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    _log.addHandler(_handler)
    _log.propagate = False
    _log.setLevel(logging.INFO)
