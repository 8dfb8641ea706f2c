"""QLoRA/LoRA fine-tuning with a compact, explicit training loop.

The loop is hand-written rather than ``transformers.Trainer`` so that metrics,
cancellation and token accounting are exactly what the lab shows: loss is the
mean over trained tokens across the whole accumulation window, and throughput
counts real (non-pad) tokens only.
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from training.engine import checkpoint, speed, store, threads
from training.engine.batches import (
    Batch,
    Example,
    collate,
    count_real,
    count_trained,
    make_batch,
    pack,
    summed_loss,
)
from training.engine.checkpoint import Checkpoint
from training.engine.config import ATTENTION_MODULES, ConfigError, RunConfig
from training.engine.data import DataSpec, load_examples, read_dataset
from training.engine.evaluate import evaluation_loss
from training.engine.stats import split_rows


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
    """Outcome of :func:`train`; also written to ``output_dir/train_result.json``."""

    # "completed"; "time_limit" (stopped at the run's time limit, adapter saved);
    # "cancelled"; "interrupted" (asked to stop: checkpointed to resume later);
    # "lost" (another worker took the run over: nothing written).
    status: str
    steps: int
    final_loss: float | None
    train_tokens: int
    tokens_per_second: float
    peak_rss_mb: float
    peak_gpu_mb: float | None
    adapter_dir: str | None
    elapsed_s: float
    eval_loss: float | None = None  # the last validation loss, when the run has validation data


# What ``should_stop`` may answer: nothing (go on), True or CANCEL (stop, keep
# nothing), SHUTDOWN (this worker is going away: checkpoint, resume elsewhere), LOST
# (the run is no longer ours: stop at once and write nothing).
CANCEL, SHUTDOWN, LOST = "cancel", "shutdown", "lost"
TIME_LIMIT = "time_limit"

MetricsCallback = Callable[[StepMetrics], None]
LogCallback = Callable[[str], None]
StopCallback = Callable[[], bool | str | None]
# Called with (step, validation loss) after each evaluation; step 0 is the model
# before training (the base model: fresh LoRA adapters change nothing yet).
EvalCallback = Callable[[int, float], None]

# Batch helpers live in training.engine.batches; callers and tests import them from here too.
__all__ = [
    "Batch",
    "Example",
    "StepMetrics",
    "TrainResult",
    "collate",
    "count_real",
    "count_trained",
    "make_batch",
    "pack",
    "summed_loss",
    "train",
]


def train(
    config: RunConfig,
    on_metrics: MetricsCallback | None = None,
    on_log: LogCallback | None = None,
    should_stop: StopCallback | None = None,
    resume_from: Checkpoint | None = None,
    on_eval: EvalCallback | None = None,
) -> TrainResult:
    """Fine-tune ``config.model_dir`` on ``config.dataset_path`` and save a LoRA adapter.

    ``should_stop`` is polled before every micro-batch (see CANCEL, SHUTDOWN, LOST).
    With ``resume_from`` the run goes on from that checkpoint exactly as if it had
    never stopped: same data order, same dropout masks, same optimizer state.
    """
    config.validate()
    log = on_log or (lambda _line: None)
    reset_peak_memory()  # this run's peak, not the worker's or its parent's
    configure_threads()
    seed_everything(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    log(f"reading dataset {config.dataset_path}…")
    rows, validation = split_for_run(config)
    log(f"loading model {config.model_dir} ({config.quantization}) on {device}…")
    compute_dtype = config.resolved_compute_dtype(
        device == "cuda", device == "cuda" and torch.cuda.is_bf16_supported()
    )
    model, tokenizer = store.load_model_and_tokenizer(
        Path(config.model_dir),
        quantization=config.quantization,  # type: ignore[arg-type]
        quant_type=config.quant_type,  # type: ignore[arg-type]
        double_quant=config.double_quant,
        compute_dtype=compute_dtype,  # type: ignore[arg-type]
        device=device,
    )
    examples, dropped = load_examples(tokenizer, rows, config)
    log(f"{len(examples)} training examples ({dropped} dropped: nothing left to train)")
    if not examples:
        raise ConfigError({"max_seq_len": "too short: every example lost all its answer tokens"})
    val_examples, _ = load_examples(tokenizer, validation, config)
    if config.has_validation:
        log(
            f"validation: {len(validation)} rows, {len(val_examples)} examples"
            + ("" if val_examples else " (none has a trained token left: no validation loss)")
        )

    model = attach_lora(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    log(f"trainable params: {trainable:,} / {total:,} ({100 * trainable / total:.3f}%)")
    return run_loop(
        model,
        tokenizer,
        examples,
        config,
        device,
        on_metrics,
        log,
        should_stop,
        resume_from,
        val_examples=val_examples,
        on_eval=on_eval,
    )


def split_for_run(config: RunConfig) -> tuple[list[Any], list[Any]]:
    """(training rows, validation rows): the validation file, or the seeded held-out share.

    The share is drawn as ``training.engine.stats.split_rows`` draws it, so a run holds
    out exactly the rows the dataset page counts.
    """
    spec = DataSpec.from_config(config)
    rows = read_dataset(config.dataset_path, spec)
    if config.validation_path:
        return rows, read_dataset(config.validation_path, spec)
    if config.validation_ratio > 0:
        return split_rows(rows, config.validation_ratio, config.split_seed)
    return rows, []


def configure_threads() -> None:
    """Use every core this process may run on that others leave free (see threads)."""
    threads.configure()


def seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def resolve_target_modules(model: torch.nn.Module, target: str | list[str]) -> list[str]:
    """Module names for a preset or explicit list, checked against the model's linear layers."""
    available = store.list_linear_module_names(model)
    if target == "all-linear":
        return available
    names = ATTENTION_MODULES if target == "attention" else list(target)
    missing = [n for n in names if n not in available]
    if missing:
        raise ConfigError(
            {
                "target_modules": f"not linear layers of this model: {', '.join(missing)} "
                f"(available: {', '.join(available)})"
            }
        )
    return names


