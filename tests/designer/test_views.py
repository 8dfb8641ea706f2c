"""The Designs pages: create from a preset, edit with live counts, YAML out and in; tenancy."""

from __future__ import annotations

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from designer.models import Design
from tests.factories import make_project
from training.engine.design import counts, spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def design(user):
    project = make_project(user)
    return Design.objects.create(
        owner=user, project=project, name="tiny", spec=spec.llama_tiny().to_dict()
    )


def form_of(design_spec: spec.Design, **changes) -> dict:
    data = {
        "vocab_size": design_spec.vocab_size,
        "hidden_size": design_spec.hidden_size,
        "positions": design_spec.positions,
        "rope_theta": design_spec.rope_theta,
        "context_length": design_spec.context_length,
        "final_norm": design_spec.final_norm,
        "dropout": design_spec.dropout,
        "batch_size": 8,
        "sequence_length": 128,
        "layer_norm": [x.norm for x in design_spec.layers],
        "layer_heads": [x.heads for x in design_spec.layers],
        "layer_kv_heads": [x.kv_heads for x in design_spec.layers],
        "layer_mlp": [x.mlp for x in design_spec.layers],
        "layer_mlp_hidden": [x.mlp_hidden for x in design_spec.layers],
    }
    if design_spec.tie_embeddings:
        data["tie_embeddings"] = "on"
    data.update(changes)
    return data


def urls(design: Design) -> dict[str, str]:
    args = (design.project_id, design.pk)
    return {
        "edit": reverse("designer:edit", args=args),
        "preview": reverse("designer:preview", args=args),
        "export": reverse("designer:export", args=args),
        "list": reverse("designer:list", args=(design.project_id,)),
    }


def test_it_creates_a_design_from_a_preset(owner_client, user):
    project = make_project(user)
    response = owner_client.post(
        reverse("designer:list", args=(project.pk,)), {"preset": "gpt2-tiny", "name": "g"}
    )
    created = Design.objects.get(project=project)
    assert response.status_code == 302
    assert created.design == spec.gpt2_tiny()
    page = owner_client.get(reverse("designer:edit", args=(project.pk, created.pk)))
    assert f"{counts.total_parameters(spec.gpt2_tiny()):,}" in page.content.decode()


def test_the_live_preview_counts_what_the_form_holds(owner_client, design, htmx_headers):
    changed = spec.llama_tiny()
    changed.hidden_size = 128
    data = form_of(changed)
    response = owner_client.post(urls(design)["preview"], data, **htmx_headers)
    body = response.content.decode()
    assert response.status_code == 200
    assert f"{counts.total_parameters(changed):,}" in body
    assert "<svg" in body and "layer 4" in body
    assert Design.objects.get(pk=design.pk).design == spec.llama_tiny()  # nothing saved


def test_a_field_error_comes_next_to_the_field(owner_client, design, htmx_headers):
    data = form_of(spec.llama_tiny(), hidden_size=250)
    body = owner_client.post(urls(design)["preview"], data, **htmx_headers).content.decode()
    assert 'id="error-layers-0-heads" hx-swap-oob="true">width 250 is not divisible' in body
    assert 'data-testid="invalid"' in body


def test_it_saves_adds_removes_and_reorders_layers(owner_client, design, htmx_headers):
    edit = urls(design)["edit"]
    body = owner_client.post(
        edit, form_of(spec.llama_tiny(), action="add"), **htmx_headers
    ).content.decode()
    assert 'data-testid="layer-5"' in body
    data = form_of(spec.llama_tiny(), action="remove-0")
    body = owner_client.post(edit, data, **htmx_headers).content.decode()
    assert 'data-testid="layer-4"' not in body
    saved = form_of(spec.llama_tiny(), hidden_size=128)
    owner_client.post(edit, saved, **htmx_headers)
    assert Design.objects.get(pk=design.pk).design.hidden_size == 128


def test_an_invalid_design_is_not_saved(owner_client, design):
    owner_client.post(urls(design)["edit"], form_of(spec.llama_tiny(), hidden_size=250))
    assert Design.objects.get(pk=design.pk).design.hidden_size == 256


def test_a_design_round_trips_through_yaml(owner_client, design):
    text = owner_client.get(urls(design)["export"]).content
    assert yaml.safe_load(text)["design"] == spec.llama_tiny().to_dict()
    upload = SimpleUploadedFile("d.yaml", text, content_type="text/yaml")
    response = owner_client.post(
        reverse("designer:import", args=(design.project_id,)), {"file": upload}
    )
    assert response.status_code == 302
    assert Design.objects.filter(project=design.project).count() == 2
    bad = SimpleUploadedFile("d.yaml", b"design: {wings: 3}", content_type="text/yaml")
    response = owner_client.post(
        reverse("designer:import", args=(design.project_id,)), {"file": bad}
    )
    assert response.status_code == 400 and b"unknown design settings" in response.content


def test_another_user_gets_404_everywhere(other_client, design):
    for name, url in urls(design).items():
        method = other_client.post if name == "preview" else other_client.get
        assert method(url).status_code == 404, name
    assert (
        other_client.post(reverse("designer:import", args=(design.project_id,))).status_code == 404
    )


def test_anonymous_is_sent_to_login(client, design):
    for url in urls(design).values():
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]


def test_a_design_starts_from_a_store_models_architecture(owner_client, user, bundled_model_dir):
    from tests.factories import make_base_model

    model = make_base_model(path=str(bundled_model_dir))
    project = make_project(user)
    url = reverse("designer:list", args=(project.pk,))
    assert f'value="store-{model.pk}"' in owner_client.get(url).content.decode()
    owner_client.post(url, {"preset": f"store-{model.pk}"})
    created = Design.objects.get(project=project)
    assert created.design == spec.from_model_dir(bundled_model_dir)
    assert created.name == f"Architecture of {model.name}"
