import json

import pytest
from django.urls import reverse

from tests.factories import make_base_model, make_dataset, make_project, make_run
from tests.streams import content_of
from training.models import ChatExchange, Run

pytestmark = pytest.mark.django_db


def queued(broker, actor_name: str) -> list:
    messages = []
    for queue in broker.queues.values():
        while not queue.empty():
            messages.append(json.loads(queue.get_nowait()))
    return [m for m in messages if m["actor_name"] == actor_name]


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Bot")


@pytest.fixture
def run(project):
    return make_run(project=project)


def valid_form(project, dataset, **overrides) -> dict:
    data = {
        "name": "first",
        "base_model": make_base_model().pk,
        "dataset": dataset.pk,
        "quantization": "4bit",
        "quant_type": "nf4",
        "double_quant": "on",
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "target_modules": "all-linear",
        "learning_rate": 5e-4,
        "epochs": 1,
        "max_steps": 10,
        "batch_size": 4,
        "grad_accum": 1,
        "max_seq_len": 128,
        "seed": 42,
    }
    data.update(overrides)
    return data


def test_the_form_offers_4bit_nf4_with_double_quantization_by_default(owner_client, project):
    make_dataset(project)
    make_base_model()
    page = owner_client.get(reverse("training:new", args=[project.pk])).content.decode()
    assert '<option value="4bit" selected>' in page
    assert '<option value="nf4" selected>' in page
    assert 'name="double_quant" id="id_double_quant" checked' in page


