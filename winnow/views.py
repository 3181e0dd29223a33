from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from rest_framework.authtoken import views as authtoken_views
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from .parsers import JSONParser
from .throttling import TOO_MANY, Guard, wait_words


def _throttled_page(seconds: int) -> HttpResponse:
    """429 for a page: what happened and what to do, in words (no route), with Retry-After."""
    response = HttpResponse(
        f"Too many failed attempts from this address or for this username. Wait {wait_words(seconds)}, then go "
        "back and try again.\n",
        status=429, content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(seconds)
    return response


class ObtainAuthToken(authtoken_views.ObtainAuthToken):
    """username + password -> the user's API token. Failed attempts are counted per client address and
    per username; while either count is full the answer is 429 with Retry-After (winnow.throttling)."""

    parser_classes = (FormParser, MultiPartParser, JSONParser)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        guard = Guard(request, door="token", username=data.get("username"))
        wait = guard.seconds_to_wait()
        if wait is not None:
            raise Throttled(wait=wait, detail=TOO_MANY)
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            guard.failed()
            raise


class LoginView(auth_views.LoginView):
    """Django's sign-in page, with failed attempts counted and throttled as the token endpoint's are."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.guard = Guard(request, door="login", username=request.POST.get("username"))
        wait = self.guard.seconds_to_wait()
        if wait is not None:
            return _throttled_page(wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        self.guard.failed()
        return super().form_invalid(form)


def admin_login(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """The admin's sign-in page, throttled as /login/ is: a form shown again after a POST is a failure."""
    from django.contrib import admin

    if request.method != "POST":
        return admin.site.login(request, **kwargs)
    guard = Guard(request, door="admin_login", username=request.POST.get("username"))
    wait = guard.seconds_to_wait()
    if wait is not None:
        return _throttled_page(wait)
    response = admin.site.login(request, **kwargs)
    if response.status_code == 200:
        guard.failed()
    return response


def signup(request: HttpRequest) -> HttpResponse:
    """Self-service accounts, only when WINNOW_SIGNUP_ENABLED is on; owners then add people to projects.
    Every attempt counts against the client address and the username (winnow.throttling)."""
    if not settings.WINNOW_SIGNUP_ENABLED:
        raise Http404("sign-up is turned off on this server; ask an administrator for an account")
    if request.method == "POST":
        guard = Guard(request, door="signup", username=request.POST.get("username"))
        wait = guard.seconds_to_wait()
        if wait is not None:
            return _throttled_page(wait)
        guard.attempted()
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})
