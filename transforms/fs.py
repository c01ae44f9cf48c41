"""Every file babelbeam reads or writes goes through Beam's `FileSystems`, so inputs and outputs can be local
folders or object stores (gs://, s3://, hdfs:// ... whichever Beam filesystems the workers have installed).

Writes are atomic on every store: bytes go to a temporary name, then the store's rename moves them (os.rename
locally; copy-then-delete on object stores, where an object appears whole or not at all). Compression is never
inferred from a name here: readers decide how to decode what they read.
"""

from __future__ import annotations

import glob as _glob
import json
import os
import posixpath
import shutil
import uuid
from contextlib import contextmanager

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

RAW = CompressionTypes.UNCOMPRESSED


def is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) in (None, "file")


def join(base: str, *parts: str) -> str:
    return os.path.join(base, *parts) if is_local(base) else FileSystems.join(base, *parts)


def basename(path: str) -> str:
    return os.path.basename(path) if is_local(path) else posixpath.basename(path.rstrip("/"))


def dirname(path: str) -> str:
    return (os.path.dirname(path) or ".") if is_local(path) else posixpath.dirname(path.rstrip("/"))


def relative(path: str, base: str) -> str:
    """`path` below the folder `base`, with forward slashes."""
    if is_local(path):
        return os.path.relpath(path, base).replace(os.sep, "/")
    return path[len(base.rstrip("/")) + 1 :]


def absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path)) if is_local(path) else path


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def is_dir(path: str) -> bool:
    """Locally a real folder; on an object store, a prefix with at least one object under it."""
    if is_local(path):
        return os.path.isdir(path)
    return bool(list_files(path, limit=1))


def size(path: str) -> int:
    return FileSystems.get_filesystem(path).size(path)


def list_files(folder: str, limit: int | None = None) -> list[str]:
    """Every file below `folder` (recursively), sorted."""
    if is_local(folder):
        found = [os.path.join(root, n) for root, _dirs, names in os.walk(folder) for n in names]
        return sorted(found)[:limit]
    pattern = folder.rstrip("/") + "/**"
    return sorted(m.path for m in FileSystems.match([pattern], [limit] if limit else None)[0].metadata_list)


def glob(pattern: str) -> list[str]:
    """Paths matching a glob (`**` crosses folders); a local folder matches itself."""
    if is_local(pattern):
        return sorted(_glob.glob(os.path.expanduser(pattern), recursive=True))
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def open_read(path: str):
    """A seekable binary file object."""
    return FileSystems.open(path, compression_type=RAW)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def read_json(path: str, default=None):
    return json.loads(read_bytes(path)) if exists(path) else default


@contextmanager
def atomic_create(path: str):
    """A binary file object whose bytes appear at `path` only when the block succeeds; on failure the temporary
    object is removed. Local parent folders are made."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with FileSystems.create(tmp, compression_type=RAW) as f:
            yield f
        FileSystems.rename([tmp], [path])
    except BaseException:
        remove(tmp)
        raise


def write_atomic(path: str, data: bytes) -> None:
    with atomic_create(path) as f:
        f.write(data)


def write_json(path: str, value) -> None:
    write_atomic(path, json.dumps(value, indent=1, ensure_ascii=False, default=str).encode())


def delete(paths: list[str]) -> None:
    if paths:
        FileSystems.delete(list(paths))


def remove(path: str) -> None:
    """Remove a file, or a folder and everything below it; nothing to remove is fine."""
    if is_local(path):
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    else:
        delete([p for p in [path] if FileSystems.exists(p)] + list_files(path))


def entries(folder: str) -> set[str]:
    """Names directly inside `folder` (files and sub-folders)."""
    if is_local(folder):
        return set(os.listdir(folder)) if os.path.isdir(folder) else set()
    return {relative(p, folder).split("/")[0] for p in list_files(folder)}


def is_file(path: str) -> bool:
    return os.path.isfile(path) if is_local(path) else FileSystems.exists(path)


def makedirs(folder: str) -> None:
    """Locally make the folder; object stores have none to make."""
    if is_local(folder):
        os.makedirs(folder, exist_ok=True)
