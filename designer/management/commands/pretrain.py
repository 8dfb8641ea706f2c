"""``manage.py pretrain --config design.yaml --data corpus.txt``: the design page's
pretraining from a terminal, with the same engine (``training.engine.design.pretrain``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from designer.jobs.tokenizer import dataset_texts
from training.engine.data.formats import FORMATS, TEXT_SPLITS
from training.engine.design import counts
from training.engine.design import tokenizer as design_tokenizer
from training.engine.design.document import read_design_file
from training.engine.design.pretrain import PretrainSettings, pretrain
from training.engine.train import checkpoint
from training.engine.train.loop import StepMetrics, TrainHooks


class Command(BaseCommand):
    help = (
        "Pretrain a design (the YAML the designer exports) from random weights on a text "
        "file, in this process; the model lands in OUT/model."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--config", required=True, help="design.yaml, as the editor exports")
        parser.add_argument("--data", required=True, help="the texts to pretrain on")
        parser.add_argument("--format", default="txt", choices=FORMATS, help="of --data")
        parser.add_argument(
            "--text-split", default="blank_line", choices=TEXT_SPLITS, help="texts of a .txt"
        )
        parser.add_argument("--validation", help="validation texts (default: a held-out share)")
        parser.add_argument("--out", required=True, help="output folder")
        parser.add_argument(
            "--tokenizer",
            help="a tokenizer folder (as the designer trains); default: train a byte-level "
            "BPE of the design's vocabulary size on --data into OUT/tokenizer",
        )
        parser.add_argument("--steps", type=int, default=300)
        parser.add_argument("--batch-size", type=int, help="default: the design file's")
        parser.add_argument("--sequence-length", type=int, help="default: the design file's")
        parser.add_argument("--lr", type=float, default=3e-3)
        parser.add_argument("--sample-every", type=int, default=50)
        parser.add_argument("--sample-prompt", default="It was sunny.")
        parser.add_argument("--checkpoint-every", type=int, default=100)
        parser.add_argument("--time-limit", type=float, default=0.0, help="seconds; 0: none")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--resume", action="store_true", help="go on from OUT's newest checkpoint"
        )

    def handle(self, *args, **options) -> None:
        try:
            document = read_design_file(options["config"])
        except (OSError, ValueError) as exc:
            raise CommandError(f"{options['config']}: {exc}") from exc
        settings = PretrainSettings(
            steps=options["steps"],
            batch_size=options["batch_size"] or document.batch_size,
            sequence_length=options["sequence_length"] or document.sequence_length,
            learning_rate=options["lr"],
            sample_every=options["sample_every"],
            sample_prompt=options["sample_prompt"],
            checkpoint_every=options["checkpoint_every"],
            time_limit_s=options["time_limit"],
            seed=options["seed"],
        )
        errors = counts.check(
            document.design,
            batch_size=settings.batch_size,
            sequence_length=settings.sequence_length,
        )
        if errors:
            raise CommandError(
                "the design is not valid:\n"
                + "\n".join(f"  {field}: {message}" for field, message in errors.items())
            )
        texts = self.read(options["data"], options)
        validation = self.read(options["validation"], options) if options["validation"] else None
        out = Path(options["out"])
        tokenizer_dir = self.tokenizer(options["tokenizer"], texts, document.design, out)
        saved = checkpoint.latest(out) if options["resume"] else None
        if options["resume"] and saved is None:
            raise CommandError(f"{out} has no complete checkpoint to resume from")

        def on_metrics(m: StepMetrics) -> None:
            self.stdout.write(
                f"step {m.step}/{m.total_steps} loss {m.loss:.4f} "
                f"{m.tokens_per_second:.0f} tok/s eta {m.eta_s:.0f}s rss {m.cpu_rss_mb:.0f} MB"
            )

        try:
            result = pretrain(
                document.design,
                tokenizer_dir,
                texts,
                out,
                settings,
                validation=validation,
                hooks=TrainHooks(on_metrics=on_metrics, on_log=self.stdout.write),
                resume_from=saved,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(asdict(result), indent=2))

    def read(self, path: str, options: dict) -> list[str]:
        try:
            texts = dataset_texts(path, options["format"], options["text_split"])
        except OSError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        if not texts:
            raise CommandError(f"{path}: no text found")
        return texts

    def tokenizer(self, given: str | None, texts: list[str], design, out: Path) -> Path:
        if given:
            if not (Path(given) / "tokenizer.json").exists():
                raise CommandError(f"{given}: not a tokenizer folder (no tokenizer.json)")
            return Path(given)
        folder = out / "tokenizer"
        if not (folder / "tokenizer.json").exists():
            self.stdout.write(f"training a {design.vocab_size}-token BPE tokenizer…")
            design_tokenizer.train_tokenizer(
                texts, design.vocab_size, folder, context_length=design.context_length
            )
        return folder
