import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from training.engine.config import ConfigError, RunConfig
from training.engine.data.records import DatasetError
from training.engine.train.loop import StepMetrics, TrainHooks, train


class Command(BaseCommand):
    help = "Fine-tune from a run YAML file (the same schema the run form exports), in this process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--config", required=True, help="path to run.yaml")

    def handle(self, *args, config: str, **options) -> None:
        try:
            run_config = RunConfig.read_yaml(config)
            run_config.validate()
        except (OSError, ConfigError) as exc:
            raise CommandError(f"{config}: {exc}") from exc

        def on_metrics(m: StepMetrics) -> None:
            self.stdout.write(
                f"step {m.step}/{m.total_steps} loss {m.loss:.4f} lr {m.learning_rate:.2e} "
                f"{m.tokens_per_second:.0f} tok/s eta {m.eta_s:.0f}s rss {m.cpu_rss_mb:.0f} MB"
            )

        try:
            result = train(run_config, TrainHooks(on_metrics=on_metrics, on_log=self.stdout.write))
        except DatasetError as exc:
            raise CommandError(f"dataset {run_config.dataset_path}:\n{exc}") from exc
        self.stdout.write(json.dumps(asdict(result), indent=2))
