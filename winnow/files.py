"""Files both apps write: whole-or-nothing writes, and zips streamed in pieces.

`atomic_write` writes under a temporary name in the target's folder and renames: a reader (a
download, a resumed job) sees the whole file or none, and a killed writer leaves only a temporary
file, which its next attempt can find by prefix and remove. `ZipStream` and `copy_into` build a
zip as a stream of bytes, one stored file at a time, so an export of any size stays in flat memory.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from django.core.files.storage import default_storage

ZIP_CHUNK = 1 << 20


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], *, prefix: str = ".tmp-", suffix: str = "") -> Path:
    """Create or replace `path` with what `write(handle)` writes; nothing is left half-written.

    The temporary file is `<prefix>…<suffix>` in the same folder (a rename never crosses file
    systems); it is removed when `write` raises.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class ZipStream:
    """A write-only, tell-able file for zipfile: what is written is handed out in pieces, so a zip streams."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        """zipfile flushes; nothing to do until the reader takes the bytes."""

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def copy_into(archive: zipfile.ZipFile, sink: ZipStream, storage_name: str, arcname: str) -> Iterator[bytes]:
    """Copy a stored file into a streaming zip in pieces, yielding the zip's bytes as they are ready."""
    with default_storage.open(storage_name, "rb") as source, archive.open(arcname, "w") as dest:
        while chunk := source.read(ZIP_CHUNK):
            dest.write(chunk)
            yield sink.take()
