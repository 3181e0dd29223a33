from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from winnow import media

        from . import views

        media.register("runs", rule=views.may_read_run_file)
