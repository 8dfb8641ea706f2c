from django.contrib import admin, messages

from training import services
from training.models import ChatExchange, Run, RunLog


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "owner",
        "project",
        "status",
        "step",
        "total_steps",
        "loss",
        "worker",
        "created",
    ]
    list_filter = ["status"]
    search_fields = ["name", "owner__email", "project__name"]
    list_select_related = ["owner", "project"]
    raw_id_fields = ["owner", "project", "dataset", "base_model"]
    readonly_fields = ["created", "started", "first_metric_at", "finished"]
    actions = ["cancel_runs"]

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request, queryset):
        cancelled = sum(services.cancel_run(run) for run in queryset)
        self.message_user(request, f"{cancelled} run(s) cancelled.", messages.SUCCESS)


@admin.register(RunLog)
class RunLogAdmin(admin.ModelAdmin):
    list_display = ["run", "created", "line"]
    raw_id_fields = ["run"]


@admin.register(ChatExchange)
class ChatExchangeAdmin(admin.ModelAdmin):
    list_display = ["run", "owner", "status", "created"]
    raw_id_fields = ["run", "owner"]
