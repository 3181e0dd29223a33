"""Page routes of the labeling app (the HTML shells; their ES modules call /api/v1/)."""

from django.urls import path

from . import views

app_name = "labeling"

urlpatterns = [
    path("projects/<int:pk>/annotate/", views.annotate, name="annotate"),
    path("projects/<int:pk>/grid/", views.grid, name="grid"),
    path("projects/<int:pk>/settings/", views.project_settings, name="settings"),
    path("projects/<int:pk>/batches/", views.batches, name="batches"),
    path("projects/<int:pk>/review/", views.review, name="review"),
]
