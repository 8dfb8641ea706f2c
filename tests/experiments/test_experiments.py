"""The runs table, run comparison, and run results as JSON/CSV documents."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from experiments.compare import CompareError, config_diff, parse_run_ids, smooth
from slmlab.csvsafe import safe_cell
from tests.factories import make_base_model, make_project, make_run
from tests.schemas import validate_run, validate_runs
from training.models import Run, RunMetric


def add_metrics(run, losses, evals=None):
    evals = evals or {}
    for step, loss in enumerate(losses, start=1):
        RunMetric.objects.create(
            run=run,
            step=step,
            epoch=step / len(losses),
            loss=loss,
            learning_rate=1e-4,
            eval_loss=evals.get(step),
            tokens=100,
            tokens_per_second=200.0,
            elapsed_s=float(step),
        )


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Experiments")


@pytest.fixture
def runs(project):
    base = make_base_model()
    other = make_base_model(name="Qwen2.5-0.5B-Instruct")
    now = timezone.now()
    made = []
    specs = [
        ("alpha", Run.Status.COMPLETED, base, 1e-4, 0.9),
        ("bravo", Run.Status.COMPLETED, other, 5e-4, 0.4),
        ("charlie", Run.Status.FAILED, base, 2e-4, None),
    ]
    for i, (name, status, model, lr, loss) in enumerate(specs):
        run = make_run(
            project,
            base_model=model,
            name=name,
            config={"learning_rate": lr},
            status=status,
            loss=loss,
            started=now - timedelta(minutes=10),
            finished=now - timedelta(minutes=10 - i - 1),
        )
        made.append(run)
    add_metrics(made[0], [3.0, 2.0, 1.0, 0.9], {2: 2.5, 4: 1.5})
    add_metrics(made[1], [3.0, 1.0, 0.5, 0.4], {4: 1.0})
    return made


def order(response) -> list[str]:
    """The runs alpha, bravo and charlie in the order the table shows them."""
    html = response.content.decode()
    shown = [(html.find(f">{n}</a>"), n) for n in ("alpha", "bravo", "charlie")]
    return [n for at, n in sorted(shown) if at >= 0]


# --- the runs table ---


def test_the_table_lists_the_projects_runs_and_sorts_them(owner_client, project, runs):
    url = reverse("experiments:table", args=[project.pk])
    assert order(owner_client.get(url)) == ["charlie", "bravo", "alpha"]  # newest first
    assert order(owner_client.get(url, {"sort": "loss"})) == ["bravo", "alpha", "charlie"]
    assert order(owner_client.get(url, {"sort": "-loss"})) == ["alpha", "bravo", "charlie"]
    assert order(owner_client.get(url, {"sort": "lr"})) == ["alpha", "charlie", "bravo"]
    assert order(owner_client.get(url, {"sort": "duration"})) == ["alpha", "bravo", "charlie"]
    assert order(owner_client.get(url, {"sort": "model"}))[0] == "bravo"  # Qwen before Smol
    # A sort that is not a column falls back to the default instead of failing.
    assert owner_client.get(url, {"sort": "password"}).status_code == 200


def test_the_table_filters_by_status_model_and_dataset(owner_client, project, runs):
    url = reverse("experiments:table", args=[project.pk])
    assert order(owner_client.get(url, {"status": "failed"})) == ["charlie"]
    assert order(owner_client.get(url, {"model": "Qwen2.5-0.5B-Instruct"})) == ["bravo"]
    assert order(owner_client.get(url, {"dataset": "nope"})) == []
    assert order(owner_client.get(url, {"status": "bogus"})) == ["charlie", "bravo", "alpha"]


def test_the_table_answers_htmx_with_the_table_alone(owner_client, project, runs, htmx_headers):
    url = reverse("experiments:table", args=[project.pk])
    html = owner_client.get(url, {"sort": "name"}, **htmx_headers).content.decode()
    assert html.lstrip().startswith('<div id="runs-view">')
    assert "<html" not in html
    assert "sort=-name" in html  # the header now sorts the other way


def test_the_table_is_paginated(owner_client, project):
    base = make_base_model()
    for i in range(27):
        make_run(project, base_model=base, name=f"r{i:02d}")
    url = reverse("experiments:table", args=[project.pk])
    first = owner_client.get(url).content.decode()
    assert first.count('data-testid="runs-row"') == 25
    assert 'data-testid="next-page"' in first
    second = owner_client.get(url, {"page": 2}).content.decode()
    assert second.count('data-testid="runs-row"') == 2
    assert owner_client.get(url, {"page": "x"}).status_code == 200


def test_the_project_page_links_to_the_table(owner_client, project, runs):
    html = owner_client.get(project.get_absolute_url()).content.decode()
    assert reverse("experiments:table", args=[project.pk]) in html


# --- comparing runs ---


def test_compare_overlays_curves_and_shows_only_the_settings_that_differ(owner_client, runs):
    alpha, bravo, _ = runs
    response = owner_client.get(reverse("experiments:compare"), {"runs": f"{alpha.pk},{bravo.pk}"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="train-overlay" data-lines="2"' in html
    assert html.count('class="series series-') == 4  # two runs in each chart
    keys = [row["key"] for row in response.context["comparison"].diff]
    assert "learning_rate" in keys and "base model" in keys
    assert "lora_r" not in keys and "batch_size" not in keys  # the same in both
    results = {row["label"]: row for row in response.context["comparison"].results}
    assert results["final training loss"]["best"] == 0.4
    # Validation: the base point is added only where the run knows it.
    assert response.context["comparison"].eval_chart["lines"][0].count(",") == 2


def test_compare_from_the_tables_checkboxes_and_with_smoothing(owner_client, runs, htmx_headers):
    alpha, bravo, charlie = runs
    url = reverse("experiments:compare")
    checked = owner_client.get(url + f"?runs={alpha.pk}&runs={bravo.pk}&runs={charlie.pk}")
    assert checked.status_code == 200
    assert [r.pk for r in checked.context["comparison"].runs] == [alpha.pk, bravo.pk, charlie.pk]
    smoothed = owner_client.get(
        url, {"runs": f"{alpha.pk},{bravo.pk}", "smooth": "0.9"}, **htmx_headers
    )
    html = smoothed.content.decode()
    assert html.lstrip().startswith('<section id="compare-curves">')
    assert 'value="0.9" selected' in html


@pytest.mark.parametrize("given", ["", "1", "1,2,3,4,5,6,7,8,9", "1,x"])
def test_compare_needs_two_to_eight_run_numbers(owner_client, given):
    response = owner_client.get(reverse("experiments:compare"), {"runs": given})
    assert response.status_code == 400
    assert 'data-testid="compare-error"' in response.content.decode()


def test_smoothing_is_a_bias_corrected_moving_average():
    constant = smooth([(1, 2.0), (2, 2.0), (3, 2.0)], 0.9)
    assert [s for s, _ in constant] == [1, 2, 3]
    assert [v for _, v in constant] == pytest.approx([2.0, 2.0, 2.0])
    # weight 0.5: the average after two points is (0.25*4 + 0.5*2) / (1 - 0.25)
    expected = (0.5 * 4 * 0.5 + 0.5 * 2) / 0.75
    assert smooth([(1, 4.0), (2, 2.0)], 0.5)[1][1] == pytest.approx(expected)
    assert smooth([(1, 4.0), (2, 2.0)], 0.0) == [(1, 4.0), (2, 2.0)]


def test_run_ids_parse_in_order_once_each():
    assert parse_run_ids(["3,1", "3", "2"]) == [3, 1, 2]
    with pytest.raises(CompareError):
        parse_run_ids(["1"])


def test_the_diff_of_identical_runs_is_empty(project):
    base = make_base_model()
    dataset = make_run(project, base_model=base).dataset
    a = make_run(project, base_model=base, dataset=dataset)
    b = make_run(project, base_model=base, dataset=dataset)
    assert config_diff([a, b]) == []


# --- documents ---


def test_project_and_user_documents_follow_the_schema(owner_client, project, runs, user):
    other_project = make_project(owner=user, name="Second")
    make_run(other_project, base_model=runs[0].base_model, name="delta")
    project_doc = owner_client.get(reverse("experiments:project_json", args=[project.pk])).json()
    validate_runs(project_doc)
    assert project_doc["scope"] == "project"
    assert {r["name"] for r in project_doc["runs"]} == {"alpha", "bravo", "charlie"}
    user_doc = owner_client.get(reverse("experiments:user_json")).json()
    validate_runs(user_doc)
    assert {r["name"] for r in user_doc["runs"]} == {"alpha", "bravo", "charlie", "delta"}
    one = owner_client.get(reverse("training:run_json", args=[runs[0].pk])).json()
    validate_run(one)
    assert one["schema_version"] == 1 and one["duration_s"] == pytest.approx(60, abs=1)


def test_a_document_that_breaks_the_schema_is_caught(owner_client, runs):
    from jsonschema import ValidationError

    one = owner_client.get(reverse("training:run_json", args=[runs[0].pk])).json()
    for broken in ({**one, "status": "done"}, {k: v for k, v in one.items() if k != "metrics"}):
        with pytest.raises(ValidationError):
            validate_run(broken)
    with pytest.raises(ValidationError):
        validate_run({**one, "config": {**one["config"], "model_dir": "/srv/models/x"}})


def read_csv(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_documents_neutralise_formula_cells(owner_client, project, runs):
    Run.objects.filter(pk=runs[0].pk).update(name='=HYPERLINK("http://evil","x")')
    Run.objects.filter(pk=runs[1].pk).update(name="@SUM(A1)", loss=-0.5)
    response = owner_client.get(reverse("experiments:project_csv", args=[project.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = {row["id"]: row for row in read_csv(response)}
    assert rows[str(runs[0].pk)]["name"] == '\'=HYPERLINK("http://evil","x")'
    assert rows[str(runs[1].pk)]["name"] == "'@SUM(A1)"
    assert rows[str(runs[1].pk)]["final_loss"] == "-0.5"  # a number stays a number
    assert rows[str(runs[1].pk)]["config.learning_rate"] == "0.0005"
    assert rows[str(runs[2].pk)]["final_loss"] == ""
    single = read_csv(owner_client.get(reverse("experiments:run_csv", args=[runs[2].pk])))
    assert [row["name"] for row in single] == ["charlie"]
    everything = read_csv(owner_client.get(reverse("experiments:user_csv")))
    assert len(everything) == 3


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        (-1.5, -1.5),
        (None, ""),
        (True, "true"),
    ],
)
def test_safe_cell(value, written):
    assert safe_cell(value) == written


# --- tenancy ---


def routes(project, run_a, run_b):
    return [
        reverse("experiments:table", args=[project.pk]),
        reverse("experiments:project_json", args=[project.pk]),
        reverse("experiments:project_csv", args=[project.pk]),
        reverse("experiments:run_csv", args=[run_a.pk]),
        reverse("experiments:compare") + f"?runs={run_a.pk},{run_b.pk}",
    ]


def test_another_user_gets_404_everywhere(other_client, project, runs):
    for url in routes(project, runs[0], runs[1]):
        assert other_client.get(url).status_code == 404, url


def test_a_comparison_with_one_foreign_run_is_404(other_client, other_user, runs):
    mine = make_run(make_project(owner=other_user), base_model=runs[0].base_model)
    url = reverse("experiments:compare") + f"?runs={mine.pk},{runs[0].pk}"
    assert other_client.get(url).status_code == 404


def test_another_users_documents_hold_none_of_my_runs(other_client, runs):
    assert other_client.get(reverse("experiments:user_json")).json()["runs"] == []
    assert read_csv(other_client.get(reverse("experiments:user_csv"))) == []


def test_anonymous_users_go_to_login(client, project, runs):
    extra = [reverse("experiments:user_json"), reverse("experiments:user_csv")]
    for url in routes(project, runs[0], runs[1]) + extra:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


# --- evaluation scores ---


def evaluate(run, valid_json: tuple[float, float], rouge: float, finished_ago: int = 0):
    from evaluations.models import Evaluation

    summary = {
        "examples": 20,
        "metrics": [
            {
                "name": "rouge_l",
                "label": "ROUGE-L F1",
                "kind": "score",
                "higher_is_better": True,
                "base": {"mean": 0.1},
                "tuned": {"mean": rouge},
                "test": {"p_value": 0.01, "significant": True},
            },
            {
                "name": "valid_json",
                "label": "valid JSON",
                "kind": "pass",
                "higher_is_better": True,
                "base": {"mean": valid_json[0]},
                "tuned": {"mean": valid_json[1]},
                "test": {"p_value": 0.001, "significant": True},
            },
        ],
    }
    return Evaluation.objects.create(
        owner=run.owner,
        run=run,
        status="done",
        summary=summary,
        finished=timezone.now() - timedelta(minutes=finished_ago),
    )


def test_the_table_shows_each_runs_headline_evaluation(owner_client, project, runs):
    alpha = runs[0]
    evaluate(alpha, (0.05, 0.5), 0.3, finished_ago=10)  # older: not shown
    evaluate(alpha, (0.05, 0.96), 0.7)
    html = owner_client.get(reverse("experiments:table", args=[project.pk])).content.decode()
    assert "valid JSON: 96%" in html and "base 5%" in html
    assert "valid JSON: 50%" not in html


def test_compare_puts_evaluation_scores_side_by_side(owner_client, runs):
    alpha, bravo, charlie = runs
    evaluate(alpha, (0.0, 0.9), 0.6)
    evaluate(bravo, (0.0, 0.95), 0.5)
    ids = f"{alpha.pk},{bravo.pk},{charlie.pk}"
    response = owner_client.get(reverse("experiments:compare"), {"runs": ids})
    rows = {row["label"]: row for row in response.context["comparison"].scores}
    assert rows["valid JSON"]["values"] == [0.9, 0.95, None]  # charlie was not evaluated
    assert rows["valid JSON"]["best"] == 0.95 and rows["ROUGE-L F1"]["best"] == 0.6
    assert response.content.decode().count('data-testid="best-score"') == 2
