"""This process's memory, as the run page shows it: resident set now and at its peak."""

from __future__ import annotations

import resource

import torch


def reset_peak_memory() -> None:
    """Start counting this process's peak memory afresh: a run reports its own peak.

    ``ru_maxrss`` cannot be reset and is not even this process's own: exec records the
    replaced address space's high-water mark into it, so a child started by a big
    process (a test session, a parent that just converted a model) inherits that peak.
    Linux keeps a resettable high-water mark per address space instead (``VmHWM``);
    writing 5 to ``/proc/self/clear_refs`` sets it back to the current resident set.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # not Linux: the peak stays the process's lifetime peak
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB.

    The peak is the address space's high-water mark since exec or the last
    :func:`reset_peak_memory` (``VmHWM``); ``ru_maxrss`` only where /proc is missing.
    """
    status = _proc_status_mb(("VmRSS", "VmHWM"))
    if status:
        current, peak = status["VmRSS"], status["VmHWM"]
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        current = peak  # the best cheap estimate without /proc
    # The kernel updates its high-water mark lazily, so it can trail the current size.
    return current, max(peak, current)


def _proc_status_mb(keys: tuple[str, ...]) -> dict[str, float]:
    """Those ``/proc/self/status`` fields (kB there) in MiB; empty when unreadable."""
    found: dict[str, float] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in keys:
                    found[key] = int(value.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        return {}
    return found if len(found) == len(keys) else {}


def gpu_memory_mb() -> tuple[float | None, float | None]:
    """(allocated now, peak allocated) on the CUDA device in MiB; None without one."""
    if not torch.cuda.is_available():
        return None, None
    return torch.cuda.memory_allocated() / 2**20, torch.cuda.max_memory_allocated() / 2**20
