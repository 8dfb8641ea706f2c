import re

import pytest
from django.urls import reverse

from tests.factories import make_dataset
from tests.training.test_run_views import valid_form
from training.engine.devices import cuda_report
from training.heartbeat import beat
from training.models import Run, Worker

pytestmark = pytest.mark.django_db


def total_mb(html: str) -> float:
    return float(re.search(r'data-total-mb="(\d+)"', html).group(1))


def test_the_form_opens_with_an_estimate(owner_client, project, model):
    make_dataset(project)
    page = owner_client.get(reverse("training:new", args=[project.pk])).content.decode()
    assert 1000 < total_mb(page) < 5000


def test_the_estimate_follows_the_settings(owner_client, project, model, htmx_headers):
    dataset = make_dataset(project)
    url = reverse("training:estimate", args=[project.pk])
    small = owner_client.post(url, valid_form(project, dataset, max_seq_len=128), **htmx_headers)
    large = owner_client.post(url, valid_form(project, dataset, max_seq_len=4096), **htmx_headers)
    assert 'id="estimate"' in small.content.decode() and "<html" not in small.content.decode()
    assert total_mb(large.content.decode()) > total_mb(small.content.decode()) + 1000
    assert Run.objects.count() == 0


def test_a_run_that_cannot_fit_is_blocked_unless_the_user_insists(
    owner_client, project, model, htmx_headers
):
    beat("tiny:1")
    tiny = cuda_report(0, "Tiny GPU", 1024, (8, 0))
    Worker.objects.filter(name="tiny:1").update(
        memory_total_mb=1024, device="Tiny GPU", devices=[tiny.to_dict()]
    )
    dataset = make_dataset(project)
    url = reverse("training:new", args=[project.pk])
    blocked = owner_client.post(url, valid_form(project, dataset, max_seq_len=2048), **htmx_headers)
    body = blocked.content.decode()
    assert "Tiny GPU has 1024 MB, 922 MB of it usable once the 10% safety margin" in body
    assert 'data-fits="no"' in body
    assert Run.objects.count() == 0
    insisted = owner_client.post(
        url, valid_form(project, dataset, max_seq_len=2048, start_anyway="on"), **htmx_headers
    )
    assert insisted.status_code == 200 and "HX-Redirect" in insisted
    assert Run.objects.count() == 1


def test_the_estimate_404s_for_another_user(other_client, project, model):
    dataset = make_dataset(project)
    url = reverse("training:estimate", args=[project.pk])
    assert other_client.post(url, valid_form(project, dataset)).status_code == 404


def test_the_estimate_sends_anonymous_users_to_login(client, project):
    response = client.post(reverse("training:estimate", args=[project.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
