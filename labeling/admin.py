from django.contrib import admin

from .models import Annotation, Asset, Audit, Batch, Choice, Membership, Project, Split, Task


class ChoiceInline(admin.TabularInline):
    model = Choice
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "overlap", "calibration_approved_at", "created_at", "deleted_at"]
    inlines = [ChoiceInline, MembershipInline]
    search_fields = ["name"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "status", "created_at"]
    list_filter = ["kind", "status"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "batch", "unique_id", "status", "final_choice", "agreement", "is_gold"]
    list_filter = ["status", "is_gold"]
    raw_id_fields = ["asset", "batch", "gold_source"]
    search_fields = ["unique_id"]


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["sha256", "width", "height", "format", "byte_size"]
    search_fields = ["sha256"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "choice", "duration_ms", "created_at", "discarded_at"]
    raw_id_fields = ["task"]


admin.site.register(Audit)
admin.site.register(Split)
