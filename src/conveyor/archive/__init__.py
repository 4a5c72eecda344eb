"""An archive of finished jobs in SQL: every completed or failed-for-good
run of a queue's jobs in ``queue_jobs``, every schedule run in
``cron_logs`` with aggregates in ``cron_metrics``, written in batches
from the queues' events, off the workers' path. Needs ``conveyor[sql]``
and the database's async driver.
"""

from conveyor.extras import SQL

SQL.require("conveyor.archive")

from conveyor.archive.archive import ArchiveStats as ArchiveStats  # noqa: E402
from conveyor.archive.archive import JobArchive as JobArchive  # noqa: E402
from conveyor.archive.rows import CronRun as CronRun  # noqa: E402
from conveyor.archive.tables import ArchiveTables as ArchiveTables  # noqa: E402
from conveyor.archive.tables import archive_tables as archive_tables  # noqa: E402

__all__ = ["ArchiveStats", "ArchiveTables", "CronRun", "JobArchive", "archive_tables"]
