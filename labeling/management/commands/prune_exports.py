"""Delete export files older than EXPORT_RETENTION_HOURS: `manage.py prune_exports` (e.g. from cron)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Delete the files of exports written more than EXPORT_RETENTION_HOURS ago; they show as expired."

    def handle(self, *args: Any, **options: Any) -> None:
        from labeling import exports

        if not settings.EXPORT_RETENTION_HOURS:
            self.stdout.write("EXPORT_RETENTION_HOURS is 0: export files are kept")
            return
        expired = exports.prune_exports()
        self.stdout.write(f"{expired} export(s) older than {settings.EXPORT_RETENTION_HOURS} h expired")
