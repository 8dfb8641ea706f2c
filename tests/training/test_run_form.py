"""The run form's Advanced section, its worker choice and what each device refuses.

Workers are rows with the device reports a heartbeat writes (training.heartbeat), so
the decisions run for GPUs and Macs this machine does not have.
"""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_dataset
from tests.training.test_run_views import valid_form
from training.engine.config import RunConfig
from training.engine.data.samples import SAMPLE_RUN_DEFAULTS
from training.engine.devices import DeviceReport, cuda_report
from training.forms import ADVANCED_FIELDS
from training.models import Run, Worker

pytestmark = pytest.mark.django_db

H100 = cuda_report(0, "NVIDIA H100", 81_559, (9, 0))
T4 = cuda_report(0, "Tesla T4", 15_360, (7, 5))
MAC = DeviceReport("mps", "Apple silicon GPU", 32_768, fp16=True)
OLD_CPU = DeviceReport("cpu", "CPU (8 cores)", 16_384, bf16=False)
BF16_CPU = DeviceReport("cpu", "CPU (32 cores)", 65_536, bf16=True)


def worker(name: str, report: DeviceReport, *others: DeviceReport) -> Worker:
    """A live worker training on ``report`` (its other devices listed after it)."""
    return Worker.objects.create(
        name=name,
        hostname="elsewhere",
        pid=1,
        device=report.name,
        memory_total_mb=report.memory_mb,
        memory_used_mb=0,
        devices=[d.to_dict() for d in (report, *others)],
        last_seen=timezone.now(),
    )


def key(report: DeviceReport) -> str:
    return f"{report.kind}:{report.name}:{report.memory_mb:.0f}"


def post(client, project, headers, url_name="training:new", **fields):
    dataset = make_dataset(project)
    url = reverse(url_name, args=[project.pk])
    return client.post(url, valid_form(project, dataset, **fields), **headers)


def field_error(body: str, field: str) -> str:
    match = re.search(rf'data-field="{field}">([^<]*)<', body)
    return match.group(1) if match else ""


def test_the_advanced_section_is_collapsed_with_defaults_help_and_glossary_links(
    owner_client, project, model
):
    make_dataset(project)
    page = owner_client.get(reverse("training:new", args=[project.pk])).content.decode()
    start = page.index('data-testid="advanced"')
    advanced = page[start : page.index("</details>", start)]
    assert "open" not in advanced.split(">", 1)[0]
    for name in ADVANCED_FIELDS:
        assert f'name="{name}"' in advanced, name
    assert '<option value="adamw" selected>' in advanced
    assert '<option value="cosine" selected>' in advanced
    assert '<option value="auto" selected>' in advanced
    assert '<option value="False" selected>' in advanced  # loss on the answers only
    warmup = SAMPLE_RUN_DEFAULTS.get("warmup_ratio", RunConfig("m", "d", "o").warmup_ratio)
    assert f'name="warmup_ratio" value="{warmup}"' in advanced
    assert 'name="max_grad_norm" value="1.0"' in advanced
    assert advanced.count('class="muted"') >= len(ADVANCED_FIELDS)
    for term in ("warmup", "optimizer", "precision", "dora", "rslora", "loss-on-answers"):
        assert f'href="/help/glossary/#{term}"' in advanced