def attach_lora(model: Any, config: RunConfig) -> Any:
    """Prepare a (possibly quantized) model and wrap it with fresh LoRA adapters.

    The adapters get the engine's speed optimisations (:mod:`training.engine.speed`).
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.quantization != "none":
        # Casts norms/embeddings to fp32 and freezes the base: needed for stable k-bit training.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
        keep_4bit_layout_for_training(model)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=resolve_target_modules(model, config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return speed.speed_up(get_peft_model(model, lora), config)


def keep_4bit_layout_for_training(model: Any) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference during an evaluation.

    On a CPU with avx512_bf16, a ``Linear4bit`` in eval mode under ``no_grad`` rewrites
    its weight once into an inference-only layout, and every later forward then takes
    a kernel without a backward: the training steps after the first validation loss
    would silently stop sending gradients through the base layers.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


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


def plan_steps(config: RunConfig, n_examples: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps)."""
    batches_per_epoch = math.ceil(n_examples / config.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total = config.max_steps or config.epochs * steps_per_epoch
    return steps_per_epoch, total


class _Clock:
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


def _stop_reason(should_stop: StopCallback | None) -> str | None:
    if should_stop is None:
        return None
    answer = should_stop()
    if answer is True:
        return CANCEL
    return answer or None


def run_loop(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    config: RunConfig,
    device: str,
    on_metrics: MetricsCallback | None,
    log: LogCallback,
    should_stop: StopCallback | None,
    resume_from: Checkpoint | None = None,
    val_examples: list[Example] | None = None,
    on_eval: EvalCallback | None = None,
) -> TrainResult:
    """Optimizer steps until done or stopped; evaluations and checkpoints on the way."""
    from transformers import get_scheduler

    steps_per_epoch, total_steps = plan_steps(config, len(examples))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, config)
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=math.ceil(config.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    batches = iterate_batches(examples, config.batch_size, config.seed)
    pad_id = tokenizer.pad_token_id
    micro_per_epoch = math.ceil(len(examples) / config.batch_size)
    clock = _Clock()
    step, micro_seen, loss = 0, 0, None
    saved_step: int | None = None
    if resume_from is not None:
        checkpoint.check_compatible(resume_from, config.to_dict())
        state = checkpoint.restore(resume_from, model, optimizer, scheduler)
        speed.set_dropout_state(model, state["rng"].get("dropout"))
        step, micro_seen, loss = state["step"], state["micro_seen"], state["loss"]
        clock.carry_on(state["elapsed_s"], state["tokens"])
        for _ in range(micro_seen):  # the data position: the same seeded order, replayed
            next(batches)
        saved_step = step
        log(f"resumed from checkpoint {resume_from.path.name} at step {step}/{total_steps}")

    def rng_now() -> dict[str, Any]:
        # torch's generators, and the LoRA dropout mask generator (training.engine.speed)
        return {**checkpoint.rng_state(), "dropout": speed.dropout_state(model)}

    def save_checkpoint(rng: dict[str, Any], micro: int) -> None:
        saved = checkpoint.save(
            config.output_dir,
            step=step,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            rng=rng,
            state={
                "micro_seen": micro,
                "loss": loss,
                "tokens": clock.tokens,
                "elapsed_s": clock.elapsed(),
                "total_steps": total_steps,
                "config": config.to_dict(),
            },
            keep=config.keep_checkpoints,
        )
        log(f"checkpoint {saved.path.name} saved")

    eval_every = config.eval_interval(total_steps)
    eval_loss: float | None = None

    def evaluate(at_step: int) -> float | None:
        # Held-out loss without dropout; its time is kept out of tokens/s and the ETA.
        if not val_examples:
            return None
        began = time.perf_counter()
        result = evaluation_loss(model, val_examples, pad_id, batch_size=config.batch_size)
        clock.pause(time.perf_counter() - began)
        log(
            f"validation loss {result.loss:.4f} (perplexity {result.perplexity:.2f}) "
            f"at step {at_step}, over {result.tokens:,} tokens"
        )
        if on_eval is not None:
            on_eval(at_step, result.loss)
        return result.loss

    if resume_from is None:
        evaluate(0)
    model.train()
    stop: str | None = None
    rng_at_window = rng_now()
    log(f"training {total_steps} steps ({steps_per_epoch} per epoch)…")
    while step < total_steps:
        # The state after the last finished step: where a stop mid-window goes back to.
        rng_at_window, micro_at_window, tokens_at_window = (
            rng_now(),
            micro_seen,
            clock.tokens,
        )
        window = next_window(batches, config, micro_seen, micro_per_epoch, pad_id)
        micro_seen += len(window)
        trained = sum(count_trained(b) for b in window)
        loss_sum = 0.0
        for batch in window:
            stop = _stop_reason(should_stop)
            if stop:
                break
            batch = {k: v.to(device) for k, v in batch.items()}
            part = summed_loss(model, batch) / max(trained, 1)
            part.backward()
            loss_sum += float(part.detach())
            clock.tokens += count_real(batch)
        if stop:
            micro_seen, clock.tokens = micro_at_window, tokens_at_window
            optimizer.zero_grad(set_to_none=True)
            break
        grad_norm = clip_gradients(params, config.max_grad_norm)
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss = loss_sum
        real_tokens = sum(count_real(b) for b in window)
        metrics = step_metrics(
            step,
            total_steps,
            micro_seen / micro_per_epoch,
            loss,
            learning_rate,
            real_tokens,
            clock,
            grad_norm,
        )
        if on_metrics is not None:
            on_metrics(metrics)
        if step % config.log_every == 0 or step == total_steps:
            log(f"step {step}/{total_steps} loss {loss:.4f} lr {learning_rate:.2e}")
        if step % eval_every == 0 or step == total_steps:
            eval_loss = evaluate(step)
        if step < total_steps and config.time_limit_s and clock.elapsed() >= config.time_limit_s:
            stop = TIME_LIMIT
            log(f"time limit of {config.time_limit_s:.0f} s reached at step {step}/{total_steps}")
            rng_at_window = rng_now()
            break
        if step < total_steps and config.checkpoint_every and step % config.checkpoint_every == 0:
            save_checkpoint(rng_now(), micro_seen)
            saved_step = step
    if stop in (SHUTDOWN, TIME_LIMIT) and step > 0 and saved_step != step:
        save_checkpoint(rng_at_window, micro_seen)
    return finish(model, tokenizer, config, step, loss, clock, stop, log, eval_loss)


def build_optimizer(params: list[torch.nn.Parameter], config: RunConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay
        )
    # fused: one kernel for all LoRA tensors instead of a dozen small ops per tensor.
    return torch.optim.AdamW(
        params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )


def next_window(
    batches: Iterator[tuple[int, list[Example]]],
    config: RunConfig,
    micro_seen: int,
    micro_per_epoch: int,
    pad_id: int,
) -> list[Batch]:
    """The micro-batches of one optimizer step, collated on the CPU.

    An accumulation window never spans two epochs, so with ``epochs`` the last step
    of an epoch may hold fewer micro-batches (like the usual Trainer behaviour).
    """
    left_in_epoch = micro_per_epoch - (micro_seen % micro_per_epoch)
    size = min(config.grad_accum, left_in_epoch)
    return [make_batch(next(batches)[1], config, pad_id) for _ in range(size)]


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """Clip when ``max_norm`` > 0; always return the pre-clipping global norm."""
    limit = max_norm if max_norm > 0 else float("inf")
    return float(torch.nn.utils.clip_grad_norm_(params, limit))


def step_metrics(
    step: int,
    total_steps: int,
    epoch: float,
    loss: float,
    learning_rate: float,
    tokens: int,
    clock: _Clock,
    grad_norm: float,
) -> StepMetrics:
    elapsed = clock.elapsed()
    rss, peak = memory_mb()
    gpu, gpu_peak = gpu_memory_mb()
    return StepMetrics(
        step=step,
        total_steps=total_steps,
        epoch=epoch,
        loss=loss,
        learning_rate=learning_rate,
        tokens=tokens,
        tokens_per_second=clock.tokens_per_second(),
        elapsed_s=elapsed,
        eta_s=elapsed / step * (total_steps - step),
        cpu_rss_mb=rss,
        cpu_peak_rss_mb=peak,
        gpu_mem_mb=gpu,
        gpu_peak_mb=gpu_peak,
        grad_norm=grad_norm,
    )


def reset_peak_memory() -> None:
    """Start counting this process's peak memory afresh: a run reports its own peak.

    ``ru_maxrss`` cannot be reset and is not even this process's own: exec records the
    replaced address space's high-water mark into it, so a child started by a big
    process (a test session, a parent that just converted a model) inherits that peak.
    Linux keeps a resettable high-water mark per address space instead (``VmHWM``);
    writing 5 to ``/proc/self/clear_refs`` sets it back to the current resident set.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # not Linux: the peak stays the process's lifetime peak
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB.

    The peak is the address space's high-water mark since exec or the last
    :func:`reset_peak_memory` (``VmHWM``); ``ru_maxrss`` only where /proc is missing.
    """
    status = _proc_status_mb(("VmRSS", "VmHWM"))
    if status:
        current, peak = status["VmRSS"], status["VmHWM"]
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        current = peak  # the best cheap estimate without /proc
    # The kernel updates its high-water mark lazily, so it can trail the current size.
    return current, max(peak, current)


def _proc_status_mb(keys: tuple[str, ...]) -> dict[str, float]:
    """Those ``/proc/self/status`` fields (kB there) in MiB; empty when unreadable."""
    found: dict[str, float] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in keys:
                    found[key] = int(value.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        return {}
    return found if len(found) == len(keys) else {}


def gpu_memory_mb() -> tuple[float | None, float | None]:
    if not torch.cuda.is_available():
        return None, None
    return torch.cuda.memory_allocated() / 2**20, torch.cuda.max_memory_allocated() / 2**20


def finish(
    model: Any,
    tokenizer: Any,
    config: RunConfig,
    step: int,
    loss: float | None,
    clock: _Clock,
    stop: str | None,
    log: LogCallback,
    eval_loss: float | None = None,
) -> TrainResult:
    """Save the adapter (completed or time-limited runs) and write ``train_result.json``."""
    status = {
        None: "completed",
        TIME_LIMIT: "time_limit",
        CANCEL: "cancelled",
        SHUTDOWN: "interrupted",
        LOST: "lost",
    }[stop]
    output_dir = Path(config.output_dir)
    adapter_dir: Path | None = None
    if status in ("completed", "time_limit"):
        adapter_dir = output_dir / "adapter"
        model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        log(f"saved adapter to {adapter_dir}")
    elif status == "cancelled":
        log(f"cancelled after {step} steps; no adapter saved")
    elif status == "interrupted":
        log(f"stopped at step {step} to resume later")
    _, peak = memory_mb()
    result = TrainResult(
        status=status,
        steps=step,
        final_loss=loss,
        train_tokens=clock.tokens,
        tokens_per_second=clock.tokens_per_second(),
        peak_rss_mb=peak,
        peak_gpu_mb=gpu_memory_mb()[1],
        adapter_dir=str(adapter_dir) if adapter_dir else None,
        elapsed_s=clock.elapsed(),
        eval_loss=eval_loss,
    )
    if status != "lost":  # the worker that owns the run now writes its own
        output_dir.mkdir(parents=True, exist_ok=True)
        payload = {"result": asdict(result), "config": config.to_dict()}
        (output_dir / "train_result.json").write_text(json.dumps(payload, indent=2))
    return result
