from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from labeling import views as labeling_views
from winnow import media
from winnow.health import healthz, readyz
from winnow.metrics import metrics
from winnow.views import LoginView, ObtainAuthToken, admin_login, signup

urlpatterns = [
    path("admin/login/", admin_login, name="admin-login"),  # before the admin's own, to throttle it
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),  # probes are answered by winnow.health.ProbeMiddleware first;
    path("readyz", readyz, name="readyz"),  # these routes name them for reverse()
    path("metrics", metrics, name="metrics"),
    path("signup/", signup, name="signup"),
    path("api/v1/auth/token/", ObtainAuthToken.as_view(), name="api-token"),
    path("api/v1/", include("labeling.urls")),
    path("api/v1/", include("training.urls")),
    # Scale-compatible API for scripts written against Scale's REST API and its Python client.
    path("v1/", include("labeling.scale.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from drf-spectacular-sidecar's static files and its set-up script as a file of its own:
    # the docs work with no internet and under the pages' Content-Security-Policy.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs.html"),
         name="api-docs"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.+)$", media.serve, name="media"),
    re_path(rf"^{media.SIGNED_PREFIX}/(?P<token>[^/]+)/(?P<filename>[^/]+)$", media.serve_signed, name="media-signed"),
    path("", include("labeling.page_urls")),
    path("", include("training.page_urls")),
    path("", labeling_views.home, name="home"),
]
