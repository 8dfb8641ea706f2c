"""The CPU worker that computes statistics is not a training worker."""

import dramatiq
import pytest

from training.heartbeat import WorkerHeartbeat
from training.models import Worker


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("queues", "beats"), [({"default"}, False), ({"gpu"}, True), (None, True)])
def test_only_workers_that_take_gpu_work_beat(queues, beats, settings):
    settings.WORKER_HEARTBEAT_S = 0.05
    worker = dramatiq.Worker(dramatiq.get_broker(), queues=queues, worker_threads=1)
    heartbeat = WorkerHeartbeat()
    heartbeat.after_worker_boot(dramatiq.get_broker(), worker)
    try:
        if beats:
            heartbeat.thread.join(timeout=0.5)  # a few beats
            assert Worker.objects.count() == 1
        else:
            assert not hasattr(heartbeat, "thread")
            assert Worker.objects.count() == 0
    finally:
        # Stops and joins the heartbeat thread: one left running would go on beating
        # into later tests (and log "heartbeat failed" once they close the database).
        heartbeat.after_worker_shutdown(dramatiq.get_broker(), worker)
        if hasattr(heartbeat, "thread"):
            assert not heartbeat.thread.is_alive()
