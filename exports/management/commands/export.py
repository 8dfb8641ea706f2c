import json

from django.core.management.base import BaseCommand, CommandError

from exports import services
from exports.jobs.export import run_export
from exports.models import Export
from training.models import Run

KINDS = ("adapter", "merged", "gguf")
QUANTS = ("f16", "q8_0", "q4_0", "q4_k_m")
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class Command(BaseCommand):
    help = (
        "Export a completed run (adapter, merged safetensors or GGUF) in this process, "
        "verified like an export from the run page; it is listed on the page too."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--run", type=int, required=True, help="run id")
        parser.add_argument("--kind", choices=KINDS, required=True)
        parser.add_argument("--quant", choices=QUANTS, default="q8_0", help="GGUF type")
        parser.add_argument("--dtype", choices=tuple(DTYPES), default="bf16", help="merged")

    def handle(self, *args, run: int, kind: str, quant: str, dtype: str, **options) -> None:
        found = Run.objects.filter(pk=run).first()
        if found is None:
            raise CommandError(f"no run {run}")
        try:
            export = services.create_export(
                found, kind, dtype=DTYPES[dtype], quant=quant, enqueue=False
            )
        except services.ExportRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"export {export.pk}: {export.label} of run {run}")
        run_export(export.pk)
        export = Export.objects.get(pk=export.pk)
        self.stdout.write(json.dumps(export.verification, indent=2, ensure_ascii=False))
        if export.status != Export.Status.DONE:
            raise CommandError(f"export {export.pk} {export.status}: {export.error}")
        self.stdout.write(f"verified: {export.folder} ({export.size_bytes} bytes)")
