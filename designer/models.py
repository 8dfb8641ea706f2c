"""A project's model designs: a decoder-only transformer kept as its spec's dict."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from training.engine.design.spec import Design as DesignSpec


class Design(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="designs"
    )
    name = models.CharField(_("name"), max_length=100)
    spec = models.JSONField(default=dict)
    batch_size = models.PositiveIntegerField(default=8)
    sequence_length = models.PositiveIntegerField(default=128)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def design(self) -> DesignSpec:
        return DesignSpec.from_dict(self.spec)
