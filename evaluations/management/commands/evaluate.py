import contextlib
import json
from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError

from evaluations.judging import judge_config
from training.engine.data.records import DatasetError, DataSpec, read_dataset
from training.engine.data.split import split_rows
from training.engine.evaluate import run as engine_eval
from training.engine.evaluate.metrics import DEFAULT_METRICS, MetricError, MetricSettings
from training.engine.inference.chat import ChatModel
from training.engine.inference.generate import GenerationSettings

EXAMPLE = """\
model_dir: /path/to/model          # a model folder of the store
adapter_dir: /path/to/run/adapter  # optional: without it the model alone is scored
data: eval.jsonl                   # rows with expected outputs
format: jsonl                      # jsonl, json, csv or txt
shape: alpaca                      # alpaca, prompt_completion, messages, sharegpt
mapping: {}
template: model                    # model, alpaca or custom (as the run trained)
custom_template: ""
validation_ratio: 0                # > 0: evaluate on that held-out share of the rows
split_seed: 0
limit: 100
metrics: [exact_match, contains, rouge_l, valid_json, json_equal, length, loss]
# judge: also listable when SLMLAB_JUDGE_URL and SLMLAB_JUDGE_MODEL are set
ignore_case: false
regex: ""
max_new_tokens: 64
temperature: 0                     # > 0 samples, with top_p and seed
top_p: 1.0
seed: 0
max_seq_len: 512
"""


class Command(BaseCommand):
    help = "Evaluate a model (and its adapter) on examples with expected outputs, in this process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--config", required=True, help="path to eval.yaml:\n" + EXAMPLE)

    def handle(self, *args, config: str, **options) -> None:
        try:
            settings = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
            spec = DataSpec(
                format=settings.get("format", "jsonl"),
                shape=settings.get("shape", "alpaca"),
                mapping=settings.get("mapping", {}),
                template=settings.get("template", "model"),
                custom_template=settings.get("custom_template", ""),
            )
            records = read_dataset(settings["data"], spec)
            ratio = float(settings.get("validation_ratio", 0))
            if ratio:
                records = split_rows(records, ratio, int(settings.get("split_seed", 0)))[1]
            records = records[: int(settings.get("limit", 100))]
            metrics = MetricSettings(
                names=list(settings.get("metrics", [*DEFAULT_METRICS, "loss"])),
                ignore_case=bool(settings.get("ignore_case", False)),
                regex=str(settings.get("regex", "")),
                judge=judge_config(),  # SLMLAB_JUDGE_* from the environment, if set
            )
            metrics.check()
        except (OSError, KeyError, ValueError, yaml.YAMLError, MetricError) as exc:
            raise CommandError(f"{config}: {exc}") from exc
        except DatasetError as exc:
            raise CommandError(f"{settings.get('data')}:\n{exc}") from exc
        adapter = settings.get("adapter_dir") or None
        chat = ChatModel(
            settings["model_dir"],
            adapter,
            template=spec.template,
            custom_template=spec.custom_template,
        )
        try:
            examples = engine_eval.build_examples(
                chat.tokenizer, records, spec.template, spec.custom_template
            )
        except engine_eval.EvalError as exc:
            raise CommandError(str(exc)) from exc
        report = engine_eval.evaluate(
            chat.model,
            chat.tokenizer,
            examples,
            metrics,
            GenerationSettings(
                max_new_tokens=int(settings.get("max_new_tokens", 64)),
                temperature=float(settings.get("temperature", 0)),
                top_p=float(settings.get("top_p", 1.0)),
                seed=int(settings.get("seed", 0)),
            ),
            has_adapter=chat.has_adapter,
            adapter_off=chat.model.disable_adapter if chat.has_adapter else contextlib.nullcontext,
            template=spec.template,
            custom_template=spec.custom_template,
            max_seq_len=int(settings.get("max_seq_len", 512)),
            hooks=engine_eval.EvalHooks(
                on_progress=lambda phase, done, total: self.stderr.write(f"{phase}: {done}/{total}")
            ),
        )
        self.stdout.write(
            json.dumps({"summary": report.summary, "examples": report.rows}, indent=2)
        )
