"""Exports of a run (adapter, merged weights, GGUF) and pushes of them to the Hub.

An export is a background job (slmlab.jobs.Job) on the CPU worker. Its files are
written under a temporary folder and renamed to :attr:`Export.folder` only after the
verification passed, so a crash, a failure or a cancel never leaves a partial file that
can be downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from slmlab.jobs import Job
from training.models import Run


class Export(Job):
    class Kind(models.TextChoices):
        ADAPTER = "adapter", _("LoRA adapter")
        MERGED = "merged", _("merged model (safetensors)")
        GGUF = "gguf", _("GGUF (llama.cpp, Ollama)")

    class Dtype(models.TextChoices):
        BF16 = "bfloat16", "bf16"
        FP16 = "float16", "fp16"
        FP32 = "float32", "fp32"

    class Quant(models.TextChoices):
        F16 = "f16", "F16"
        Q8_0 = "q8_0", "Q8_0"
        Q4_0 = "q4_0", "Q4_0"
        Q4_K_M = "q4_k_m", "Q4_K_M"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="exports")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    dtype = models.CharField(max_length=20, choices=Dtype.choices, blank=True)
    quant = models.CharField(max_length=20, choices=Quant.choices, blank=True)
    progress = models.FloatField(default=0)
    stage = models.CharField(max_length=200, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    verification = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.label} of run {self.run_id}"

    @property
    def label(self) -> str:
        if self.kind == self.Kind.MERGED:
            return f"merged {self.get_dtype_display()}"
        if self.kind == self.Kind.GGUF:
            return f"GGUF {self.get_quant_display()}"
        return "LoRA adapter"

    @property
    def folder(self) -> Path:
        """Where the verified files are; it exists only once the export is done."""
        return self.run.output_dir / "exports" / f"export-{self.pk}"

    @property
    def temp_folder(self) -> Path:
        return self.run.output_dir / "exports" / f".export-{self.pk}.tmp"

    @property
    def base_name(self) -> str:
        return f"slmlab-run-{self.run_id}-{self.kind}" + (
            f"-{self.quant}" if self.kind == self.Kind.GGUF else ""
        )

    @property
    def gguf_path(self) -> Path:
        return self.folder / f"{self.base_name}.gguf"

    @property
    def downloadable(self) -> bool:
        return self.status == self.Status.DONE and self.folder.is_dir()

    @property
    def near_ties(self) -> int:
        """Check prompts whose answers parted from the reference only at a near tie."""
        prompts = (self.verification or {}).get("prompts") or []
        return sum(p.get("near_tie_at") is not None for p in prompts)

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.DONE else round(100 * self.progress)

    def remove_files(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self.temp_folder, ignore_errors=True)


class HubToken(models.Model):
    """A user's Hugging Face access token, encrypted at rest (see exports.secrets)."""

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hub_token"
    )
    encrypted = models.BinaryField()
    hint = models.CharField(max_length=20, help_text=_("The token's last characters."))
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Hub token …{self.hint} of {self.owner}"


class HubPush(Job):
    """One export pushed to a Hub repository with a generated model card."""

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="pushes")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hub_pushes"
    )
    repo_id = models.CharField(max_length=200)
    private = models.BooleanField(default=True)
    url = models.URLField(blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"push of export {self.export_id} to {self.repo_id}"
