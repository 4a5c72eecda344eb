"""Conveyor: background jobs and events on Redis, for asyncio."""

import importlib.metadata as _metadata

from conveyor.engine.backoff import Backoff as Backoff
from conveyor.engine.backoff import Custom as Custom
from conveyor.engine.backoff import Exponential as Exponential
from conveyor.engine.backoff import Fixed as Fixed
from conveyor.engine.children import Children as Children
from conveyor.engine.client.connection import connect as connect
from conveyor.engine.client.connection import ping as ping
from conveyor.engine.clock import ManualClock as ManualClock
from conveyor.engine.dlq import DeadLetteredJob as DeadLetteredJob
from conveyor.engine.events import QueueEvent as QueueEvent
from conveyor.engine.events import QueueEvents as QueueEvents
from conveyor.engine.flows import FlowJob as FlowJob
from conveyor.engine.flows import FlowNode as FlowNode
from conveyor.engine.flows import FlowProducer as FlowProducer
from conveyor.engine.guards import BreakerState as BreakerState
from conveyor.engine.guards import CircuitBreaker as CircuitBreaker
from conveyor.engine.guards import Limiter as Limiter
from conveyor.engine.job import Job as Job
from conveyor.engine.job import JobContext as JobContext
from conveyor.engine.limits import GroupInfo as GroupInfo
from conveyor.engine.limits import QueueLimits as QueueLimits
from conveyor.engine.limits import RateLimit as RateLimit
from conveyor.engine.middleware import Middleware as Middleware
from conveyor.engine.options import Durable as Durable
from conveyor.engine.options import JobOptionsDict as JobOptionsDict
from conveyor.engine.options import KeepJobs as KeepJobs
from conveyor.engine.options import Priority as Priority
from conveyor.engine.procpool import ProcessJob as ProcessJob
from conveyor.engine.queue import Queue as Queue
from conveyor.engine.registry import WorkerInfo as WorkerInfo
from conveyor.engine.scheduler import Scheduler as Scheduler
from conveyor.engine.schedules import Schedule as Schedule
from conveyor.engine.states import JobState as JobState
from conveyor.engine.worker import Worker as Worker
from conveyor.errors import CircuitOpen as CircuitOpen
from conveyor.errors import ConnectionFailed as ConnectionFailed
from conveyor.errors import ConveyorError as ConveyorError
from conveyor.errors import Discard as Discard
from conveyor.errors import HandlerSignal as HandlerSignal
from conveyor.errors import InvalidArgument as InvalidArgument
from conveyor.errors import InvalidJobOptions as InvalidJobOptions
from conveyor.errors import InvalidSchedule as InvalidSchedule
from conveyor.errors import InvalidTask as InvalidTask
from conveyor.errors import JobFailed as JobFailed
from conveyor.errors import JobIsActive as JobIsActive
from conveyor.errors import JobNotFound as JobNotFound
from conveyor.errors import MissingExtra as MissingExtra
from conveyor.errors import NotReplicated as NotReplicated
from conveyor.errors import OutcomeUnknown as OutcomeUnknown
from conveyor.errors import PayloadError as PayloadError
from conveyor.errors import PayloadTooLarge as PayloadTooLarge
from conveyor.errors import QueueNotEmpty as QueueNotEmpty
from conveyor.errors import RateLimited as RateLimited
from conveyor.errors import RedisOutOfMemory as RedisOutOfMemory
from conveyor.errors import ResultMismatch as ResultMismatch
from conveyor.errors import Retry as Retry
from conveyor.errors import SlotUnavailable as SlotUnavailable
from conveyor.errors import StaleLease as StaleLease
from conveyor.errors import UnsafeRedis as UnsafeRedis
from conveyor.errors import WaitTimeout as WaitTimeout
from conveyor.realtime import Event as Event
from conveyor.realtime import EventBus as EventBus
from conveyor.realtime import EventConsumer as EventConsumer
from conveyor.realtime import EventRouter as EventRouter
from conveyor.realtime import ProgressBus as ProgressBus
from conveyor.settings import RedisSettings as RedisSettings
from conveyor.tasks.app import Conveyor as Conveyor
from conveyor.tasks.blocking import SyncTask as SyncTask
from conveyor.tasks.blocking import SyncTaskContext as SyncTaskContext
from conveyor.tasks.producer import SyncProducer as SyncProducer
from conveyor.tasks.queue import TaskQueue as TaskQueue
from conveyor.tasks.task import BoundTask as BoundTask
from conveyor.tasks.task import Task as Task
from conveyor.tasks.task import TaskContext as TaskContext

try:
    __version__ = _metadata.version("conveyor")
except _metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Backoff",
    "BoundTask",
    "BreakerState",
    "Children",
    "CircuitBreaker",
    "CircuitOpen",
    "ConnectionFailed",
    "Conveyor",
    "ConveyorError",
    "Custom",
    "DeadLetteredJob",
    "Discard",
    "Durable",
    "Event",
    "EventBus",
    "EventConsumer",
    "EventRouter",
    "Exponential",
    "Fixed",
    "FlowJob",
    "FlowNode",
    "FlowProducer",
    "GroupInfo",
    "HandlerSignal",
    "InvalidArgument",
    "InvalidJobOptions",
    "InvalidSchedule",
    "InvalidTask",
    "Job",
    "JobContext",
    "JobFailed",
    "JobIsActive",
    "JobNotFound",
    "JobOptionsDict",
    "JobState",
    "KeepJobs",
    "Limiter",
    "ManualClock",
    "Middleware",
    "MissingExtra",
    "NotReplicated",
    "OutcomeUnknown",
    "PayloadError",
    "PayloadTooLarge",
    "Priority",
    "ProcessJob",
    "ProgressBus",
    "Queue",
    "QueueEvent",
    "QueueEvents",
    "QueueLimits",
    "QueueNotEmpty",
    "RateLimit",
    "RateLimited",
    "RedisOutOfMemory",
    "RedisSettings",
    "ResultMismatch",
    "Retry",
    "Schedule",
    "Scheduler",
    "SlotUnavailable",
    "StaleLease",
    "SyncProducer",
    "SyncTask",
    "SyncTaskContext",
    "Task",
    "TaskContext",
    "TaskQueue",
    "UnsafeRedis",
    "WaitTimeout",
    "Worker",
    "WorkerInfo",
    "__version__",
    "connect",
    "ping",
]
