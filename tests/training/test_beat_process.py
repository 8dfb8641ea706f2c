"""The beat comes from a process of its own: a busy worker cannot starve it, a dead one
stops it (training.heartbeat.BeatProcess), with real processes and a real database."""

import os
import signal
import socket
import sys
import time

import dramatiq
import psutil
import pytest
from django.db import connections
from django.utils import timezone

from training.heartbeat import BeatProcess, WorkerHeartbeat, beat
from training.models import Worker
from training.workers import worker_name

# The beat process writes with its own connection: the test's rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_beats(settings):
    settings.WORKER_HEARTBEAT_S = 0.2


def wait_for(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def last_seen(name: str):
    return Worker.objects.get(name=name).last_seen


def test_the_beats_go_on_while_the_worker_holds_the_gil():
    name = f"{socket.gethostname()}:busy"
    beat(name)
    beats = BeatProcess.start(name)
    interval = sys.getswitchinterval()
    try:
        began = timezone.now()
        # A thread of this process could not run now: the GIL is handed over every 60 s.
        sys.setswitchinterval(60)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            pass
        sys.setswitchinterval(interval)
        assert (last_seen(name) - began).total_seconds() >= 1.0
    finally:
        sys.setswitchinterval(interval)
        beats.stop()
    assert not beats.alive()


def test_the_beats_stop_the_moment_the_worker_is_killed():
    name = f"{socket.gethostname()}:doomed"
    beat(name)
    connections.close_all()  # the fake worker must not share the test's connection
    report_r, report_w = os.pipe()
    worker = os.fork()
    if worker == 0:  # a worker: starts its beat process, says which, then waits to be killed
        try:
            os.close(report_r)
            beats = BeatProcess.start(name)
            os.write(report_w, str(beats.pid).encode())
            signal.pause()
        finally:
            os._exit(1)
    os.close(report_w)
    beat_pid = int(os.read(report_r, 32))
    os.close(report_r)
    first = last_seen(name)
    wait_for(lambda: last_seen(name) > first)  # it beats

    os.kill(worker, signal.SIGKILL)
    os.waitpid(worker, 0)
    wait_for(lambda: exited(beat_pid), timeout=5)
    stopped = last_seen(name)
    time.sleep(0.6)  # three beat periods: none comes
    assert last_seen(name) == stopped


def test_a_training_worker_registers_before_it_boots_and_unregisters_when_it_stops():
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, queues={"gpu"}, worker_threads=1)
    heartbeat = WorkerHeartbeat()
    heartbeat.before_worker_boot(broker, worker)
    beat_pid = heartbeat.beats.pid
    try:
        row = Worker.objects.get(name=worker_name())  # there before any consumer starts
        assert row.pid == os.getpid()
        heartbeat.after_worker_boot(broker, worker)
        wait_for(lambda: last_seen(worker_name()) > row.last_seen)
    finally:
        heartbeat.after_worker_shutdown(broker, worker)
    assert exited(beat_pid)
    assert not heartbeat.thread.is_alive()
    assert not Worker.objects.filter(name=worker_name()).exists()
