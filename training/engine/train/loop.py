"""QLoRA/LoRA fine-tuning with a compact, explicit training loop.

The loop is hand-written rather than ``transformers.Trainer`` so that metrics,
cancellation and token accounting are exactly what the lab shows: loss is the
mean over trained tokens across the whole accumulation window, and throughput
counts real (non-pad) tokens only. A run's state lives on one :class:`Trainer`;
each optimizer step, evaluation and checkpoint is one of its methods.
"""

from __future__ import annotations

import gc
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from training.engine.config import ConfigError, RunConfig
from training.engine.data.pipeline import examples_for_run, records_for_run
from training.engine.data.tokenize import Example
from training.engine.devices import DeviceReport, Precision, check_support, resolve_precision
from training.engine.evaluate.loss import evaluation_loss
from training.engine.models import store
from training.engine.train import checkpoint, hardware, speed, threads
from training.engine.train.batches import Batch, count_real, count_trained, make_batch, summed_loss
from training.engine.train.checkpoint import Checkpoint
from training.engine.train.lora import attach_lora
from training.engine.train.outcome import Outcome
from training.engine.train.process import gpu_memory_mb, memory_mb, reset_peak_memory


@dataclass(frozen=True)
class StepMetrics:
    """What the run page shows after each optimizer step."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    learning_rate: float
    tokens: int
    tokens_per_second: float
    elapsed_s: float
    eta_s: float
    cpu_rss_mb: float
    cpu_peak_rss_mb: float
    gpu_mem_mb: float | None
    gpu_peak_mb: float | None
    grad_norm: float


@dataclass(frozen=True)
class TrainResult:
    """How :func:`train` ended; also written to ``output_dir/train_result.json``."""

    status: Outcome
    steps: int
    final_loss: float | None
    train_tokens: int
    tokens_per_second: float
    peak_rss_mb: float
    peak_gpu_mb: float | None
    adapter_dir: str | None
    elapsed_s: float
    eval_loss: float | None = None  # the last validation loss, when the run has validation data
    precision: str = ""  # what the run trained in, and why ("auto" resolved on its device)
    optimizer_state_mb: float | None = None  # the optimizer's state tensors after the last step


@dataclass
class TrainHooks:
    """How a caller follows and steers a run; every hook is optional.

    ``should_stop`` is polled before every micro-batch and answers None (go on) or the
    :class:`Outcome` to stop with: CANCELLED, INTERRUPTED or LOST. ``on_eval`` gets
    (step, validation loss) after each evaluation; step 0 is the model before training
    (the base model: fresh LoRA adapters change nothing yet).
    """

    on_metrics: Callable[[StepMetrics], None] | None = None
    on_log: Callable[[str], None] | None = None
    should_stop: Callable[[], Outcome | None] | None = None
    on_eval: Callable[[int, float], None] | None = None

    def log(self, line: str) -> None:
        if self.on_log is not None:
            self.on_log(line)


def train(
    config: RunConfig, hooks: TrainHooks | None = None, resume_from: Checkpoint | None = None
) -> TrainResult:
    """Fine-tune ``config.model_dir`` on ``config.dataset_path`` and save a LoRA adapter.

    With ``resume_from`` the run goes on from that checkpoint exactly as if it had
    never stopped: same data order, same dropout masks, same optimizer state.
    """
    config.validate()
    hooks = hooks or TrainHooks()
    reset_peak_memory()  # this run's peak, not the worker's or its parent's
    configure_threads()
    seed_everything(config.seed)
    report = hardware.this_device()
    device = report.kind
    precision = check_device(config, report)
    hooks.log(f"precision: {precision.label} ({precision.reason})")

    hooks.log("reading the dataset…")
    records, validation = records_for_run(config)
    hooks.log(f"loading the model ({config.quantization}) on {device}: {report.name}…")
    compute_dtype = config.resolved_compute_dtype(device == "cuda", report.bf16)
    model, tokenizer = store.load_model_and_tokenizer(
        Path(config.model_dir),
        quantization=config.quantization,  # type: ignore[arg-type]
        quant_type=config.quant_type,  # type: ignore[arg-type]
        double_quant=config.double_quant,
        compute_dtype=compute_dtype,  # type: ignore[arg-type]
        device=device,
        attn_implementation=speed.attention_implementation(device, compute_dtype),
    )
    examples, dropped = examples_for_run(tokenizer, records, config)
    hooks.log(f"{len(examples)} training examples ({dropped} dropped: nothing left to train)")
    if not examples:
        raise ConfigError({"max_seq_len": "too short: every example lost all its answer tokens"})
    val_examples, _ = examples_for_run(tokenizer, validation, config)
    if config.has_validation:
        hooks.log(
            f"validation: {len(validation)} rows, {len(val_examples)} examples"
            + ("" if val_examples else " (none has a trained token left: no validation loss)")
        )

    model = attach_lora(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    hooks.log(f"trainable params: {trainable:,} / {total:,} ({100 * trainable / total:.3f}%)")
    trainer = Trainer(model, tokenizer, examples, config, device, hooks, val_examples)
    trainer.precision = f"{precision.label} ({precision.reason})"
    if resume_from is not None:
        trainer.resume(resume_from)
    return trainer.run()


def check_device(config: RunConfig, device: DeviceReport) -> Precision:
    """The run's precision on ``device``; :class:`ConfigError` for a setting it cannot run
    (the form refuses these first, from the worker's report; this is the worker's word)."""
    errors = check_support(config, device)
    if errors:
        raise ConfigError(errors)
    return resolve_precision(config.autocast, config.quantization, device)


def configure_threads() -> None:
    """Use every core this process may run on that others leave free (see .threads)."""
    threads.configure()


def seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def iterate_batches(
    examples: list[Example], batch_size: int, seed: int
) -> Iterator[tuple[int, list[Example]]]:
    """Endless (epoch, batch) stream; each epoch is a fresh seeded permutation."""
    epoch = 0
    while True:
        generator = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            yield epoch, [examples[i] for i in order[start : start + batch_size]]
        epoch += 1


class OutOfMemory(RuntimeError):
    """A step did not fit in memory even one example at a time; says what to change."""


# What PyTorch's CPU allocator, CUDA and oneDNN (a CPU kernel that cannot get its
# scratch memory) say when an allocation fails.
OUT_OF_MEMORY_TEXTS = (
    "can't allocate memory",
    "not enough memory",
    "out of memory",
    "could not create a primitive",
)


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(t in text for t in OUT_OF_MEMORY_TEXTS)


def uses_loss_scaling(config: RunConfig, device: str) -> bool:
    return device == "cuda" and (
        config.autocast == "float16" or config.resolved_compute_dtype(True, False) == "float16"
    )


def split_examples(examples: list[Example], pieces: int) -> list[list[Example]]:
    """``examples`` in ``pieces`` consecutive parts as even as can be (none empty)."""
    size = math.ceil(len(examples) / pieces)
    return [examples[i : i + size] for i in range(0, len(examples), size)]


def plan_steps(config: RunConfig, n_examples: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps)."""
    batches_per_epoch = math.ceil(n_examples / config.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total = config.max_steps or config.epochs * steps_per_epoch
    return steps_per_epoch, total


BNB_OPTIMIZER_CLASSES = {
    "adamw8bit": "AdamW8bit",
    "paged_adamw8bit": "PagedAdamW8bit",
    "paged_adamw32bit": "PagedAdamW32bit",
}


def build_optimizer(params: list[torch.nn.Parameter], config: RunConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay
        )
    if config.optimizer in BNB_OPTIMIZER_CLASSES:
        import bitsandbytes as bnb

        # Off CUDA bitsandbytes pages nothing and warns on every tensor's first step;
        # the run log says it once (see Trainer.__init__).
        warnings.filterwarnings("ignore", "Paged optimizers are not supported", UserWarning)
        optimizer_class = getattr(bnb.optim, BNB_OPTIMIZER_CLASSES[config.optimizer])
        return optimizer_class(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    # fused: one kernel for all LoRA tensors instead of a dozen small ops per tensor.
    return torch.optim.AdamW(
        params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )


def optimizer_state_mb(optimizer: torch.optim.Optimizer) -> float:
    """MB held by the optimizer's state tensors (moments, 8-bit block scales, quant maps)."""
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total / 2**20


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """Clip when ``max_norm`` > 0; always return the pre-clipping global norm."""
    limit = max_norm if max_norm > 0 else float("inf")
    return float(torch.nn.utils.clip_grad_norm_(params, limit))


class Clock:
    """Throughput and ETA over training time only (model loading excluded).

    A resumed run carries on the clock and token count saved in its checkpoint.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.tokens = 0

    def carry_on(self, elapsed_s: float, tokens: int) -> None:
        self.start = time.perf_counter() - elapsed_s
        self.tokens = tokens

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` (spent evaluating) out of training time."""
        self.start += seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def tokens_per_second(self) -> float:
        elapsed = self.elapsed()
        return self.tokens / elapsed if elapsed > 0 else 0.0


@dataclass
class Position:
    """Where a run is: what a checkpoint saves and a stop mid-window goes back to."""

    step: int = 0
    micro_seen: int = 0  # micro-batches consumed: the position in the seeded data order
    tokens: int = 0  # real tokens trained on so far
    rng: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """One run's training state: model, optimizer, schedule, data position and clock."""

    # Where a completed run's weights go under ``output_dir``, and what the log calls them.
    saved_folder = "adapter"
    saved_what = "adapter"
    # peft: adapter weights and config only (the base embeddings never change here)
    save_options: dict[str, Any] = {"save_embedding_layers": False}

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        examples: list[Example],
        config: RunConfig,
        device: str,
        hooks: TrainHooks,
        val_examples: list[Example] | None = None,
    ) -> None:
        from transformers import get_scheduler

        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.device, self.hooks = device, hooks
        self.examples, self.val_examples = examples, val_examples or []
        self.steps_per_epoch, self.total_steps = plan_steps(config, len(examples))
        self.micro_per_epoch = math.ceil(len(examples) / config.batch_size)
        self.eval_every = config.eval_interval(self.total_steps)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, config)
        self.scheduler = get_scheduler(
            config.lr_scheduler,
            self.optimizer,
            num_warmup_steps=config.warmup_for(self.total_steps),
            num_training_steps=self.total_steps,
        )
        if config.optimizer.startswith("paged_") and device != "cuda":
            hooks.log(f"{config.optimizer}: paging needs CUDA; on {device} it runs unpaged")
        # fp16's narrow range: scale the loss so small gradients do not flush to zero.
        self.scaler = torch.amp.GradScaler("cuda", enabled=uses_loss_scaling(config, device))
        self.precision = ""
        self.batches = iterate_batches(examples, config.batch_size, config.seed)
        self.pad_id = tokenizer.pad_token_id
        self.clock = Clock()
        self.step = 0
        self.micro_seen = 0
        self.loss: float | None = None  # of the last finished step
        self.learning_rate = 0.0  # that step's
        self.eval_loss: float | None = None
        self.saved_step: int | None = None  # the step of the newest checkpoint written
        self.resumed = False
        # The position after the last finished step: where a stop mid-step goes back to.
        self.window_start = Position()
        # Each micro-batch is cut into this many pieces (doubled at each out-of-memory).
        self.split = 1

    # --- the run ---

    def run(self) -> TrainResult:
        """Optimizer steps until done or stopped; evaluations and checkpoints on the way."""
        if not self.resumed:
            self.evaluate(0)
        self.model.train()
        self.hooks.log(f"training {self.total_steps} steps ({self.steps_per_epoch} per epoch)…")
        stop: Outcome | None = None
        while self.step < self.total_steps and stop is None:
            stop = self.train_step() or self.after_step()
        stopped_to_resume = stop in (Outcome.INTERRUPTED, Outcome.TIMED_OUT)
        if stopped_to_resume and self.step > 0 and self.saved_step != self.step:
            self.save_checkpoint(self.window_start)
        return self.finish(stop or Outcome.COMPLETED)

    def train_step(self) -> Outcome | None:
        """One optimizer step over an accumulation window; the stop answer if it was cut.

        Out of memory, the window is trained again with every micro-batch cut in half
        (twice the accumulation: the same effective batch, the same mean loss), down to
        micro-batches of one example.
        """
        self.window_start = self.position()
        window = self.next_window()
        self.micro_seen += len(window)
        while True:
            try:
                return self._train_window(window)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                reason = f"{type(exc).__name__}: {exc}"
            # Out of the except block: the failed attempt's tensors, which its traceback
            # held, are freed before the next one.
            self._back_off(reason)

    def _train_window(self, window: list[list[Example]]) -> Outcome | None:
        batches = [
            make_batch(piece, self.config, self.pad_id)
            for examples in window
            for piece in split_examples(examples, self.split)
        ]
        trained = sum(count_trained(b) for b in batches)
        loss = 0.0
        for batch in batches:
            stop = self.poll_stop()
            if stop is not None:
                # The half-done window is dropped: a resume trains it again from its start.
                self.micro_seen, self.clock.tokens = (
                    self.window_start.micro_seen,
                    self.window_start.tokens,
                )
                self.optimizer.zero_grad(set_to_none=True)
                return stop
            loss += self._loss_step(batch, trained)
        self.scaler.unscale_(self.optimizer)  # clip the true gradients (no-op without fp16)
        grad_norm = clip_gradients(self.params, self.config.max_grad_norm)
        learning_rate = self.scheduler.get_last_lr()[0]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.loss, self.learning_rate = loss, learning_rate
        self.report(sum(count_real(b) for b in batches), grad_norm)
        return None

    def _back_off(self, reason: str) -> None:
        """Forget the failed window's gradients and halve the micro-batch, or give up."""
        self.optimizer.zero_grad(set_to_none=True)
        self.clock.tokens = self.window_start.tokens
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        micro = math.ceil(self.config.batch_size / self.split)
        _, peak = memory_mb()
        if micro <= 1:
            gpu = (
                f", {gpu_memory_mb()[1]:.0f} MB of GPU memory" if torch.cuda.is_available() else ""
            )
            raise OutOfMemory(
                f"out of memory at step {self.step + 1} even with micro-batches of one "
                f"example (peak {peak:.0f} MB of RAM{gpu}): lower the sequence length, "
                "quantize to 4-bit, use a smaller model or a worker with more memory"
            )
        self.split *= 2
        smaller = math.ceil(self.config.batch_size / self.split)
        self.hooks.log(
            f"out of memory at step {self.step + 1} with micro-batches of {micro} "
            f"(peak {peak:.0f} MB): training the step again as micro-batches of {smaller} "
            f"and gradient accumulation {self.config.grad_accum * self.split} (the same "
            "effective batch)"
        )

    def _loss_step(self, batch: Batch, window_trained: int) -> float:
        """Forward and backward of one micro-batch; its share of the window's mean loss."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        part = summed_loss(self.model, batch) / max(window_trained, 1)
        self.scaler.scale(part).backward()
        self.clock.tokens += count_real(batch)
        return float(part.detach())

    def after_step(self) -> Outcome | None:
        """Log, evaluate, stop at the time limit, checkpoint: what follows a finished step."""
        step, total, config = self.step, self.total_steps, self.config
        if step % config.log_every == 0 or step == total:
            self.hooks.log(f"step {step}/{total} loss {self.loss:.4f} lr {self.learning_rate:.2e}")
        if step % self.eval_every == 0 or step == total:
            self.eval_loss = self.evaluate(step)
        if step >= total:
            return None
        if config.time_limit_s and self.clock.elapsed() >= config.time_limit_s:
            limit = config.time_limit_s
            self.hooks.log(f"time limit of {limit:.0f} s reached at step {step}/{total}")
            self.window_start = self.position()
            return Outcome.TIMED_OUT
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            self.save_checkpoint(self.position())
        return None

    def next_window(self) -> list[list[Example]]:
        """The examples of each micro-batch of one optimizer step.

        An accumulation window never spans two epochs, so with ``epochs`` the last step
        of an epoch may hold fewer micro-batches (like the usual Trainer behaviour).
        """
        left_in_epoch = self.micro_per_epoch - (self.micro_seen % self.micro_per_epoch)
        size = min(self.config.grad_accum, left_in_epoch)
        return [next(self.batches)[1] for _ in range(size)]

    def poll_stop(self) -> Outcome | None:
        return self.hooks.should_stop() if self.hooks.should_stop is not None else None

    def report(self, real_tokens: int, grad_norm: float) -> None:
        if self.hooks.on_metrics is None:
            return
        elapsed = self.clock.elapsed()
        rss, peak = memory_mb()
        gpu, gpu_peak = gpu_memory_mb()
        self.hooks.on_metrics(
            StepMetrics(
                step=self.step,
                total_steps=self.total_steps,
                epoch=self.micro_seen / self.micro_per_epoch,
                loss=self.loss,
                learning_rate=self.learning_rate,
                tokens=real_tokens,
                tokens_per_second=self.clock.tokens_per_second(),
                elapsed_s=elapsed,
                eta_s=elapsed / self.step * (self.total_steps - self.step),
                cpu_rss_mb=rss,
                cpu_peak_rss_mb=peak,
                gpu_mem_mb=gpu,
                gpu_peak_mb=gpu_peak,
                grad_norm=grad_norm,
            )
        )

    def evaluate(self, at_step: int) -> float | None:
        """Held-out loss without dropout; its time is kept out of tokens/s and the ETA."""
        if not self.val_examples:
            return None
        began = time.perf_counter()
        result = evaluation_loss(
            self.model, self.val_examples, self.pad_id, batch_size=self.config.batch_size
        )
        self.clock.pause(time.perf_counter() - began)
        self.hooks.log(
            f"validation loss {result.loss:.4f} (perplexity {result.perplexity:.2f}) "
            f"at step {at_step}, over {result.tokens:,} tokens"
        )
        if self.hooks.on_eval is not None:
            self.hooks.on_eval(at_step, result.loss)
        return result.loss

    # --- checkpoints ---

    def position(self) -> Position:
        # torch's generators, and the LoRA dropout mask generator (see .speed)
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        rng["dropout"] = speed.dropout_state(self.model)
        return Position(self.step, self.micro_seen, self.clock.tokens, rng)

    def save_checkpoint(self, at: Position) -> None:
        """Adapter, optimizer, scheduler and RNG as they were at ``at`` (a step boundary)."""

        def write_files(folder: Path) -> None:
            self.model.save_pretrained(folder, **self.save_options)
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), folder / "scheduler.pt")
            torch.save(at.rng, folder / "rng.pt")

        saved = checkpoint.write(
            self.config.output_dir,
            self.step,
            write_files,
            state={
                "micro_seen": at.micro_seen,
                "loss": self.loss,
                "tokens": at.tokens,
                "elapsed_s": self.clock.elapsed(),
                "total_steps": self.total_steps,
                "config": self.config.to_dict(),
            },
            keep=self.config.keep_checkpoints,
        )
        self.saved_step = self.step
        self.hooks.log(f"checkpoint {saved.path.name} saved")

    def resume(self, saved: Checkpoint) -> None:
        """Adapter weights, optimizer, scheduler, RNG and data position from ``saved``."""
        checkpoint.check_compatible(saved, self.config.to_dict())
        self.load_weights(saved)
        self.optimizer.load_state_dict(torch.load(saved.path / "optimizer.pt", weights_only=True))
        self.scheduler.load_state_dict(torch.load(saved.path / "scheduler.pt", weights_only=True))
        rng = torch.load(saved.path / "rng.pt", weights_only=True)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        speed.set_dropout_state(self.model, rng.get("dropout"))
        state = checkpoint.read_state(saved)
        self.step, self.micro_seen, self.loss = state["step"], state["micro_seen"], state["loss"]
        self.clock.carry_on(state["elapsed_s"], state["tokens"])
        for _ in range(self.micro_seen):  # the data position: the same seeded order, replayed
            next(self.batches)
        self.saved_step = self.step
        self.resumed = True
        self.hooks.log(
            f"resumed from checkpoint {saved.path.name} at step {self.step}/{self.total_steps}"
        )

    def load_weights(self, saved: Checkpoint) -> None:
        """The trained weights from a checkpoint: the LoRA adapter's."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(saved.path / "adapter_model.safetensors")
        result = set_peft_model_state_dict(self.model, weights)
        if getattr(result, "unexpected_keys", []):
            raise checkpoint.CheckpointError(f"checkpoint {saved.path.name} has unknown weights")

    # --- the end ---

    def finish(self, outcome: Outcome) -> TrainResult:
        """Save the adapter (completed or time-limited runs) and write ``train_result.json``."""
        output_dir = Path(self.config.output_dir)
        adapter_dir: Path | None = None
        if outcome.saves_adapter:
            adapter_dir = output_dir / self.saved_folder
            self.model.save_pretrained(adapter_dir, **self.save_options)
            self.tokenizer.save_pretrained(adapter_dir)
            self.hooks.log(f"{self.saved_what} saved")
        elif outcome == Outcome.CANCELLED:
            self.hooks.log(f"cancelled after {self.step} steps; no adapter saved")
        elif outcome == Outcome.INTERRUPTED:
            self.hooks.log(f"stopped at step {self.step} to resume later")
        _, peak = memory_mb()
        result = TrainResult(
            status=outcome,
            steps=self.step,
            final_loss=self.loss,
            train_tokens=self.clock.tokens,
            tokens_per_second=self.clock.tokens_per_second(),
            peak_rss_mb=peak,
            peak_gpu_mb=gpu_memory_mb()[1],
            adapter_dir=str(adapter_dir) if adapter_dir else None,
            elapsed_s=self.clock.elapsed(),
            eval_loss=self.eval_loss,
            precision=self.precision,
            optimizer_state_mb=optimizer_state_mb(self.optimizer) if self.step else None,
        )
        if outcome != Outcome.LOST:  # the worker that owns the run now writes its own
            output_dir.mkdir(parents=True, exist_ok=True)
            payload = {"result": asdict(result), "config": self.config.to_dict()}
            (output_dir / "train_result.json").write_text(json.dumps(payload, indent=2))
        return result
