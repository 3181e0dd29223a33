"""API routes of the training app, mounted under /api/v1/."""

from rest_framework.routers import DefaultRouter

from . import api

app_name = "training-api"

router = DefaultRouter()
router.register("runs", api.RunViewSet, basename="run")
router.register("augmentations", api.AugmentationViewSet, basename="augmentation")
router.register("evaluations", api.EvaluationViewSet, basename="evaluation")

urlpatterns = router.urls
