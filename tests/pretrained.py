"""A model pretrained in the lab, for real and tiny (a few seconds): a run of a small
design on the sample corpus with its own BPE tokenizer, and a fine-tune of it."""

from __future__ import annotations

from dataclasses import replace

from designer.models import Design, TrainedTokenizer
from tests.factories import make_dataset, make_project
from training.engine.design import corpus, spec
from training.engine.design import tokenizer as design_tokenizer
from training.engine.design.spec import Layer
from training.models import Run


def tiny_design(kind: str = "llama") -> spec.Design:
    if kind == "llama":
        design = replace(spec.llama_tiny(), vocab_size=512, hidden_size=64, context_length=128)
        design.layers = [Layer("rmsnorm", 4, 2, "swiglu", 128) for _ in range(2)]
    else:
        design = replace(spec.gpt2_tiny(), vocab_size=512, hidden_size=64, context_length=128)
        design.layers = [Layer("layernorm", 4, 4, "gelu", 128) for _ in range(2)]
    return design


def pretrained_run(owner, kind: str = "llama", steps: int = 4) -> Run:
    """A completed pretraining run whose worker saved its model (the engine's own
    pretraining, as the run job calls it, without the queue)."""
    from projects.datasets import store_sample
    from training.engine.design.pretrain import PretrainSettings, pretrain

    project = make_project(owner=owner)
    dataset = store_sample(project, "pretraining-stories")
    texts = list(corpus.stories(300))
    job = TrainedTokenizer.objects.create(
        owner=owner, project=project, dataset=dataset, vocab_size=512
    )
    trained = design_tokenizer.train_tokenizer(texts, 512, job.folder, context_length=128)
    TrainedTokenizer.objects.filter(pk=job.pk).update(
        status=TrainedTokenizer.Status.DONE, trained_vocab_size=trained.get_vocab_size()
    )
    design = tiny_design(kind)
    row = Design.objects.create(
        owner=owner, project=project, name=f"tiny {kind}", spec=design.to_dict()
    )
    settings = PretrainSettings(
        steps=steps, batch_size=4, sequence_length=64, sample_every=0, precision="float32"
    )
    run = Run.objects.create(
        owner=owner,
        project=project,
        dataset=dataset,
        kind=Run.Kind.PRETRAIN,
        design=row,
        tokenizer=job,
        name=f"pretrained {kind}",
        config={**settings.to_dict(), "design": design.to_dict(), "design_name": row.name},
    )
    pretrain(design, job.folder, texts, run.output_dir, settings)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED, step=steps)
    run.refresh_from_db()
    assert run.has_model
    return run


def finetune_of(pretrained: Run, seed: int = 1, dataset=None) -> Run:
    """A completed fine-tune of ``pretrained`` with a real (random, non-zero) adapter."""
    from tests.playground.adapters import write_random_adapter

    project = pretrained.project
    run = Run.objects.create(
        owner=pretrained.owner,
        project=project,
        dataset=dataset or make_dataset(project),
        base_run=pretrained,
        name="tuned from pretrained",
        config={"max_steps": 1, "max_seq_len": 64, "batch_size": 2, "quantization": "none"},
        status=Run.Status.COMPLETED,
    )
    write_random_adapter(pretrained.model_dir, run.adapter_dir, seed=seed)
    return run
