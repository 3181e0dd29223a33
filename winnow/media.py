"""Protected media: every stored file is served through the app, and only to those who may read it.

Each app registers who may read its top-level folders of the media storage, in its
`AppConfig.ready` (`register("assets", "thumbs", rule=may_read_image)`); a path in a folder nobody
registered is nobody's. A rule gets the signed-in user and the path split at "/" (at least three
parts: folder, key, file), and answers yes or no. Superusers read everything.

Anyone else gets 404, so a file's existence is not revealed; anonymous visitors get 401.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.settings import api_settings

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
    root = Path(settings.MEDIA_ROOT).resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file():
        raise Http404("no such file")
    if not may_read(user, target.relative_to(root).as_posix()):
        raise Http404("no such file")
    response = FileResponse(target.open("rb"), content_type=mimetypes.guess_type(target.name)[0] or "application/octet-stream")
    # Content-addressed or keyed by a random token: a path never changes meaning, so browsers may keep it.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
