from django.contrib import admin

from designer.models import Design


@admin.register(Design)
class DesignAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "owner", "updated_at")
    search_fields = ("name", "owner__email")
