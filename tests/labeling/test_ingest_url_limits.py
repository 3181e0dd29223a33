"""What a URL may point at and how long a download may take: the address rules, URLs read as the HTTP client
reads them, the allow-list's ports, the overall deadline against a server that drips bytes, and retries."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from labeling import assets, webhooks
from tests.conftest import png_bytes
from winnow.exceptions import InvalidInput

IMAGE = png_bytes(11)


class Server:
    """An HTTP server on 127.0.0.1 with routes that misbehave in the ways the limits are for."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path, _, query = self.path.partition("?")
                server.hits[self.path] += 1
                try:
                    if path == "/drip.png":  # headers at once, then a byte every 0.3 s: each read is quick
                        self.send_response(200)
                        self.send_header("Content-Type", "image/png")
                        self.send_header("Content-Length", str(len(IMAGE)))
                        self.end_headers()
                        for byte in IMAGE:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.3)
                    elif path == "/drip-headers":  # the status line, then headers a byte at a time
                        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                        for byte in b"Content-Type: image/png\r\n" * 50:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.3)
                    elif path == "/drip-unsized.png":  # no length: a body cut short must not pass as whole
                        self.send_response(200)
                        self.send_header("Content-Type", "image/png")
                        self.send_header("Connection", "close")
                        self.end_headers()
                        self.wfile.write(IMAGE[:100])
                        self.wfile.flush()
                        for byte in IMAGE[100:]:
                            time.sleep(0.3)
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    elif path == "/flaky.png":  # ?fail=N&code=C&after=S: N answers C (Retry-After S), then the image
                        params = dict(p.split("=") for p in query.split("&") if p)
                        if server.hits[self.path] <= int(params.get("fail", 0)):
                            self.send_response(int(params.get("code", 503)))
                            if "after" in params:
                                self.send_header("Retry-After", params["after"])
                            self.send_header("Content-Length", "4")
                            self.end_headers()
                            self.wfile.write(b"busy")
                        else:
                            self._image()
                    elif path == "/img.png":
                        self._image()
                    else:
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def _image(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(IMAGE)))
                self.end_headers()
                self.wfile.write(IMAGE)

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()


@pytest.fixture
def allowed(server: Server, settings: Any) -> Server:
    settings.INGEST_ALLOWED_HOSTS = [f"127.0.0.1:{server.port}"]
    settings.INGEST_URL_TIMEOUT = 1
    settings.INGEST_URL_RETRY_BACKOFF = 0.05
    return server


# --- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://100.100.100.200/latest/meta-data/", "100.100.100.200, an internal"),  # CGNAT: Alibaba's metadata
        ("http://100.64.0.1/", "internal address"),
        ("http://192.88.99.1/", "internal address"),  # 6to4 relay anycast
        ("http://198.18.0.1/", "internal address"),  # benchmarking
        ("http://239.1.2.3/", "internal address"),  # multicast
        ("http://255.255.255.255/", "internal address"),
        ("http://[2002:7f00:1::]/", "stands for 127.0.0.1"),  # 6to4 carrying loopback
        ("http://[2002:a9fe:a9fe::1]/", "stands for 169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254, an internal"),  # IPv4-mapped
        ("http://[64:ff9b::7f00:1]/", "stands for 127.0.0.1"),  # NAT64, well-known prefix
        ("http://[64:ff9b:1::a00:1]/", "internal address"),  # NAT64, local-use prefix carrying 10.0.0.1
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "127.0.0.1"),  # Teredo, client 127.0.0.1
        ("http://[::127.0.0.1]/", "stands for 127.0.0.1"),  # IPv4-compatible (deprecated)
        ("http://[fc00::1]/", "internal address"),
        ("http://[fe80::1]/", "internal address"),
        ("http://[fec0::1]/", "internal address"),  # site-local (deprecated)
        ("http://[100::1]/", "internal address"),  # discard-only
    ],
)
def test_every_address_that_is_not_global_is_refused(url: str, why: str, settings: Any) -> None:
    settings.INGEST_ALLOWED_HOSTS = []
    with pytest.raises(assets.Rejected, match=why):
        assets.check_url(url)


@pytest.mark.parametrize(
    "url",
    ["http://8.8.8.8/a.png", "https://[2606:4700:4700::1111]/a.png", "http://[64:ff9b::808:808]/a.png",
     "http://[2002:808:808::1]/a.png", "http://[::ffff:8.8.8.8]/a.png"],
)
def test_public_addresses_in_any_form_pass(url: str, settings: Any) -> None:
    settings.INGEST_ALLOWED_HOSTS = []
    assets.check_url(url)  # no exception


# --- URLs read as the HTTP client reads them --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        # urllib.parse sees the host allowed.host; requests and urllib3 connect to 127.0.0.1.
        ("http://127.0.0.1\\@allowed.host/a.png", "backslash"),
        ("http://allowed.host\\.evil.example/", "backslash"),
        ("http://user:secret@allowed.host/a.png", "user name or password"),
        ("http://allowed.host:80@127.0.0.1/a.png", "user name or password"),
        ("http://allowed.host/a b.png", "space or a control character"),
        ("http://allowed.host\t/", "space or a control character"),
        ("http://allowed.host:99999/", "not a valid URL"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://allowed.host/", "only http and https"),
        ("http:///a.png", "No host supplied"),
    ],
)
def test_urls_the_client_would_read_differently_are_refused_with_the_reason(url: str, why: str,
                                                                           settings: Any) -> None:
    settings.INGEST_ALLOWED_HOSTS = ["allowed.host"]
    with pytest.raises(assets.Rejected, match=why):
        assets.check_url(url)


