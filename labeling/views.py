"""Pages. Templates render the shell; the ES modules in frontend/ call the same API as clients."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from .models import Project


def _authenticated(request: HttpRequest) -> bool:
    if request.user.is_authenticated:
        return True
    try:
        found = TokenAuthentication().authenticate(request)  # type: ignore[arg-type]
    except AuthenticationFailed:
        return False
    return found is not None


def media(request: HttpRequest, path: str) -> HttpResponse:
    """Serve stored images to signed-in users (session or API token); never to anonymous visitors."""
    if not _authenticated(request):
        return HttpResponse("sign in to see images", status=401, content_type="text/plain")
    root = Path(settings.MEDIA_ROOT).resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file():
        raise Http404("no such file")
    response = FileResponse(target.open("rb"), content_type=mimetypes.guess_type(target.name)[0] or "application/octet-stream")
    # Content-addressed: a path never changes meaning, so browsers may keep it.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = (
        request.user.memberships.filter(project__deleted_at__isnull=True).select_related("project").order_by("project__name")
    )
    return render(request, "labeling/home.html", {"memberships": memberships, "projects": Project.objects.none()})
