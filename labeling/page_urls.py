"""Page routes of the labeling app (the HTML shells; their ES modules call /api/v1/)."""

from django.urls import path

from . import views

app_name = "labeling"

urlpatterns = [
    path("projects/new/", views.new_project, name="new-project"),
    path("projects/<int:pk>/members/", views.members, name="members"),
    path("projects/<int:pk>/tasks/", views.tasks, name="tasks"),
    path("projects/<int:pk>/quality/", views.quality, name="quality"),
    path("projects/<int:pk>/exports/", views.exports, name="exports"),
    path("projects/<int:pk>/webhooks/", views.webhooks, name="webhooks"),
    path("projects/<int:pk>/annotate/", views.annotate, name="annotate"),
    path("projects/<int:pk>/grid/", views.grid, name="grid"),
    path("projects/<int:pk>/settings/", views.project_settings, name="settings"),
    path("projects/<int:pk>/batches/", views.batches, name="batches"),
    path("projects/<int:pk>/review/", views.review, name="review"),
]
