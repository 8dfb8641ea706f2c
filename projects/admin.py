from django.contrib import admin

from projects.models import (
    BaseModel,
    Dataset,
    DatasetImport,
    ModelDownload,
    Project,
    SyntheticGeneration,
    Upload,
)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "created", "updated"]
    search_fields = ["name", "owner__email"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ["name", "source", "parameters", "context_length", "is_default", "created"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "owner", "project", "row_count", "size_bytes", "created"]
    search_fields = ["name", "owner__email"]
    raw_id_fields = ["owner", "project"]
    # Content is frozen once a run uses it (Dataset.save refuses); edit it on the dataset page.
    readonly_fields = [
        "uid",
        "file",
        "row_count",
        "size_bytes",
        "preview",
        "version",
        "parent",
        "val_percent",
        "split_seed",
        "validation_file",
        "validation_row_count",
    ]


@admin.register(ModelDownload)
class ModelDownloadAdmin(admin.ModelAdmin):
    list_display = ["repo_id", "status", "bytes_done", "bytes_total", "requested_by", "created"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ModelDownload._meta.fields]


@admin.register(DatasetImport)
class DatasetImportAdmin(admin.ModelAdmin):
    list_display = ["repo_id", "split", "status", "bytes_done", "rows_checked", "owner", "created"]
    list_filter = ["status"]
    search_fields = ["repo_id", "owner__email"]
    readonly_fields = [f.name for f in DatasetImport._meta.fields]


@admin.register(SyntheticGeneration)
class SyntheticGenerationAdmin(admin.ModelAdmin):
    list_display = ["name", "model_label", "status", "generated", "kept", "owner", "created"]
    list_filter = ["status"]
    search_fields = ["name", "owner__email"]
    readonly_fields = [f.name for f in SyntheticGeneration._meta.fields]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    """Uploads under way or recently ended; unfinished ones go after a day by themselves."""

    list_display = ["filename", "purpose", "status", "received", "size", "owner", "updated"]
    list_filter = ["status", "purpose"]
    search_fields = ["filename", "owner__email"]
    list_select_related = ["owner"]
    readonly_fields = [f.name for f in Upload._meta.fields]
