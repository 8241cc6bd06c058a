"""Content-addressed files outside the database: raw messages and attachments.

A file is named by the SHA-256 of its bytes under `<data_dir>/<kind>/ab/cdef…`; storing
the same bytes twice writes once. Names citizens give files are never used as paths.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def blob_path(data_dir: Path, kind: str, digest: str) -> Path:
    if kind not in ("mail", "attachments") or len(digest) != 64 or not digest.isalnum():
        raise ValueError("bad blob address")
    return data_dir / kind / digest[:2] / digest


def store_blob(data_dir: Path, kind: str, data: bytes) -> str:
    """Write `data` once under its SHA-256 and return the digest (fsynced, atomic)."""
    digest = hashlib.sha256(data).hexdigest()
    path = blob_path(data_dir, kind, digest)
    if path.exists():
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest


def store_blobs(data_dir: Path, raws: list[bytes | None]) -> list[str | None]:
    """Mails stored with `store_blob`, in order (one worker thread for a poller's chunk):
    each one's digest, None for a missing body or where storing failed (the caller tries
    again and records the failure)."""
    digests: list[str | None] = []
    for raw in raws:
        try:
            digests.append(store_blob(data_dir, "mail", raw) if raw is not None else None)
        except OSError:
            digests.append(None)
    return digests


def read_blob(data_dir: Path, kind: str, digest: str) -> bytes:
    return blob_path(data_dir, kind, digest).read_bytes()
