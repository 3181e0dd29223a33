"""The media storage: where every stored file lives (images, thumbnails, exports, split manifests, run files).

Files are known by their storage names (`assets/ab/ab….png`), never by paths, and go through Django's
storage API (`storages["default"]`, the STORAGES setting): a folder (MEDIA_ROOT) by default, S3-compatible
object storage with WINNOW_STORAGE=s3 (winnow/settings.py). With object storage the web servers, the
workers and the GPU workers share only the database, the broker and the bucket, so each may run on a
machine of its own.

* `put(name, write)` stores a whole file under a name, replacing what was there, whole or not at all: in a
  folder by a temporary file and a rename (a killed writer leaves only `<prefix>…` files, which
  `remove_leftovers` finds), in a bucket by one upload of a spooled file (an object appears whole or not
  at all, and a killed writer's spool goes with its process).
* Code that needs a real file (torch, the training data loader) reads `local_copy(name)`: on a folder the
  stored file itself, else a copy under WINNOW_MEDIA_CACHE, fetched once for content-addressed images and
  again whenever the stored file changed for the rest. It writes at `work_path(name)`, then calls
  `publish(name)`: on a folder the file is in place already, else it is uploaded from there.
* `file_response` streams a stored file to a client; from a bucket it passes the object's body on as it
  arrives, so a large export is never downloaded whole before its first byte is sent.
* Object storage that cannot be reached or refuses (no such bucket, wrong keys) raises
  `StorageUnavailable` (503) naming what failed: an upload answers clearly and records nothing.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.http import FileResponse

from .exceptions import StorageUnavailable
from .files import atomic_write

# A file written for upload stays in memory up to this size, then spills to a temporary file.
SPOOL_BYTES = 8 << 20
COPY_CHUNK = 1 << 20
# What a response reads at a time from the stored file (FileResponse's default, 4 KB, means many small reads
# of an S3 body).
STREAM_CHUNK = 256 << 10
# Files fetched at once by `local_copies` (a training split is thousands of small images).
COPY_THREADS = 8


def media() -> Storage:
    """The configured media storage (STORAGES["default"])."""
    return storages["default"]


def local_root() -> Path | None:
    """The folder of a filesystem media storage; None for object storage."""
    storage = media()
    return Path(storage.location) if isinstance(storage, FileSystemStorage) else None


def check_name(name: str) -> str:
    """`name` if it is a storage name (relative, `/`-separated, no empty, `.` or `..` part), else ValueError."""
    if (not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\x00" in name
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise ValueError(f"{name!r} is not a storage name")
    return name


def _object_storage_errors() -> tuple[type[BaseException], ...]:
    try:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # only S3 storage needs boto3
        return ()
    return (BotoCoreError, ClientError, Boto3Error)


@contextlib.contextmanager
def reaching(what: str) -> Iterator[None]:
    """Errors of the object storage inside the block become StorageUnavailable, saying what was being done."""
    try:
        yield
    except _object_storage_errors() as exc:
        raise StorageUnavailable(
            f"the media storage is unavailable: could not {what} ({type(exc).__name__}: {exc}). Nothing was "
            "recorded; send the request again once the storage answers"
        ) from exc


def put(name: str, write: Callable[[IO[bytes]], object], *, prefix: str = ".tmp-", suffix: str = "") -> int:
    """Store what `write(handle)` writes as the file `name`, replacing it, whole or not at all; its size in bytes.

    On a folder the temporary file is `<prefix>…<suffix>` beside the target (see `remove_leftovers`); for
    object storage the bytes are spooled locally, then uploaded in one go. Errors that `write` raises pass
    through unchanged, and nothing is stored.
    """
    check_name(name)
    storage = media()
    if local_root() is not None:
        return atomic_write(Path(storage.path(name)), write, prefix=prefix, suffix=suffix).stat().st_size
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=settings.FILE_UPLOAD_TEMP_DIR) as spool:
        write(spool)
        size = spool.seek(0, os.SEEK_END)
        spool.seek(0)
        _save(name, spool)
    return size


def _save(name: str, handle: IO[bytes]) -> None:
    """Upload `handle` as `name` to the (object) storage, which must replace rather than rename."""
    with reaching(f"store {name}"):
        saved = media().save(name, File(handle, name=name))
    if saved != name:
        raise ImproperlyConfigured(f"the media storage saved {name} as {saved}: it must replace files (file_overwrite)")


def put_bytes(name: str, data: bytes) -> int:
    return put(name, lambda handle: handle.write(data))


def exists(name: str) -> bool:
    with reaching(f"look up {name}"):
        return media().exists(check_name(name))


def delete(name: str) -> None:
    """Delete the stored file `name` (and its cached copy); nothing happens when it is not there."""
    with reaching(f"delete {name}"):
        media().delete(check_name(name))
    if local_root() is None:
        cache_path(name).unlink(missing_ok=True)


def remove_leftovers(folder: str, pattern: str) -> list[Path]:
    """Remove what killed writers of a folder storage left (`put`'s temporary files matching `pattern` in
    `folder`); returns them. Object storage has none: uploads are whole and spools die with their process."""
    root = local_root()
    if root is None:
        return []
    found = sorted((root / check_name(folder)).glob(pattern))
    for leftover in found:
        leftover.unlink(missing_ok=True)
    return found


# --- local files for code that needs paths --------------------------------------------------------


def cache_path(name: str) -> Path:
    """Where a worker keeps its copy of the stored file `name` when the storage is not a local folder."""
    return Path(settings.WINNOW_MEDIA_CACHE) / check_name(name)


def work_path(name: str) -> Path:
    """Where to write a file (or folder) that will be stored as `name` by `publish`: in place on a folder
    storage, in the local cache otherwise. Its parent folder exists."""
    check_name(name)
    path = Path(media().path(name)) if local_root() is not None else cache_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def publish(name: str) -> None:
    """Store the file written at `work_path(name)` under `name`; on a folder storage it is there already."""
    if local_root() is not None:
        return
    path = cache_path(name)
    with path.open("rb") as handle:
        _save(name, handle)
    with reaching(f"read {name}"):
        modified = media().get_modified_time(name).timestamp()
    os.utime(path, (modified, modified))  # the cached copy is the stored version: no fetch back


@contextlib.contextmanager
def opened(name: str, what: str | None = None) -> Iterator[IO[bytes]]:
    """The stored file `name` opened for reading; an object storage error is StorageUnavailable (saying
    `what` was being read), a missing file FileNotFoundError."""
    with reaching(f"read {what or name}"), media().open(check_name(name), "rb") as handle:
        yield handle


def local_copy(name: str, *, immutable: bool = False) -> Path:
    """A local file with the content of the stored file `name`, for code that needs a path.

    On a folder storage, the stored file itself. Otherwise a copy under WINNOW_MEDIA_CACHE, fetched when
    missing or when the stored file's size or modification time differ from the copy's; an `immutable`
    name (a content-addressed image) is fetched once. FileNotFoundError when nothing is stored as `name`.
    """
    check_name(name)
    storage = media()
    if local_root() is not None:
        return Path(storage.path(name))
    path = cache_path(name)
    if immutable and path.is_file():
        return path
    with reaching(f"read {name}"):
        size = storage.size(name)  # FileNotFoundError when it is not stored
        modified = storage.get_modified_time(name).timestamp()
        try:
            cached = path.stat()
        except FileNotFoundError:
            cached = None
        if cached is not None and cached.st_size == size and cached.st_mtime == modified:
            return path
        with storage.open(name, "rb") as handle:
            atomic_write(path, lambda out: shutil.copyfileobj(_body(handle), out, COPY_CHUNK))
    os.utime(path, (modified, modified))
    return path


def local_copies(names: Iterable[str], *, immutable: bool = False) -> list[Path]:
    """`local_copy` of each name, in order; from object storage several are fetched at once."""
    names = list(names)
    if local_root() is not None or len(names) < 2:
        return [local_copy(name, immutable=immutable) for name in names]
    with ThreadPoolExecutor(COPY_THREADS) as pool:  # S3 clients are per thread (django-storages)
        return list(pool.map(lambda name: local_copy(name, immutable=immutable), names))


def _body(handle: Any) -> Any:
    """What to read an opened stored file from: an S3 object's streaming body (read as it arrives, where
    django-storages would download it whole into a spool first), else the file itself."""
    obj = getattr(handle, "obj", None)
    if obj is not None and hasattr(obj, "get"):
        return obj.get()["Body"]
    return handle


# --- serving --------------------------------------------------------------------------------------


def file_response(name: str, *, content_type: str | None = None, attachment: str | None = None) -> FileResponse:
    """A response streaming the stored file `name` (as a download named `attachment` if given).

    FileNotFoundError when nothing is stored as `name` (or it is a folder); StorageUnavailable when the
    object storage cannot be reached.
    """
    check_name(name)
    try:
        with reaching(f"read {name}"):
            handle = media().open(name, "rb")
            body = _body(handle)
    except (IsADirectoryError, NotADirectoryError) as exc:
        raise FileNotFoundError(name) from exc
    filename = attachment or PurePosixPath(name).name
    response = FileResponse(
        body, as_attachment=attachment is not None, filename=filename,
        content_type=content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream",
    )
    response.block_size = STREAM_CHUNK
    if body is not handle:
        response["Content-Length"] = str(handle.size)
    return response


# --- readiness ------------------------------------------------------------------------------------


def check_ready() -> None:
    """Raise unless the media storage takes a file: a temporary file in the folder, or for object storage
    the bucket exists and an object is written and deleted (what uploads, exports and runs will do)."""
    root = local_root()
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".readyz-") as probe:
            probe.write(b"ok")
            probe.flush()
        return
    storage = media()
    bucket = getattr(storage, "bucket_name", None)
    if bucket:
        from botocore.exceptions import ClientError

        try:
            storage.connection.meta.client.head_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                raise LookupError(f"the bucket {bucket!r} does not exist: create it or correct "
                                  "AWS_STORAGE_BUCKET_NAME") from exc
            raise
    name = storage.save(f".readyz/{uuid.uuid4().hex}", ContentFile(b"ok"))
    storage.delete(name)
