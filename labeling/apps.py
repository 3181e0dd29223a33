from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from winnow import jobs, media, metrics

        from . import exports, features, label_errors, leasing, suggestions, views, webhooks
        from .models import Delivery, Export, FeatureJob, LabelCheck, SuggestionFit

        media.register("assets", "thumbs", rule=views.may_read_image)
        media.register("splits", "exports", rule=views.may_read_project_file)
        jobs.register(Export, exports.requeue_stalled_exports)
        jobs.register(Delivery, webhooks.resend_stalled)
        jobs.register(FeatureJob, features.requeue_stalled)
        jobs.register(SuggestionFit, suggestions.requeue_stalled)
        jobs.register(LabelCheck, label_errors.requeue_stalled)
        metrics.register_gauge("winnow_leases_active", "Tasks leased to an annotator now", leasing.active_lease_count)
