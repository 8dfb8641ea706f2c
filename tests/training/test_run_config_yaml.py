import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import make_dataset
from tests.training.test_run_views import valid_form
from training.engine.config import RunConfig
from training.models import Run

pytestmark = pytest.mark.django_db


def field_value(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def test_recommend_fills_the_form_and_explains_each_choice(
    owner_client,
    project,
    model,
    htmx_headers,
):
    dataset = make_dataset(project)
    response = owner_client.post(
        reverse("training:recommend", args=[project.pk]),
        {**valid_form(project, dataset, lora_r=4, max_steps=10), "preset": "quality"},
        **htmx_headers,
    )
    body = response.content.decode()
    assert 'data-testid="reasons"' in body and "lora_r" in body
    assert int(field_value(body, "lora_r")) > 4
    assert field_value(body, "max_steps") == "0"
    assert Run.objects.count() == 0


def test_export_writes_the_run_yaml_that_manage_py_train_reads(
    owner_client,
    project,
    model,
):
    dataset = make_dataset(project)
    response = owner_client.post(
        reverse("training:export", args=[project.pk]), valid_form(project, dataset, lora_r=32)
    )
    assert response["Content-Type"] == "application/yaml"
    assert 'filename="first.yaml"' in response["Content-Disposition"]
    config = RunConfig.from_yaml(response.content.decode())
    config.validate()
    assert config.lora_r == 32
    assert config.model_dir == model.path
    assert config.dataset_path == dataset.file.path
    # How to read the file travels too, or `manage.py train` would misread a CSV or chat.
    assert (config.dataset_format, config.dataset_shape) == (dataset.file_format, dataset.shape)
    assert config.prompt_template == dataset.template
    assert Run.objects.count() == 0


def test_import_fills_the_form_from_a_run_yaml(owner_client, project, model):
    dataset = make_dataset(project)
    config = RunConfig(
        model_dir=model.path,
        dataset_path=dataset.file.path,
        output_dir="/tmp/x",
        lora_r=48,
        learning_rate=3e-4,
        max_seq_len=256,
    )
    upload = SimpleUploadedFile("run.yaml", config.to_yaml().encode())
    body = owner_client.post(
        reverse("training:import", args=[project.pk]), {"config": upload}
    ).content.decode()
    assert "Settings loaded from run.yaml" in body
    assert field_value(body, "lora_r") == "48"
    assert field_value(body, "max_seq_len") == "256"
    assert f'<option value="{dataset.pk}" selected>' in body


def test_import_reports_a_bad_run_yaml_by_field(owner_client, project):
    upload = SimpleUploadedFile(
        "run.yaml", b"model_dir: m\ndataset_path: d\noutput_dir: o\nlora_r: 500\nwarp_speed: 9\n"
    )
    body = owner_client.post(
        reverse("training:import", args=[project.pk]), {"config": upload}
    ).content.decode()
    assert "run.yaml:" in body and "warp_speed" in body


@pytest.mark.parametrize("name", ["training:recommend", "training:export", "training:import"])
def test_the_yaml_and_recommend_endpoints_404_for_another_user(
    other_client,
    project,
    model,
    name,
):
    dataset = make_dataset(project)
    response = other_client.post(reverse(name, args=[project.pk]), valid_form(project, dataset))
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["training:recommend", "training:export", "training:import"])
def test_the_yaml_and_recommend_endpoints_need_a_login(client, project, name):
    response = client.post(reverse(name, args=[project.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
