"""Turning untrusted bytes into stored, content-addressed images.

Three doors lead in: multipart files, zip archives and URLs. Each item either becomes an `Asset`
(stored once by the sha256 of its bytes, measured, thumbnailed) or is rejected with a reason a
person can act on. Nothing here touches tasks or batches; `ingest.py` does that.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import re
import socket
import stat
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions
import urllib3.util
from django.conf import settings
from PIL import Image, UnidentifiedImageError

from winnow.exceptions import InvalidInput
from winnow.files import atomic_write

from . import duplicates
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
        height=measured.height, format=measured.format, byte_size=measured.byte_size, phash=duplicates.phash(thumb),
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


# Members that expand to no more than this are never judged by their compression ratio: they cost
# nothing to unpack, and small flat images (icons, masks) compress very well.
RATIO_FREE_BYTES = 1024 * 1024


@dataclass
class ZipMember:
    name: str
    data: bytes | None
    reason: str = ""


def iter_zip(fileobj: IO[bytes]) -> Iterator[ZipMember]:
    """Yield the images of a zip archive, refusing the whole archive if it is not a safe zip.

    Unsafe members (`..` or absolute paths, links, single files over the size limit, members that
    expand more than INGEST_MAX_ZIP_RATIO times) come back with a reason instead of data, so the
    caller can report them and go on with the rest. Members are read one at a time, as they are asked for.
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
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FREE_BYTES and ratio > settings.INGEST_MAX_ZIP_RATIO:
            yield ZipMember(
                name, None,
                f"expands {ratio:,.0f}× when unpacked ({_mb(info.compress_size)} to {_mb(info.file_size)}), over the "
                f"limit of {settings.INGEST_MAX_ZIP_RATIO:,}×; upload this image on its own or zip it without compression",
            )
            continue
        try:
            # zipfile stops at the declared size and checks the CRC, so a lying header cannot inflate this.
            with archive.open(info) as member:
                yield ZipMember(name, member.read(settings.INGEST_MAX_FILE_BYTES + 1))
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
            yield ZipMember(name, None, f"cannot extract from archive: {exc}")


# --- URLs -------------------------------------------------------------------------------------

# Networks refused on top of what `ipaddress` calls not global: its tables (Python 3.11) still call
# these global, and none of them is a public web server. Multicast is not "private" to ipaddress either.
_ALSO_INTERNAL = [
    ipaddress.ip_network("192.88.99.0/24"),  # 6to4 relay anycast (deprecated, RFC 7526)
    ipaddress.ip_network("fec0::/10"),  # site-local (deprecated, RFC 3879)
]
# IPv6 forms that carry an IPv4 address, which is what a connection to them may reach.
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: the operator picks the embedding length
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (RFC 4291)


