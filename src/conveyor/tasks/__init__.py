"""The high-level layer: an app object with typed tasks (all of it also
exported by ``conveyor`` itself)."""

from conveyor.tasks.app import Conveyor as Conveyor
from conveyor.tasks.blocking import SyncTask as SyncTask
from conveyor.tasks.blocking import SyncTaskContext as SyncTaskContext
from conveyor.tasks.queue import TaskQueue as TaskQueue
from conveyor.tasks.task import BoundTask as BoundTask
from conveyor.tasks.task import Task as Task
from conveyor.tasks.task import TaskContext as TaskContext

__all__ = ["BoundTask", "Conveyor", "SyncTask", "SyncTaskContext", "Task", "TaskContext", "TaskQueue"]
