"""Read-mostly admin views of runs, for staff investigating a run; state changes go through the API."""

from django.contrib import admin

from .models import Augmentation, Checkpoint, Run


class CheckpointInline(admin.TabularInline):
    model = Checkpoint
    extra = 0
    readonly_fields = ["step", "file", "byte_size", "created_at", "deleted_at"]
    can_delete = False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "split", "status", "step", "total_steps", "attempts", "heartbeat_at", "created_at"]
    list_filter = ["status"]
    readonly_fields = [field.name for field in Run._meta.fields]
    inlines = [CheckpointInline]


@admin.register(Augmentation)
class AugmentationAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "direction", "count", "produced", "status", "created_at"]
    readonly_fields = [field.name for field in Augmentation._meta.fields]
