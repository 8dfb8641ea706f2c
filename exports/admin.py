from django.contrib import admin

from exports.models import Export, HubPush, HubToken


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "run",
        "owner",
        "kind",
        "dtype",
        "quant",
        "status",
        "size_bytes",
        "created",
    )
    list_filter = ("kind", "status")
    search_fields = ("owner__email", "run__name")
    readonly_fields = ("verification", "error", "created", "started", "finished")


@admin.register(HubPush)
class HubPushAdmin(admin.ModelAdmin):
    list_display = ("id", "export", "owner", "repo_id", "private", "status", "created")
    list_filter = ("status",)


@admin.register(HubToken)
class HubTokenAdmin(admin.ModelAdmin):
    # Operators see that a token exists, never the token.
    list_display = ("owner", "hint", "created")
    fields = ("owner", "hint", "created")
    readonly_fields = ("owner", "hint", "created")
