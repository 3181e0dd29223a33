"""Page routes of the training app (the HTML shells; their ES modules call /api/v1/)."""

from django.urls import path

from . import views

app_name = "training"

urlpatterns = [
    path("projects/<int:pk>/training/", views.project_training, name="project"),
    path("runs/<int:pk>/", views.run_page, name="run"),
]
