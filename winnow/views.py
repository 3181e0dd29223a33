from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and Docker: the app answers and its database does too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def signup(request: HttpRequest) -> HttpResponse:
    """Self-service accounts, only when WINNOW_SIGNUP_ENABLED is on; owners then add people to projects."""
    if not settings.WINNOW_SIGNUP_ENABLED:
        raise Http404("sign-up is turned off on this server; ask an administrator for an account")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})
