"""winnow.files: whole-or-nothing writes and streamed zips."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from winnow.files import ZipStream, atomic_write, copy_into


def test_atomic_write_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.bin"
    atomic_write(target, lambda handle: handle.write(b"first"))
    atomic_write(target, lambda handle: handle.write(b"second"))
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]  # no temporary file left


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def half(handle: io.BufferedWriter) -> None:
        handle.write(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half, prefix=".job-7-")
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(".job-7-*"))


def test_a_zip_streams_stored_files_in_pieces() -> None:
    name = default_storage.save("tests/zip-source.bin", ContentFile(b"x" * (3 << 20)))
    try:
        sink = ZipStream()
        pieces = []
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
            pieces.extend(copy_into(archive, sink, name, "inside/x.bin"))
        pieces.append(sink.take())
    finally:
        default_storage.delete(name)
    assert len([p for p in pieces if p]) >= 3  # one piece per megabyte copied, not one blob
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as archive:
        assert archive.read("inside/x.bin") == b"x" * (3 << 20)
