from django.contrib import admin

from playground.models import ApiKey, Generation


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "prefix", "created", "last_used", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["name", "owner__email", "prefix"]
    readonly_fields = ["prefix", "digest", "created", "last_used"]


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ["model_id", "owner", "kind", "status", "finish_reason", "created"]
    list_filter = ["status", "kind"]
    search_fields = ["model_id", "owner__email"]
    readonly_fields = ["created", "started", "first_token", "finished"]
