"""This worker process: its name in the Worker table, and whether it is being stopped."""

import os
import socket
import threading

# Set when Dramatiq stops this worker process (SIGTERM): the run checkpoints and goes
# back to the waiting line instead of being lost (training.heartbeat sets it).
SHUTTING_DOWN = threading.Event()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
