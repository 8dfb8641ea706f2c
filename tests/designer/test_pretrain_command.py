"""``manage.py pretrain --config design.yaml``: the editor's YAML, the same engine."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.urls import reverse

from designer.models import Design
from tests.factories import make_project
from training.engine.data.samples import write_pretraining_sample
from training.engine.design import spec
from training.engine.design.spec import Layer


def tiny() -> spec.Design:
    design = replace(spec.llama_tiny(), vocab_size=400, hidden_size=64, context_length=128)
    design.layers = [Layer("rmsnorm", 4, 2, "swiglu", 128) for _ in range(2)]
    return design


@pytest.mark.django_db
def test_it_pretrains_the_design_the_editor_exports(owner_client, user, tmp_path):
    project = make_project(user)
    design = Design.objects.create(
        owner=user, project=project, name="tiny", spec=tiny().to_dict(), sequence_length=64
    )
    exported = owner_client.get(reverse("designer:export", args=(project.pk, design.pk)))
    (tmp_path / "design.yaml").write_bytes(exported.content)
    corpus = write_pretraining_sample(tmp_path / "stories.txt", n=300)
    out = io.StringIO()
    call_command(
        "pretrain",
        config=str(tmp_path / "design.yaml"),
        data=str(corpus),
        out=str(tmp_path / "out"),
        steps=4,
        sample_every=2,
        batch_size=4,
        stdout=out,
    )
    text = out.getvalue()
    assert "training a 400-token BPE tokenizer" in text
    assert "sample at step 2: It was sunny." in text and '"status": "completed"' in text
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
    assert (tmp_path / "out" / "tokenizer" / "tokenizer.json").exists()


def test_a_bad_design_file_is_refused_with_its_errors(tmp_path):
    broken = tiny().to_dict() | {"hidden_size": 66}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"design": broken}))
    (tmp_path / "t.txt").write_text("a story\n")
    with pytest.raises(CommandError, match=r"hidden_size|layers\.0\.heads"):
        call_command(
            "pretrain", config=str(tmp_path / "d.yaml"), data=str(tmp_path / "t.txt"), out="x"
        )
    (tmp_path / "d.yaml").write_text("design: [1, 2")
    with pytest.raises(CommandError, match="not valid YAML"):
        call_command(
            "pretrain", config=str(tmp_path / "d.yaml"), data=str(tmp_path / "t.txt"), out="x"
        )


def test_resume_needs_a_checkpoint(tmp_path):
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"design": tiny().to_dict()}))
    write_pretraining_sample(tmp_path / "t.txt", n=50)
    with pytest.raises(CommandError, match="no complete checkpoint"):
        call_command(
            "pretrain",
            config=str(tmp_path / "d.yaml"),
            data=str(tmp_path / "t.txt"),
            out=str(tmp_path / "out"),
            resume=True,
        )