def test_it_queues_a_run_and_sends_its_id_after_commit(
    owner_client, project, broker, htmx_headers, django_capture_on_commit_callbacks
):
    dataset = make_dataset(project)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("training:new", args=[project.pk]),
            valid_form(project, dataset, quantization="8bit"),
            **htmx_headers,
        )
    run = Run.objects.get()
    assert response["HX-Redirect"] == run.get_absolute_url()
    assert run.status == Run.Status.QUEUED
    assert run.config["quantization"] == "8bit"
    assert run.config["max_steps"] == 10
    assert "model_dir" not in run.config
    [message] = queued(broker, "train_next")
    assert message["args"] == [run.pk]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("lora_r", 128, "less than or equal to 64"),
        ("learning_rate", -1, "greater than or equal to"),
        ("quantization", "3bit", "Select a valid choice"),
        ("batch_size", 0, "greater than or equal to 1"),
    ],
)
def test_it_rerenders_the_form_with_errors(
    owner_client, project, broker, htmx_headers, field, value, error
):
    dataset = make_dataset(project)
    response = owner_client.post(
        reverse("training:new", args=[project.pk]),
        valid_form(project, dataset, **{field: value}),
        **htmx_headers,
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-field="{field}"' in body and error in body
    assert 'id="run-form"' in body and "<html" not in body
    assert Run.objects.count() == 0
    assert queued(broker, "train_next") == []


def test_it_refuses_a_dataset_of_another_project(owner_client, project, user, broker):
    other_dataset = make_dataset(make_project(owner=user, name="Elsewhere"))
    response = owner_client.post(
        reverse("training:new", args=[project.pk]), valid_form(project, other_dataset)
    )
    assert response.status_code == 200
    assert Run.objects.count() == 0


def test_the_run_page_shows_state_and_the_websocket_address(owner_client, run):
    run.metrics.create(
        step=1,
        epoch=0.1,
        loss=2.5,
        learning_rate=1e-4,
        tokens=100,
        tokens_per_second=50,
        elapsed_s=2,
    )
    run.metrics.create(
        step=2,
        epoch=0.2,
        loss=1.5,
        learning_rate=1e-4,
        tokens=100,
        tokens_per_second=50,
        elapsed_s=4,
    )
    Run.objects.filter(pk=run.pk).update(status="running", step=2, total_steps=4, loss=1.5)
    page = owner_client.get(run.get_absolute_url()).content.decode()
    assert f'ws-connect="/ws/runs/{run.pk}/"' in page
    assert 'value="50" max="100"' in page
    assert "<polyline" in page
    assert 'data-testid="cancel-run"' in page


def test_cancel_stops_a_queued_run_at_once(owner_client, run, htmx_headers):
    response = owner_client.post(reverse("training:cancel", args=[run.pk]), **htmx_headers)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert 'data-status="cancelled"' in response.content.decode()


def test_cancel_asks_a_running_run_to_stop(owner_client, run):
    Run.objects.filter(pk=run.pk).update(status="running")
    owner_client.post(reverse("training:cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    assert run.cancel_requested is True


def test_cancel_leaves_a_completed_run_alone(owner_client, run):
    Run.objects.filter(pk=run.pk).update(status="completed")
    owner_client.post(reverse("training:cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert not run.cancel_requested


def test_chat_waits_for_completion(owner_client, run, broker, htmx_headers):
    response = owner_client.post(
        reverse("training:chat", args=[run.pk]),
        {"prompt": "hi", "max_new_tokens": 16, "temperature": 0, "top_p": 1},
        **htmx_headers,
    )
    assert "Chat opens when the run has completed" in response.content.decode()
    assert ChatExchange.objects.count() == 0


def test_chat_on_a_completed_run_goes_to_a_worker(
    owner_client, run, broker, htmx_headers, django_capture_on_commit_callbacks
):
    Run.objects.filter(pk=run.pk).update(status="completed")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("training:chat", args=[run.pk]),
            {"prompt": "Capital of Peru?", "max_new_tokens": 16, "temperature": 0, "top_p": 1},
            **htmx_headers,
        )
    exchange = ChatExchange.objects.get()
    assert exchange.status == ChatExchange.Status.QUEUED
    assert "thinking on a worker" in response.content.decode()
    [message] = queued(broker, "chat_reply")
    assert message["args"] == [exchange.pk]


def test_the_adapter_is_refused_before_training_ends(owner_client, run, htmx_headers):
    from exports.models import Export

    response = owner_client.post(reverse("exports:adapter", args=[run.pk]), **htmx_headers)
    assert "Exports open when the run has completed" in response.content.decode()
    assert not Export.objects.exists()
    assert (
        'data-testid="download-adapter"'
        not in owner_client.get(run.get_absolute_url()).content.decode()
    )


def test_run_json_has_the_documented_fields(owner_client, run):
    data = owner_client.get(reverse("training:run_json", args=[run.pk])).json()
    assert data["id"] == run.pk
    assert data["status"] == "queued"
    assert data["config"]["max_steps"] == 2
    assert data["metrics"] == []


# --- Ownership: other user gets 404 and nothing changes; anonymous goes to login ---


def run_urls(run):
    return [
        ("get", reverse("training:run", args=[run.pk])),
        ("get", reverse("training:run_json", args=[run.pk])),
        ("get", reverse("training:tensorboard", args=[run.pk])),
        ("post", reverse("training:cancel", args=[run.pk])),
        ("post", reverse("training:chat", args=[run.pk])),
        ("get", reverse("training:new", args=[run.project_id])),
        ("post", reverse("training:new", args=[run.project_id])),
    ]


def test_every_run_url_404s_for_another_user_and_changes_nothing(other_client, run, broker):
    Run.objects.filter(pk=run.pk).update(status="completed")
    for method, url in run_urls(run):
        response = getattr(other_client, method)(url, {"prompt": "x", "name": "x"})
        assert response.status_code == 404, url
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED and not run.cancel_requested
    assert ChatExchange.objects.count() == 0
    assert Run.objects.count() == 1


def test_every_run_url_sends_anonymous_users_to_login(client, run):
    for method, url in run_urls(run):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login"))
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED and not run.cancel_requested


def test_it_refuses_a_run_past_the_queued_runs_quota(owner_client, project, user, broker):
    user.max_queued_runs = 2
    user.save(update_fields=["max_queued_runs"])
    dataset = make_dataset(project)
    make_run(project=project, dataset=dataset)
    make_run(project=project, dataset=dataset)
    response = owner_client.post(
        reverse("training:new", args=[project.pk]), valid_form(project, dataset)
    )
    assert "You already have 2 queued runs" in response.content.decode()
    assert Run.objects.count() == 2


def test_the_tensorboard_events_download_as_a_zip(owner_client, run):
    import io
    import zipfile

    from torch.utils.tensorboard import SummaryWriter

    assert owner_client.get(reverse("training:tensorboard", args=[run.pk])).status_code == 404
    writer = SummaryWriter(log_dir=str(run.output_dir / "tensorboard"))
    writer.add_scalar("train/loss", 1.5, 1)
    writer.close()
    response = owner_client.get(reverse("training:tensorboard", args=[run.pk]))
    names = zipfile.ZipFile(io.BytesIO(content_of(response))).namelist()
    assert any(name.startswith("events.out.tfevents") for name in names)
    assert not list(run.output_dir.glob("*.zip"))  # streamed: no archive was written