def _nat64_candidates(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses a local-use NAT64 address may carry, for each prefix length RFC 6052 allows
    inside a /48 (/48, /56, /64, /96): bits 64-71 are skipped, as that RFC says."""
    octets = address.packed
    layouts = {
        48: octets[6:8] + octets[9:11],
        56: octets[7:8] + octets[9:12],
        64: octets[9:13],
        96: octets[12:16],
    }
    return [ipaddress.IPv4Address(value) for value in layouts.values()]


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 address(es) an IPv6 address stands for (IPv4-mapped, 6to4, Teredo server and client,
    NAT64, IPv4-compatible), or None for an IPv6 address that carries none."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    if address in _NAT64_WELL_KNOWN:
        return [ipaddress.IPv4Address(address.packed[12:])]
    if address in _NAT64_LOCAL:
        return _nat64_candidates(address)
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # :: and ::1 are judged as themselves
        return [ipaddress.IPv4Address(address.packed[12:])]
    return None


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        if carried is not None:
            return any(_internal(v4) for v4 in carried)
    return not address.is_global or address.is_multicast or any(address in net for net in _ALSO_INTERNAL)


def is_internal_address(text: str) -> bool:
    """True for an address no download or webhook may reach unless INGEST_ALLOWED_HOSTS names it: every
    address `ipaddress` calls not global (loopback, private, CGNAT 100.64.0.0/10 where some clouds keep
    their metadata service, link-local 169.254.0.0/16, reserved, documentation…), multicast, deprecated
    relay and site-local ranges, and IPv6 forms judged by the IPv4 address they carry."""
    return _internal(ipaddress.ip_address(text.split("%")[0]))


def parse_allowed_host(entry: str) -> tuple[str, int | None]:
    """An INGEST_ALLOWED_HOSTS entry as (host, port): `host` or `[v6]` allows any port, `host:port` or
    `[v6]:port` only that port; a bare IPv6 address (several colons, no brackets) allows any port."""
    entry = entry.strip().lower()
    port: str | None = None
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{entry!r}: write an IPv6 entry as [address] or [address]:port")
            port = rest[1:]
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host = entry
    if not host:
        raise ValueError(f"{entry!r} names no host")
    if port is None:
        return host.rstrip("."), None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return host.rstrip("."), int(port)


def _host_allowed(host: str, port: int | None) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    for entry in settings.INGEST_ALLOWED_HOSTS:
        allowed_host, allowed_port = parse_allowed_host(entry)
        if allowed_host == host and (allowed_port is None or allowed_port == port):
            return True
    return False


_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE_CHARACTERS = re.compile(r"[\\\s\x00-\x1f\x7f]")


def parse_http_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, read the way the HTTP client will read it.

    The URL is prepared as `requests` prepares it and split by urllib3's parser, which is what opens
    the connection; a URL whose host another parser (urllib.parse) would read differently is refused,
    so the address check and the connection can never disagree on where it goes. Backslashes,
    whitespace and control characters, and user names or passwords (`user:pw@host`), are refused.
    """
    if not isinstance(url, str) or not url:
        raise Rejected("the URL is empty")
    bad = _UNSAFE_CHARACTERS.search(url)
    if bad:
        what = "a backslash" if bad.group() == "\\" else "a space or a control character"
        raise Rejected(f"the URL contains {what}, which HTTP clients read in different ways; percent-encode it "
                       f"(%{ord(bad.group()):02X})")
    scheme = url.partition(":")[0].lower()
    if scheme not in _DEFAULT_PORTS:
        raise Rejected(f"only http and https URLs are accepted, not {scheme or 'a bare path'!r}")
    try:
        prepared = requests.Request("GET", url).prepare().url or ""
        parts = urllib3.util.parse_url(prepared)
        other = urlsplit(prepared)
        other_host, other_port = other.hostname, other.port
    except (requests.RequestException, urllib3.exceptions.LocationParseError, ValueError) as exc:
        raise Rejected(f"not a valid URL: {exc}") from exc
    if parts.auth is not None or other.username is not None or "@" in (other.netloc or ""):
        raise Rejected("the URL carries a user name or password (user:password@host); remove it: Winnow sends "
                       "no credentials in URLs")
    host = (parts.host or "").strip("[]").lower()
    if not host:
        raise Rejected("the URL has no host")
    if host != (other_host or "").lower() or parts.port != other_port:
        raise Rejected("the URL's host is ambiguous (parsers disagree on it); write it plainly as scheme://host/path")
    return scheme, host, parts.port or _DEFAULT_PORTS[scheme]


def check_url(url: str) -> None:
    """Refuse URLs that are not plain http(s) (see parse_http_url) or whose host resolves to an internal
    address (see is_internal_address), unless INGEST_ALLOWED_HOSTS names the host (and port)."""
    _scheme, host, port = parse_http_url(url)
    if _host_allowed(host, port):
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise Rejected(f"cannot resolve host {host!r}") from exc
    for info in infos:
        _check_address(host, port, info[4][0], "resolves to")


def _check_address(host: str, port: int | None, text: str, verb: str) -> None:
    """Refuse an internal address (see is_internal_address) unless INGEST_ALLOWED_HOSTS names it."""
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if _host_allowed(str(address), port):
        return
    if _internal(address):
        carried = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        which = f" (which stands for {', '.join(map(str, carried))})" if carried else ""
        raise Rejected(
            f"{host} {verb} {address}{which}, an internal address; ask an admin to add it to "
            "INGEST_ALLOWED_HOSTS if this is intended"
        )


class Deadline:
    """A wall-clock limit on a whole exchange (connection, TLS, headers, body, redirects).

    Socket timeouts bound each read, so a server sending a byte every few seconds could hold a worker for
    ever. While a Deadline is active (a `with` block), every connection the download session opens is
    registered with it; when the time is up they are shut down, which wakes any read blocked on them, and
    `expired` says why the exchange broke off.
    """

    _active = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._previous = getattr(Deadline._active, "current", None)
        Deadline._active.current = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        Deadline._active.current = self._previous

    @classmethod
    def current(cls) -> Deadline | None:
        return getattr(cls._active, "current", None)

    def remaining(self) -> float:
        return max(0.001, self.expires_at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake


# check_url resolves the host once; the download resolves it again, and a DNS answer that changed in
# between (DNS rebinding) could point it inward. So every connection the download opens checks the
# address it actually reached, before a byte is sent.
class _PeerChecked:
    """Mixed into urllib3's connections: the socket's peer address is checked as soon as it connects,
    and the socket is put under the active Deadline."""

    host: str
    port: int

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        if not _host_allowed(self.host, self.port):
            try:
                _check_address(self.host, self.port, sock.getpeername()[0], "connected to")
            except Rejected:
                sock.close()
                raise
        deadline = Deadline.current()
        if deadline is not None:
            deadline.watch(sock)
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


RETRY_STATUSES = frozenset({429, *range(500, 600)})


class _TryAgain(Exception):
    """The server answered 429 or 5xx: worth another attempt, after `wait` seconds if it said so."""

    def __init__(self, url: str, code: int, wait: float | None) -> None:
        super().__init__(f"the server answered HTTP {code} for {url}")
        self.code = code
        self.wait = wait


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def fetch(url: str) -> bytes:
    """Download an image: every redirect hop and every connection's address checked against the same
    rules, each attempt within INGEST_URL_TIMEOUT in all, and a 429 or 5xx answer tried again up to
    INGEST_URL_RETRIES times, waiting as the server's Retry-After asks or INGEST_URL_RETRY_BACKOFF × 2^n
    seconds, never more than INGEST_URL_RETRY_MAX_WAIT."""
    retries = settings.INGEST_URL_RETRIES
    for attempt in range(retries + 1):
        try:
            return _fetch_once(url)
        except _TryAgain as exc:
            if attempt == retries:
                tries = f" ({attempt + 1} attempts)" if attempt else ""
                raise Rejected(f"{exc}{tries}") from exc
            backoff = settings.INGEST_URL_RETRY_BACKOFF * 2**attempt
            time.sleep(min(exc.wait if exc.wait is not None else backoff, settings.INGEST_URL_RETRY_MAX_WAIT))
    raise AssertionError("unreachable")  # the loop returns or raises


def _fetch_once(url: str) -> bytes:
    timeout = settings.INGEST_URL_TIMEOUT
    too_slow = f"timed out: {url} took longer than {timeout} s in all (INGEST_URL_TIMEOUT)"
    with download_session() as session, Deadline(timeout) as deadline:
        try:
            data = _follow(session, url, deadline)
        except (Rejected, _TryAgain):
            if deadline.expired:
                raise Rejected(too_slow) from None
            raise
        if deadline.expired:  # a body cut short by the deadline must not pass for a whole one
            raise Rejected(too_slow)
        return data


def _follow(session: requests.Session, url: str, deadline: Deadline) -> bytes:
    current = url
    for _hop in range(settings.INGEST_URL_MAX_REDIRECTS + 1):
        check_url(current)
        try:
            response = session.get(
                current, stream=True, allow_redirects=False, timeout=deadline.remaining(),
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
            if response.status_code in RETRY_STATUSES:
                raise _TryAgain(current, response.status_code, _retry_after(response.headers.get("Retry-After")))
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
            except requests.Timeout as exc:
                raise Rejected(f"timed out after {settings.INGEST_URL_TIMEOUT} s fetching {current}") from exc
            except requests.RequestException as exc:
                raise Rejected(f"download of {current} broke off: {exc.__class__.__name__}") from exc
            return b"".join(chunks)
    raise Rejected(f"more than {settings.INGEST_URL_MAX_REDIRECTS} redirects")
