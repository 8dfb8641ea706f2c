from django.contrib import admin

from playground.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "prefix", "created", "last_used", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["name", "owner__email", "prefix"]
    readonly_fields = ["prefix", "digest", "created", "last_used"]
