from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils.translation import gettext_lazy as _

from accounts.models import User


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ["email"]


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    add_form = UserCreationForm
    form = UserEditForm
    ordering = ["email"]
    list_display = [
        "email",
        "display_name",
        "is_staff",
        "is_active",
        "max_running_runs",
        "max_queued_runs",
        "storage_quota_mb",
        "storage_used",
        "date_joined",
    ]
    readonly_fields = ["storage_breakdown"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "display_name"]
    fieldsets = [
        (None, {"fields": ["email", "password", "display_name"]}),
        (
            _("Quotas"),
            {
                "fields": [
                    "max_running_runs",
                    "max_queued_runs",
                    "storage_quota_mb",
                    "storage_breakdown",
                    "run_time_limit_hours",
                ]
            },
        ),
        (
            _("Permissions"),
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]

    @admin.display(description=_("storage used"))
    def storage_used(self, user: User) -> str:
        used = sum(user.storage_used().values())
        return f"{used / 2**20:,.1f} MB ({100 * used / max(1, user.storage_quota_bytes):.0f}%)"

    @admin.display(description=_("storage by kind"))
    def storage_breakdown(self, user: User) -> str:
        if user.pk is None:
            return "-"
        parts = user.storage_used()
        return "; ".join(f"{label}: {size / 2**20:,.1f} MB" for label, size in parts.items())

    add_fieldsets = [
        (
            None,
            {"classes": ["wide"], "fields": ["email", "usable_password", "password1", "password2"]},
        ),
    ]
