"""Turning untrusted bytes into stored, content-addressed images.

Three doors lead in: multipart files, zip archives and URLs. Each item either becomes an `Asset`
(stored once by the sha256 of its bytes, measured, thumbnailed) or is rejected with a reason a
person can act on. Nothing here touches tasks or batches; `ingest.py` does that.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import socket
import stat
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
from django.conf import settings
from PIL import Image, UnidentifiedImageError

from winnow.files import atomic_write

from .exceptions import InvalidInput
from .models import Asset

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


class Rejected(Exception):
    """One item cannot be ingested; the message says why, in words an uploader can act on."""


@dataclass(frozen=True)
class Measured:
    sha256: str
    width: int
    height: int
    format: str
    byte_size: int


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def measure(data: bytes) -> tuple[Measured, Image.Image]:
    """Check that `data` is a whole image within the limits; return its measures and a decoded thumbnail."""
    if len(data) > settings.INGEST_MAX_FILE_BYTES:
        raise Rejected(f"file is {_mb(len(data))}, over the limit of {_mb(settings.INGEST_MAX_FILE_BYTES)}")
    if not data:
        raise Rejected("file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns before it refuses; a warning here means a decompression bomb, so refuse now.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > settings.INGEST_MAX_PIXELS:
                raise Rejected(
                    f"image is {width}×{height} = {width * height:,} pixels, over the limit of "
                    f"{settings.INGEST_MAX_PIXELS:,} pixels"
                )
            if image.format not in ALLOWED_FORMATS:
                raise Rejected(f"{image.format} images are not accepted; use JPEG, PNG, WebP, GIF, BMP or TIFF")
            fmt = image.format
            size = settings.THUMBNAIL_SIZE
            if fmt == "JPEG":
                # Decode at a reduced DCT scale: the thumbnail is all we need and this is 2-8× faster.
                image.draft("RGB", (size, size))
            image.load()  # a truncated or corrupt file fails here, before anything is stored
            thumb = image.convert("RGB") if image.mode != "RGB" else image
            thumb.thumbnail((size, size))
    except Rejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected(f"image is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise Rejected("not an image Winnow can read (JPEG, PNG, WebP, GIF, BMP or TIFF)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise Rejected(f"image is corrupt or truncated: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    return Measured(digest, width, height, fmt, len(data)), thumb


def write_files(data: bytes, measured: Measured, thumb: Image.Image) -> Asset:
    """Write the image and its thumbnail under content-derived paths; return an unsaved Asset.

    Files are written to temporary names and renamed, so a crash leaves no half-written image; the
    paths come from the hash, so a retry overwrites identical bytes and never duplicates.
    """
    rel_file = f"assets/{measured.sha256[:2]}/{measured.sha256}.{EXTENSIONS[measured.format]}"
    rel_thumb = f"thumbs/{measured.sha256[:2]}/{measured.sha256}.jpg"
    root = Path(settings.MEDIA_ROOT)
    atomic_write(root / rel_file, lambda fh: fh.write(data))
    atomic_write(root / rel_thumb, lambda fh: thumb.save(fh, "JPEG", quality=85))
    return Asset(
        sha256=measured.sha256, file=rel_file, thumbnail=rel_thumb, width=measured.width,
        height=measured.height, format=measured.format, byte_size=measured.byte_size,
    )


def store_many(blobs: list[bytes]) -> list[Asset | Rejected]:
    """Store many images with a handful of queries; one Asset or one Rejected per blob, in order.

    Bytes already stored are not decoded or written again. Concurrent uploads of the same bytes are
    settled by the unique sha256: the loser's insert is skipped and both read the winner's row.
    """
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]
    known = {a.sha256: a for a in Asset.objects.filter(sha256__in=set(digests))}
    out: list[Asset | Rejected] = []
    fresh: dict[str, Asset] = {}
    for data, digest in zip(blobs, digests, strict=True):
        if digest in known or digest in fresh:
            out.append(known.get(digest) or fresh[digest])
            continue
        try:
            measured, thumb = measure(data)
        except Rejected as exc:
            out.append(exc)
            continue
        fresh[digest] = write_files(data, measured, thumb)
        out.append(fresh[digest])
    if fresh:
        Asset.objects.bulk_create(fresh.values(), ignore_conflicts=True)
        saved = {a.sha256: a for a in Asset.objects.filter(sha256__in=list(fresh))}
        out = [saved[item.sha256] if isinstance(item, Asset) and item.pk is None else item for item in out]
    return out


def store(data: bytes) -> tuple[Asset, bool]:
    """Store one image as an Asset (or find the one with the same bytes). Returns (asset, created)."""
    existing = Asset.objects.filter(sha256=hashlib.sha256(data).hexdigest()).first()
    if existing is not None:
        return existing, False
    result = store_many([data])[0]
    if isinstance(result, Rejected):
        raise result
    return result, True


# --- zip archives -----------------------------------------------------------------------------


@dataclass
class ZipMember:
    name: str
    data: bytes | None
    reason: str = ""


def iter_zip(fileobj: IO[bytes]) -> Iterator[ZipMember]:
    """Yield the images of a zip archive, refusing the whole archive if it is not a safe zip.

    Unsafe members (`..` or absolute paths, links, single files over the size limit) come back with
    a reason instead of data, so the caller can report them and go on with the rest.
    """
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"not a valid zip archive: {exc}", code="bad_zip") from exc
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if len(infos) > settings.INGEST_MAX_ZIP_MEMBERS:
        raise InvalidInput(
            f"the zip holds {len(infos):,} files, over the limit of {settings.INGEST_MAX_ZIP_MEMBERS:,}; "
            "split it into several uploads",
            code="zip_too_many_files",
        )
    total = sum(i.file_size for i in infos)
    if total > settings.INGEST_MAX_ZIP_BYTES:
        raise InvalidInput(
            f"the zip expands to {_mb(total)}, over the limit of {_mb(settings.INGEST_MAX_ZIP_BYTES)}; "
            "split it into several uploads",
            code="zip_too_large",
        )
    for info in infos:
        name = info.filename
        path = PurePosixPath(name.replace("\\", "/"))
        base = path.name
        if base.startswith(".") or "__MACOSX" in path.parts:
            continue  # resource forks and hidden files are not images anyone meant to upload
        if path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":"):
            yield ZipMember(name, None, "unsafe path in archive (absolute or containing '..')")
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            yield ZipMember(name, None, "links are not accepted in archives")
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            yield ZipMember(name, None, f"not an image file name ({path.suffix or 'no extension'})")
            continue
        if info.file_size > settings.INGEST_MAX_FILE_BYTES:
            yield ZipMember(
                name, None, f"file is {_mb(info.file_size)}, over the limit of {_mb(settings.INGEST_MAX_FILE_BYTES)}"
            )
            continue
        try:
            # zipfile stops at the declared size and checks the CRC, so a lying header cannot inflate this.
            with archive.open(info) as member:
                yield ZipMember(name, member.read(settings.INGEST_MAX_FILE_BYTES + 1))
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
            yield ZipMember(name, None, f"cannot extract from archive: {exc}")


# --- URLs -------------------------------------------------------------------------------------


def _host_allowed(host: str) -> bool:
    return host.lower() in {h.lower() for h in settings.INGEST_ALLOWED_HOSTS}


def check_url(url: str) -> None:
    """Refuse URLs that are not http(s) or that resolve to an address inside the server's network.

    Loopback, private, link-local (cloud metadata lives at 169.254.169.254), multicast, reserved and
    unspecified addresses are refused unless INGEST_ALLOWED_HOSTS names the host.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise Rejected(f"only http and https URLs are accepted, not {parts.scheme or 'a bare path'!r}")
    host = parts.hostname
    if not host:
        raise Rejected("the URL has no host")
    if _host_allowed(host):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Rejected(f"bad port in URL: {exc}") from exc
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise Rejected(f"cannot resolve host {host!r}") from exc
    for info in infos:
        _check_address(host, info[4][0], "resolves to")


