import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from projects.models import BaseModel
from training.engine.models.arch import read_model_facts
from training.engine.models.folders import SAFE_SUFFIXES, ModelStoreError, check_safe_model_dir


class Command(BaseCommand):
    help = (
        "Import a local model folder (safetensors only, no pickle files, no custom code) "
        "into the model store and make it available to everyone."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("folder", help="a Hugging Face model folder")
        parser.add_argument("--name", help="name in the catalog (default: the folder's name)")
        parser.add_argument("--licence", default="", help="licence shown in the catalog")

    def handle(self, *args, folder: str, name: str | None, licence: str, **options) -> None:
        source = Path(folder).expanduser().resolve()
        name = name or source.name
        try:
            check_safe_model_dir(source)
            facts = read_model_facts(source)
        except ModelStoreError as exc:
            raise CommandError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise CommandError(f"{source} has no config.json: is it a model folder?") from exc
        except ValueError as exc:
            raise CommandError(
                f"{source}/config.json is not a decoder config we know: {exc}"
            ) from exc
        if facts.custom_code:
            self.stderr.write("note: the model declares custom code (auto_map); it will not run")
        if not any(source.glob("tokenizer*")):
            raise CommandError(f"{source} has no tokenizer files (tokenizer.json or similar)")
        if BaseModel.objects.filter(name=name).exists():
            raise CommandError(f"a model called {name!r} is already in the store")

        target = Path(settings.MODEL_STORE_DIR) / name
        if target.exists():
            raise CommandError(f"{target} already exists")
        tmp = target.parent / f".{name}.import-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            for path in source.iterdir():
                if path.is_file() and path.suffix.lower() in SAFE_SUFFIXES:
                    shutil.copy2(path, tmp / path.name)
            with transaction.atomic():
                tmp.rename(target)
                model = BaseModel.objects.create(
                    name=name,
                    path=str(target),
                    source=BaseModel.Source.LOCAL,
                    licence=licence,
                    **BaseModel.facts_of(target),
                )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if target.exists() and not BaseModel.objects.filter(name=name).exists():
                shutil.rmtree(target, ignore_errors=True)
            raise
        self.stdout.write(
            self.style.SUCCESS(
                f"imported {model.name} ({model.parameters / 1e6:.0f}M parameters) to {target}"
            )
        )