def test_an_allow_list_entry_with_a_port_allows_that_port_only(settings: Any) -> None:
    settings.INGEST_ALLOWED_HOSTS = ["127.0.0.1:8080", "[::1]:9000", "localhost"]

    assets.check_url("http://127.0.0.1:8080/a.png")
    assets.check_url("http://[::1]:9000/a.png")
    assets.check_url("http://localhost:5432/a.png")  # a bare host: any port
    with pytest.raises(assets.Rejected, match="internal address"):
        assets.check_url("http://127.0.0.1:5432/")
    with pytest.raises(assets.Rejected, match="internal address"):
        assets.check_url("http://127.0.0.1/")  # port 80 is not 8080
    with pytest.raises(assets.Rejected, match="internal address"):
        assets.check_url("http://[::1]:9001/")


def test_the_connection_check_honours_the_port_of_an_entry(allowed: Server, settings: Any) -> None:
    session = assets.download_session()
    assert session.get(f"{allowed.url}/img.png", timeout=5).content == IMAGE
    settings.INGEST_ALLOWED_HOSTS = [f"127.0.0.1:{allowed.port + 1}"]
    with pytest.raises(assets.Rejected, match="connected to 127.0.0.1, an internal address"):
        assets.download_session().get(f"{allowed.url}/img.png", timeout=5)


@pytest.mark.parametrize("entry", ["host:http", "host:0", "[::1]:70000", "[::1]x"])
def test_a_bad_allow_list_entry_fails_at_start_up(entry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from winnow import settings as winnow_settings

    monkeypatch.setenv("INGEST_ALLOWED_HOSTS", f"ok.example,{entry}")
    with pytest.raises(ImproperlyConfigured, match="host:port"):
        winnow_settings.env_hosts("INGEST_ALLOWED_HOSTS")


# --- the overall deadline ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/drip.png", "/drip-headers", "/drip-unsized.png"])
def test_a_server_that_drips_bytes_cannot_hold_the_download_past_the_deadline(allowed: Server, path: str) -> None:
    started = time.monotonic()

    with pytest.raises(assets.Rejected, match="took longer than 1 s in all"):
        assets.fetch(f"{allowed.url}{path}")

    assert time.monotonic() - started < 2.5  # one second, not the minutes the server would take
    assert allowed.hits[path] == 1  # a timeout is not retried


def test_a_whole_image_within_the_deadline_is_returned(allowed: Server) -> None:
    assert assets.fetch(f"{allowed.url}/img.png") == IMAGE


# --- retries ----------------------------------------------------------------------------------


def test_a_busy_server_is_tried_again_with_backoff(allowed: Server) -> None:
    path = "/flaky.png?fail=2&code=503&id=backoff"

    assert assets.fetch(f"{allowed.url}{path}") == IMAGE

    assert allowed.hits[path] == 3


def test_retry_after_is_honoured(allowed: Server, settings: Any) -> None:
    settings.INGEST_URL_RETRY_BACKOFF = 0
    path = "/flaky.png?fail=1&code=429&after=1&id=after"
    started = time.monotonic()

    assert assets.fetch(f"{allowed.url}{path}") == IMAGE

    assert time.monotonic() - started >= 1
    assert allowed.hits[path] == 2


def test_a_long_retry_after_is_capped(allowed: Server, settings: Any) -> None:
    settings.INGEST_URL_RETRY_MAX_WAIT = 0.2
    path = "/flaky.png?fail=1&code=503&after=3600&id=capped"
    started = time.monotonic()

    assert assets.fetch(f"{allowed.url}{path}") == IMAGE

    assert time.monotonic() - started < 3


def test_retries_are_bounded_and_the_reason_says_how_many(allowed: Server, settings: Any) -> None:
    settings.INGEST_URL_RETRIES = 2
    path = "/flaky.png?fail=99&code=500&id=bounded"

    with pytest.raises(assets.Rejected, match=r"HTTP 500 .*\(3 attempts\)"):
        assets.fetch(f"{allowed.url}{path}")

    assert allowed.hits[path] == 3


def test_a_404_is_not_tried_again(allowed: Server) -> None:
    with pytest.raises(assets.Rejected, match="HTTP 404"):
        assets.fetch(f"{allowed.url}/gone.png")
    assert allowed.hits["/gone.png"] == 1


# --- receivers are checked when they are stored -----------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:5432/", "http://169.254.169.254/latest/meta-data/",
                                 "http://[2002:7f00:1::]/cb", "http://127.0.0.1\\@example.com/"])
def test_a_receiver_pointing_inward_is_refused_with_the_reason(url: str, settings: Any) -> None:
    settings.INGEST_ALLOWED_HOSTS = ["example.com"]
    with pytest.raises(InvalidInput, match="cannot receive callbacks"):
        webhooks.check_receiver_url(url, field="callback_url")
