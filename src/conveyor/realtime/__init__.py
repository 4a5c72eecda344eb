"""Real time: progress of long-running work, and event streams."""

from conveyor.realtime.consumer import EventConsumer as EventConsumer
from conveyor.realtime.dead_letters import TRANSIENT_ERRORS as TRANSIENT_ERRORS
from conveyor.realtime.dead_letters import DeadLetter as DeadLetter
from conveyor.realtime.dead_letters import DeadLettered as DeadLettered
from conveyor.realtime.dead_letters import DeadLetterReason as DeadLetterReason
from conveyor.realtime.progress import ProgressBus as ProgressBus
from conveyor.realtime.progress import ProgressStatus as ProgressStatus
from conveyor.realtime.router import Event as Event
from conveyor.realtime.router import EventRouter as EventRouter
from conveyor.realtime.streams import EventBus as EventBus

__all__ = [
    "TRANSIENT_ERRORS",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLettered",
    "Event",
    "EventBus",
    "EventConsumer",
    "EventRouter",
    "ProgressBus",
    "ProgressStatus",
]
