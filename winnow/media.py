"""Protected media: every stored file is served through the app, and only to those who may read it.

Each app registers who may read its top-level folders of the media storage, in its
`AppConfig.ready` (`register("assets", "thumbs", rule=may_read_image)`); a path in a folder nobody
registered is nobody's. A rule gets the signed-in user and the path split at "/" (at least three
parts: folder, key, file), and answers yes or no. Superusers read everything.

Anyone else gets 404, so a file's existence is not revealed; anonymous visitors get 401. Files are
read through the media storage (winnow/storage.py), a folder or an S3 bucket alike: the app streams
them, so the bucket stays private and needs no address that browsers can reach.

A signed URL (`signed_url`) lets a tool without a session fetch one file until it expires (Label
Studio's image URLs in an export): the path is signed with `django.core.signing` and the time it was
signed, so it cannot be changed nor used after `SIGNED_MEDIA_URL_SECONDS`; anyone holding it may read
that one file until then.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse

from . import storage
from .exceptions import StorageUnavailable

Rule = Callable[[Any, list[str]], bool]

_rules: dict[str, Rule] = {}


def register(*folders: str, rule: Rule) -> None:
    """Let `rule` decide who reads the files under each of `folders` (top-level folder names)."""
    for folder in folders:
        if _rules.get(folder, rule) is not rule:
            raise ImproperlyConfigured(f"the media folder {folder}/ already has an access rule")
        _rules[folder] = rule


def may_read(user: Any, path: str) -> bool:
    """Whether `user` may read the stored file at `path` (relative to the media root)."""
    if user.is_superuser:
        return True
    parts = path.split("/")
    if len(parts) < 3:
        return False
    rule = _rules.get(parts[0])
    return rule is not None and rule(user, parts)


def request_user(request: HttpRequest) -> Any:
    """The signed-in user, by session or by any of the API's authentication classes (a token), or None."""
    # DRF inside: exports import this module for signed URLs, and domain modules never load DRF.
    from rest_framework.exceptions import AuthenticationFailed
    from rest_framework.request import Request
    from rest_framework.settings import api_settings

    if request.user.is_authenticated:
        return request.user
    api_request = Request(request)
    for authentication in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        try:
            found = authentication().authenticate(api_request)
        except AuthenticationFailed:
            return None
        if found:
            return found[0]
    return None


def serve(request: HttpRequest, path: str) -> HttpResponse:
    """Serve a stored file to a signed-in user who may read it; 404 to anyone else, 401 to anonymous visitors."""
    user = request_user(request)
    if user is None:
        return HttpResponse("sign in to see images", status=401, content_type="text/plain")
    name = stored_name(path)
    if not may_read(user, name):
        raise Http404("no such file")
    response = _file_response(name)
    if response.status_code == 200:
        # Content-addressed or keyed by a random token: a path never changes meaning, so browsers may keep it.
        response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


def stored_name(path: str) -> str:
    """`path` as a storage name (relative, no `..`); 404 for anything else."""
    try:
        return storage.check_name(path)
    except ValueError:
        raise Http404("no such file") from None


def _file_response(name: str) -> HttpResponse:
    """The stored file, streamed; 404 when it is not stored, 503 when the storage does not answer."""
    try:
        return storage.file_response(name)
    except FileNotFoundError:
        raise Http404("no such file") from None
    except StorageUnavailable:
        return HttpResponse("the image storage is not answering; try again in a moment", status=503,
                            content_type="text/plain")


SIGNED_SALT = "winnow.media.signed-url"
SIGNED_PREFIX = "signed-media"


def signed_url(base_url: str, path: str) -> str:
    """An absolute URL that serves the stored file at `path` to anyone for SIGNED_MEDIA_URL_SECONDS."""
    token = signing.dumps(path, salt=SIGNED_SALT)
    return f"{base_url.rstrip('/')}/{SIGNED_PREFIX}/{token}/{PurePosixPath(path).name}"


def serve_signed(request: HttpRequest, token: str, filename: str) -> HttpResponse:
    """Serve the file a signed URL names: 403 for a signature that does not verify, 410 once it expired."""
    try:
        path = signing.loads(token, salt=SIGNED_SALT, max_age=settings.SIGNED_MEDIA_URL_SECONDS)
    except signing.SignatureExpired:
        return HttpResponse("this link has expired; export again for fresh links", status=410,
                            content_type="text/plain")
    except signing.BadSignature:
        return HttpResponse("this link is not valid; copy the whole link from the export", status=403,
                            content_type="text/plain")
    if not isinstance(path, str) or PurePosixPath(path).name != filename:
        return HttpResponse("this link is not valid; copy the whole link from the export", status=403,
                            content_type="text/plain")
    response = _file_response(stored_name(path))
    if response.status_code == 200:
        response["Cache-Control"] = "private, max-age=3600"
    return response