def _check_address(host: str, text: str, verb: str) -> None:
    """Refuse an internal address (see check_url) unless INGEST_ALLOWED_HOSTS names it."""
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if _host_allowed(str(address)):
        return
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        raise Rejected(
            f"{host} {verb} {address}, an internal address; ask an admin to add it to "
            "INGEST_ALLOWED_HOSTS if this is intended"
        )


# check_url resolves the host once; the download resolves it again, and a DNS answer that changed in
# between (DNS rebinding) could point it inward. So every connection the download opens checks the
# address it actually reached, before a byte is sent.
class _PeerChecked:
    """Mixed into urllib3's connections: the socket's peer address is checked as soon as it connects."""

    host: str

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        if not _host_allowed(self.host):
            try:
                _check_address(self.host, sock.getpeername()[0], "connected to")
            except Rejected:
                sock.close()
                raise
        return sock


class _PeerCheckedHTTPConnection(_PeerChecked, urllib3.connection.HTTPConnection):
    pass


class _PeerCheckedHTTPSConnection(_PeerChecked, urllib3.connection.HTTPSConnection):
    pass


class _PeerCheckedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _PeerCheckedHTTPConnection


class _PeerCheckedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _PeerCheckedHTTPSConnection


class _PeerCheckedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PeerCheckedHTTPPool, "https": _PeerCheckedHTTPSPool}


def download_session() -> requests.Session:
    """A session for downloads: no proxies from the environment (the checks must see the real target),
    and every connection's address checked as it opens."""
    session = requests.Session()
    session.trust_env = False
    adapter = _PeerCheckedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch(url: str) -> bytes:
    """Download an image, checking every redirect hop, and every connection's address, against the same rules."""
    session = download_session()
    current = url
    for _hop in range(settings.INGEST_URL_MAX_REDIRECTS + 1):
        check_url(current)
        try:
            response = session.get(
                current, stream=True, allow_redirects=False, timeout=settings.INGEST_URL_TIMEOUT,
                headers={"User-Agent": "Winnow image ingest", "Accept": "image/*"},
            )
        except requests.Timeout as exc:
            raise Rejected(f"timed out after {settings.INGEST_URL_TIMEOUT} s fetching {current}") from exc
        except requests.RequestException as exc:
            raise Rejected(f"could not fetch {current}: {exc.__class__.__name__}") from exc
        with response:
            if response.is_redirect:
                location = response.headers.get("Location", "")
                if not location:
                    raise Rejected(f"redirect without a Location from {current}")
                current = urljoin(current, location)
                continue
            if response.status_code != 200:
                raise Rejected(f"the server answered HTTP {response.status_code} for {current}")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type and not content_type.startswith("image/") and content_type != "application/octet-stream":
                raise Rejected(f"the server sent {content_type!r}, not an image")
            limit = settings.INGEST_MAX_FILE_BYTES
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise Rejected(f"file is {_mb(int(declared))}, over the limit of {_mb(limit)}")
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise Rejected(f"file is over the limit of {_mb(limit)}")
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise Rejected(f"download of {current} broke off: {exc.__class__.__name__}") from exc
            return b"".join(chunks)
    raise Rejected(f"more than {settings.INGEST_URL_MAX_REDIRECTS} redirects")
