from django.contrib import admin, messages

from training import services
from training.models import ChatExchange, Run, RunLog, Worker


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
        "crash_resumes",
        "time_limit_s",
        "created",
    ]
    list_filter = ["status"]
    search_fields = ["name", "owner__email", "project__name"]
    list_select_related = ["owner", "project"]
    raw_id_fields = ["owner", "project", "dataset", "base_model", "base_run", "design", "tokenizer"]
    readonly_fields = ["created", "started", "first_metric_at", "finished"]
    actions = ["cancel_runs", "requeue_runs"]

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request, queryset):
        cancelled = sum(services.cancel_run(run) for run in queryset)
        self.message_user(request, f"{cancelled} run(s) cancelled.", messages.SUCCESS)

    @admin.action(
        description="Requeue selected runs (interrupted: resume, crash count reset; ended: a retry)"
    )
    def requeue_runs(self, request, queryset):
        requeued = sum(services.requeue_run(run) is not None for run in queryset)
        skipped = queryset.count() - requeued
        self.message_user(
            request,
            f"{requeued} run(s) requeued; {skipped} skipped (queued or running).",
            messages.SUCCESS if requeued else messages.WARNING,
        )


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "device",
        "memory_used_mb",
        "memory_total_mb",
        "alive",
        "last_seen",
        "started",
    ]
    readonly_fields = [
        "name",
        "hostname",
        "pid",
        "device",
        "memory_total_mb",
        "memory_used_mb",
        "started",
        "last_seen",
    ]

    @admin.display(boolean=True)
    def alive(self, worker: Worker) -> bool:
        return worker.is_alive


@admin.register(RunLog)
class RunLogAdmin(admin.ModelAdmin):
    list_display = ["run", "created", "line"]
    raw_id_fields = ["run"]


@admin.register(ChatExchange)
class ChatExchangeAdmin(admin.ModelAdmin):
    list_display = ["run", "owner", "status", "created"]
    raw_id_fields = ["run", "owner"]
