"""The run lifecycle as a state machine, driven by hypothesis through the real model verbs."""

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.factories import make_base_model, make_dataset, make_project, make_user
from training import services
from training.heartbeat import reap_stale_runs
from training.models import Run, Worker
from training.scheduling import claim_next

FINAL = {"completed", "failed", "cancelled", "timed_out"}


class RunLifecycle(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        Run.objects.all().delete()
        Worker.objects.all().delete()
        self.users = [make_user(max_running_runs=cap) for cap in (1, 2)]
        base = make_base_model()
        self.datasets = {}
        for user in self.users:
            project = make_project(owner=user)
            self.datasets[user.pk] = (project, make_dataset(project))
        self.base = base
        self.final_seen: dict[int, str] = {}
        self.workers = 0

    @rule(user_index=st.integers(0, 1))
    def submit(self, user_index):
        user = self.users[user_index]
        project, dataset = self.datasets[user.pk]
        Run.objects.create(
            owner=user, project=project, dataset=dataset, base_model=self.base, name="r", config={}
        )

    @rule()
    def free_worker_claims(self):
        self.workers += 1
        run = claim_next(f"w:{self.workers}")
        if run is not None:
            assert run.status == "running"
            assert run.claim("duplicate:1") is False  # a second delivery gets nothing

    @rule(
        data=st.data(),
        outcome=st.sampled_from(["completed", "failed", "cancelled", "timed_out"]),
    )
    def a_running_run_ends(self, data, outcome):
        running = list(Run.objects.filter(status="running"))
        if running:
            run = data.draw(st.sampled_from(running))
            assert run.finish(outcome)

    @rule(data=st.data())
    def cancel_any(self, data):
        runs = list(Run.objects.all())
        if runs:
            data.draw(st.sampled_from(runs)).request_cancel()

    @rule()
    def every_worker_dies(self):
        # No heartbeat rows: every running run belongs to a silent worker.
        for pk in reap_stale_runs():
            run = Run.objects.get(pk=pk)
            assert run.status in ("interrupted", "failed")
            assert run.crash_resumes <= django_settings.MAX_CRASH_RESUMES

    @rule(data=st.data())
    def a_worker_stops_and_hands_its_run_back(self, data):
        running = list(Run.objects.filter(status="running"))
        if running:
            run = data.draw(st.sampled_from(running))
            assert run.stop_to_resume("worker stopped")
            assert run.stop_to_resume("again") is False

    @rule(data=st.data())
    def operator_requeues(self, data):
        runs = list(Run.objects.all())
        if runs:
            services.requeue_run(data.draw(st.sampled_from(runs)))

    @rule(data=st.data())
    def try_to_finish_any(self, data):
        runs = list(Run.objects.all())
        if runs:
            run = data.draw(st.sampled_from(runs))
            was = run.status
            changed = run.finish("completed")
            assert changed == (was == "running")

    @invariant()
    def final_states_never_change(self):
        for pk, status in Run.objects.values_list("pk", "status"):
            if pk in self.final_seen:
                assert status == self.final_seen[pk], f"run {pk} left {self.final_seen[pk]}"
            elif status in FINAL:
                self.final_seen[pk] = status

    @invariant()
    def running_runs_stay_within_each_cap(self):
        for user in getattr(self, "users", []):
            running = Run.objects.filter(owner=user, status="running").count()
            assert running <= user.max_running_runs

    @invariant()
    def a_running_run_has_exactly_one_worker(self):
        for worker in Run.objects.filter(status="running").values_list("worker", flat=True):
            assert worker and not worker.startswith("duplicate")


@pytest.mark.django_db
def test_the_run_lifecycle_keeps_its_invariants():
    machine = RunLifecycle.TestCase
    machine.settings = settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    machine().runTest()
