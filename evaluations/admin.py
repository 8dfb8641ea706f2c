from django.contrib import admin

from evaluations.models import BaseOutputs, Evaluation


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("pk", "run", "owner", "status", "automatic", "examples_total", "created")
    list_filter = ("status", "automatic")


@admin.register(BaseOutputs)
class BaseOutputsAdmin(admin.ModelAdmin):
    list_display = ("key", "owner", "hits", "created")
