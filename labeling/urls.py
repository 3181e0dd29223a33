"""API routes of the labeling app, mounted under /api/v1/."""

from rest_framework.routers import DefaultRouter

from . import api, assist_api, label_errors_api, quality_api

app_name = "labeling-api"

router = DefaultRouter()
router.register("projects", api.ProjectViewSet, basename="project")
router.register("batches", api.BatchViewSet, basename="batch")
router.register("tasks", api.TaskViewSet, basename="task")
router.register("splits", api.SplitViewSet, basename="split")
router.register(r"projects/(?P<project_pk>\d+)/webhooks", api.WebhookViewSet, basename="webhook")
router.register(r"projects/(?P<project_pk>\d+)/exports", api.ExportViewSet, basename="export")

urlpatterns = quality_api.urlpatterns + assist_api.urlpatterns + label_errors_api.urlpatterns + router.urls
