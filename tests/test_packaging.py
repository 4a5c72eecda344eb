"""What an installed package offers a user: ``python -m conveyor``, one
version, and the marker that lets type checkers read its types."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import re
import subprocess
import sys
import types

import pytest

import conveyor
from conveyor import errors


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and "worker" in done.stdout


def test_the_version_comes_from_the_package_metadata() -> None:
    assert conveyor.__version__ == importlib.metadata.version("conveyor")
    assert importlib.metadata.metadata("conveyor")["License"] == "MIT"


def test_the_package_is_marked_typed() -> None:
    assert importlib.resources.files("conveyor").joinpath("py.typed").is_file()
    assert "Typing :: Typed" in (importlib.metadata.metadata("conveyor").get_all("Classifier") or [])


PUBLIC = {
    "Backoff", "BoundTask", "BreakerState", "Children", "CircuitBreaker", "CircuitOpen",
    "ConnectionFailed", "Conveyor", "ConveyorError", "Custom", "DeadLetteredJob", "Discard",
    "Durable", "Event", "EventBus", "EventConsumer", "EventRouter", "Exponential", "Fixed",
    "FlowJob", "FlowNode", "FlowProducer", "GroupInfo", "HandlerSignal", "InvalidArgument",
    "InvalidJobOptions", "InvalidSchedule", "InvalidTask", "Job", "JobContext", "JobFailed", "JobIsActive",
    "JobNotFound", "JobOptionsDict", "JobState", "KeepJobs", "Limiter", "ManualClock", "Middleware",
    "MissingExtra", "NotReplicated",
    "OutcomeUnknown", "PayloadError", "PayloadTooLarge", "Priority", "ProcessJob", "ProgressBus",
    "Queue", "QueueEvent", "QueueEvents", "QueueLimits", "QueueNotEmpty", "RateLimit",
    "RateLimited", "RedisOutOfMemory", "RedisSettings", "ResultMismatch", "Retry", "Schedule",
    "Scheduler", "SlotUnavailable", "StaleLease", "SyncProducer", "SyncTask", "SyncTaskContext",
    "Task", "TaskContext", "TaskQueue", "UnsafeRedis", "WaitTimeout", "Worker", "WorkerInfo", "__version__",
    "connect", "ping",
}  # fmt: skip


def test_the_public_surface_is_what_all_says_and_changes_only_on_purpose() -> None:
    assert conveyor.__all__ == sorted(conveyor.__all__)  # one entry per name, in order
    assert set(conveyor.__all__) == PUBLIC  # a name added or dropped is a decision: update PUBLIC
    for name in conveyor.__all__:
        assert hasattr(conveyor, name), name
    exported = {
        name
        for name in dir(conveyor)
        if not name.startswith("_") and not isinstance(getattr(conveyor, name), types.ModuleType)
    }
    assert exported <= set(conveyor.__all__), exported - set(conveyor.__all__)


def test_every_error_is_drawn_in_the_tree_and_exported() -> None:
    tree = errors.__doc__ or ""
    for name, value in vars(errors).items():
        if isinstance(value, type) and issubclass(value, errors.ConveyorError):
            assert re.search(rf"[─ ]{name}\b", tree), f"{name} is not drawn in conveyor.errors' tree"
            assert name in conveyor.__all__, f"{name} is not exported"


@pytest.mark.parametrize("package", ["archive", "realtime", "server", "tasks", "testing"])
def test_each_public_subpackage_says_what_it_offers(package: str) -> None:
    module = importlib.import_module(f"conveyor.{package}")
    offered = module.__all__
    assert offered == sorted(offered, key=lambda name: (not name.isupper(), name))  # constants first
    for name in offered:
        assert getattr(module, name) is not None, name
    # what both offer is the same object
    for name in set(offered) & set(conveyor.__all__):
        assert getattr(module, name) is getattr(conveyor, name), name
