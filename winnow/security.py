"""Response headers that keep pages from running anything the server did not send as a file.

Every page's script is an ES module under /static/ and every style a stylesheet there, so the
Content-Security-Policy allows scripts and styles from this origin only: an injected `<script>` or
`onclick=` never runs. Images may also be `data:` and `blob:` URLs (previews of a file picked for
upload, charts drawn as SVG). Pages are never framed (`X-Frame-Options`, `frame-ancestors`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header (settings.CONTENT_SECURITY_POLICY) to every response
    that does not set its own. X-Frame-Options and Referrer-Policy come from Django's own middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = getattr(settings, "CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