def test_advanced_settings_reach_the_run(
    owner_client, project, model, broker, htmx_headers, django_capture_on_commit_callbacks
):
    worker("gpu:1", H100)
    settings = {
        "optimizer": "paged_adamw8bit",
        "lr_scheduler": "constant_with_warmup",
        "warmup_steps": 5,
        "weight_decay": 0.01,
        "max_grad_norm": 0.5,
        "gradient_checkpointing": "on",
        "autocast": "float16",
        "compute_dtype": "bfloat16",
        "train_on_prompt": "True",
        "use_rslora": "on",
        "use_dora": "on",
        "lora_embeddings": "on",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = post(owner_client, project, htmx_headers, **settings)
    assert "HX-Redirect" in response, response.content.decode()
    config = Run.objects.get().config
    assert {k: config[k] for k in settings} == {
        **settings,
        "gradient_checkpointing": True,
        "train_on_prompt": True,
        "use_rslora": True,
        "use_dora": True,
        "lora_embeddings": True,
    }
    RunConfig.from_dict({"model_dir": "m", "dataset_path": "d", "output_dir": "o", **config})


def test_empty_advanced_fields_take_the_engine_defaults(
    owner_client, project, model, broker, htmx_headers
):
    blank = {name: "" for name in ADVANCED_FIELDS}
    response = post(owner_client, project, htmx_headers, **blank)
    assert "HX-Redirect" in response
    config = Run.objects.get().config
    defaults = RunConfig("m", "d", "o")
    assert config["optimizer"] == defaults.optimizer == "adamw"
    assert config["warmup_ratio"] == defaults.warmup_ratio
    assert config["autocast"] == "auto" and config["train_on_prompt"] is False


@pytest.mark.parametrize(
    ("device", "precision", "expected"),
    [
        (OLD_CPU, "bfloat16", "no avx512_bf16 or AMX instructions; choose fp32 instead"),
        (OLD_CPU, "float16", "CPUs have no fast fp16 matmuls; choose fp32 instead"),
        (BF16_CPU, "float16", "CPUs have no fast fp16 matmuls; choose bf16 instead"),
        (T4, "bfloat16", "compute capability 7.5; bf16 needs 8.0 or newer); choose fp16 instead"),
        (MAC, "bfloat16", "choose fp16 instead"),
    ],
    ids=["old-cpu-bf16", "old-cpu-fp16", "bf16-cpu-fp16", "t4-bf16", "mac-bf16"],
)
def test_a_precision_the_device_lacks_is_refused_with_the_nearest_choice(
    owner_client, project, model, broker, htmx_headers, device, precision, expected
):
    worker("w:1", device)
    fields = {"autocast": precision, "device": key(device)}
    if device.kind == "mps":
        fields["quantization"] = "none"
    body = post(owner_client, project, htmx_headers, **fields).content.decode()
    assert expected in field_error(body, "autocast"), body
    assert '<details data-testid="advanced" open>' in body  # the refusal is visible
    assert Run.objects.count() == 0


@pytest.mark.parametrize("device", [H100, T4, BF16_CPU, OLD_CPU], ids=lambda d: d.name)
def test_each_precision_the_device_has_is_accepted(
    owner_client, project, model, broker, htmx_headers, device
):
    worker("w:1", device)
    for precision in ("auto", "bfloat16", "float16", "float32"):
        if (precision == "bfloat16" and not device.bf16) or (
            precision == "float16" and not device.fp16
        ):
            continue
        body = post(
            owner_client,
            project,
            htmx_headers,
            "training:estimate",
            autocast=precision,
            device=key(device),
        ).content.decode()
        assert 'data-testid="estimate-total"' in body, (precision, body)


def test_apple_mps_refuses_bitsandbytes_with_the_lora_alternative(
    owner_client, project, model, broker, htmx_headers
):
    worker("mac:1", MAC, DeviceReport("cpu", "CPU (10 cores)", 32_768))
    body = post(
        owner_client, project, htmx_headers, device=key(MAC), optimizer="adamw8bit"
    ).content.decode()
    assert "bitsandbytes has no 4bit kernels for Apple silicon GPU (mps)" in body
    assert "train plain LoRA instead (quantization: none)" in field_error(body, "quantization")
    assert "use AdamW" in field_error(body, "optimizer")
    assert Run.objects.count() == 0
    ok = post(owner_client, project, htmx_headers, device=key(MAC), quantization="none")
    assert "HX-Redirect" in ok


def test_the_form_offers_each_worker_class_and_estimates_for_the_chosen_one(
    owner_client, project, model, htmx_headers
):
    worker("gpu:1", H100, OLD_CPU)
    worker("gpu:2", H100, OLD_CPU)
    worker("cpu:1", OLD_CPU)
    make_dataset(project)
    page = owner_client.get(reverse("training:new", args=[project.pk])).content.decode()
    assert f'<option value="{key(H100)}" selected>' in page
    assert "NVIDIA H100 (CUDA, compute 9.0, 80 GB), 2 workers" in page
    assert "CPU (8 cores) (16 GB RAM), 1 worker" in page
    on_gpu = post(owner_client, project, htmx_headers, "training:estimate", device=key(H100))
    on_cpu = post(owner_client, project, htmx_headers, "training:estimate", device=key(OLD_CPU))
    assert "of 81559 MB on NVIDIA H100" in on_gpu.content.decode()
    assert "of 16384 MB on CPU (8 cores)" in on_cpu.content.decode()
    # CUDA computes in bf16 (half the activations) where the old CPU stays in fp32.
    gpu_mb = float(re.search(r'data-total-mb="(\d+)"', on_gpu.content.decode()).group(1))
    cpu_mb = float(re.search(r'data-total-mb="(\d+)"', on_cpu.content.decode()).group(1))
    assert gpu_mb != cpu_mb


def test_the_fit_check_keeps_the_recommenders_safety_margin(
    owner_client, project, model, broker, htmx_headers
):
    from training.capacity import Device, capacity_for
    from training.engine.models.memory import SAFETY_MARGIN
    from training.forms import RunForm

    dataset = make_dataset(project)
    form = RunForm(valid_form(project, dataset), project=project)
    assert form.is_valid()
    probe = Device(cuda_report(0, "Some GPU", 10**6, (8, 0)), 1)
    need = capacity_for(model, form.config(), probe).estimate.total_mb
    # Room for the estimate, but not for the estimate and the margin.
    tight = cuda_report(0, "Tight GPU", need / (1 - SAFETY_MARGIN / 2), (8, 0))
    worker("tight:1", tight)
    body = post(owner_client, project, htmx_headers).content.decode()
    assert "10% safety margin" in body and Run.objects.count() == 0
    assert 'data-testid="estimate-margin"' in body and 'data-fits="no"' in body
    roomy = cuda_report(0, "Roomy GPU", need / (1 - SAFETY_MARGIN) + 50, (8, 0))
    assert capacity_for(model, form.config(), Device(roomy, 1)).fits


def test_recommend_uses_the_chosen_device_and_an_8bit_optimizer_for_8gb(
    owner_client, project, model, htmx_headers
):
    worker("gpu:1", H100)
    worker("mac:1", MAC)
    dataset = make_dataset(project)
    url = reverse("training:recommend", args=[project.pk])
    gpu = owner_client.post(
        url, {**valid_form(project, dataset, device=key(H100)), "preset": "8gb"}, **htmx_headers
    ).content.decode()
    assert '<option value="adamw8bit" selected>' in gpu
    assert "8-bit AdamW" in gpu and "optimizer" in gpu
    mac = owner_client.post(
        url,
        {**valid_form(project, dataset, device=key(MAC), quantization="none"), "preset": "8gb"},
        **htmx_headers,
    ).content.decode()
    assert '<option value="adamw" selected>' in mac


def test_advanced_settings_round_trip_through_run_yaml(owner_client, project, model):
    dataset = make_dataset(project)
    exported = owner_client.post(
        reverse("training:export", args=[project.pk]),
        valid_form(project, dataset, optimizer="adamw8bit", use_dora="on", warmup_steps=7),
    )
    config = RunConfig.from_yaml(exported.content.decode())
    assert (config.optimizer, config.use_dora, config.warmup_steps) == ("adamw8bit", True, 7)
    upload = SimpleUploadedFile("run.yaml", exported.content, content_type="application/yaml")
    page = owner_client.post(
        reverse("training:import", args=[project.pk]), {"config": upload}
    ).content.decode()
    assert '<option value="adamw8bit" selected>' in page
    assert re.search(r'name="use_dora"[^>]* checked', page)
    assert 'name="warmup_steps" value="7"' in page


def test_the_run_page_says_what_precision_the_worker_picked(owner_client, project, model):
    from tests.factories import make_run
    from training.models import RunLog

    run = make_run(project=project)
    RunLog.objects.create(
        run=run, line="precision: bf16 (auto: NVIDIA H100 computes bf16 natively)"
    )
    page = owner_client.get(run.get_absolute_url()).content.decode()
    assert 'data-testid="precision">bf16 (auto: NVIDIA H100 computes bf16 natively)<' in page
