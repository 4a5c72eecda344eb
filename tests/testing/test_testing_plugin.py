"""The testing story from a user's side: a project of its own, with the
README's conftest, runs pytest and passes: a task called directly with a
test context (progress and logs recorded), jobs run on the plugin's
private Redis until idle, each test starting clean, and eager mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Conveyor, InvalidJobOptions, JobFailed, JobState, TaskContext
from userland import run_pytest

MYAPP = """
from pydantic import BaseModel

from conveyor import Conveyor, TaskContext

app = Conveyor()
imports = app.queue("imports")


class Summary(BaseModel):
    artist: str
    albums: int


@imports.task(attempts=3, backoff=0)
async def import_artist(ctx: TaskContext, artist: str, albums: int = 2) -> Summary:
    await ctx.progress("albums", 50, f"listing {albums} albums")
    await ctx.log(f"importing {artist}")
    if artist == "nobody":
        raise LookupError("no such artist")
    return Summary(artist=artist, albums=albums)
"""

CONFTEST = """
import pytest

from myapp import app


@pytest.fixture
async def jobs(conveyor_redis):
    await app.use_redis(conveyor_redis)
    yield app
    await app.use_redis(None)
"""

TESTS = """
import pytest

from conveyor import JobFailed, JobState, TaskContext
from conveyor.testing import run_until_idle
from myapp import Summary, app, import_artist


async def test_a_task_called_directly_with_a_test_context():
    ctx = TaskContext.for_testing()
    assert await import_artist(ctx, "Low", albums=3) == Summary(artist="Low", albums=3)
    assert ctx.recorded.progress == [{"stage": "albums", "percent": 50, "message": "listing 3 albums"}]
    assert ctx.recorded.logs == ["importing Low"]


async def test_jobs_run_on_the_private_redis_until_idle(jobs):
    job = await import_artist.enqueue("Low")
    failing = await import_artist.enqueue("nobody")
    await run_until_idle(jobs)
    assert await job.wait_until_finished() == Summary(artist="Low", albums=2)
    with pytest.raises(JobFailed, match="no such artist"):
        await failing.wait_until_finished()
    stored = await jobs.queues["imports"].queue.get_job(failing.id)
    assert stored.attempts_made == 3


async def test_each_test_starts_clean(jobs):
    assert sum((await jobs.queues["imports"].queue.counts()).values()) == 0


async def test_eager_mode_runs_the_task_inline():
    app.eager = True
    try:
        job = await import_artist.enqueue("Low", albums=1)
        assert job.state is JobState.COMPLETED
        assert await job.wait_until_finished() == Summary(artist="Low", albums=1)
        failed = await import_artist.enqueue("nobody")
        assert failed.state is JobState.FAILED and failed.attempts_made == 3
    finally:
        app.eager = False
"""


@pytest.mark.single_node("its own private Redis, or none: the cluster pass adds nothing")
def test_a_users_project_passes_its_tests_with_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(MYAPP)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_myapp.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    run_pytest(tmp_path, "test_myapp.py", passed=4)


async def test_eager_mode_checks_arguments_and_keeps_job_options() -> None:
    app = Conveyor(eager=True)  # never connects
    work = app.queue("eager")
    seen: list[int] = []

    @work.task(attempts=2)
    async def flaky(ctx: TaskContext, n: int) -> int:
        seen.append(ctx.attempt)
        if ctx.attempt < 2:
            raise RuntimeError("first try fails")
        return n * 2

    job = await flaky.with_options(job_id="eager-1", headers={"tenant": "t"}).enqueue(21)
    assert (job.id, job.state, job.attempts_made, job.headers) == (
        "eager-1",
        JobState.COMPLETED,
        2,
        {"tenant": "t"},
    )
    assert job.history == [{"attempt": 1, "error": "RuntimeError: first try fails"}]
    assert await job.wait_until_finished() == 42 and seen == [1, 2]
    with pytest.raises(InvalidJobOptions, match="n: Input should be a valid integer"):
        await flaky.enqueue("not a number")  # type: ignore[arg-type]

    @work.task
    async def refuses(ctx: TaskContext) -> None:
        raise LookupError("gone")

    failed = await refuses.enqueue()
    assert failed.state is JobState.FAILED and failed.error == "LookupError: gone"
    assert failed.traceback is not None and "LookupError: gone" in failed.traceback
    with pytest.raises(JobFailed, match="gone"):
        await failed.wait_until_finished()
