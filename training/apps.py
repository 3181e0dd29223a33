from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from winnow import jobs, media

        from . import evaluations, runs, use, views
        from .models import Augmentation, Evaluation, Run

        media.register("runs", rule=views.may_read_run_file)
        jobs.register(Run, runs.recover_stale_runs)
        jobs.register(Evaluation, evaluations.recover_stale_evaluations)
        jobs.register(Augmentation, use.recover_stale_augmentations)
