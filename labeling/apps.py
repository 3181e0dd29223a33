from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from winnow import media

        from . import views

        media.register("assets", "thumbs", rule=views.may_read_image)
        media.register("splits", "exports", rule=views.may_read_project_file)
