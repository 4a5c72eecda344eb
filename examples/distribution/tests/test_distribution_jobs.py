"""The jobs through the QueueService facade: a dispatch processed and its
result in the database; retries with exponential backoff, then the
dead-letter queue; a refused post dead-lettered at once; no double post
after a lost answer; token refresh; scheduled publishing; queue status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from distribution_env import Env

from conveyor import Exponential, JobState
from distribution.config import Settings
from distribution.service import (
    DISPATCH,
    DispatchJobData,
    ScheduledPublishJobData,
    TokenRefreshJobData,
    UnknownQueue,
    dispatch_job_id,
)
from distribution.store import aware


async def test_a_dispatch_job_is_processed_and_its_result_stored(env: Env) -> None:
    schedule_id, (target,) = await env.publish("Hello, world")
    status = await env.service.get_queue_status("dispatch")
    assert (status.waiting, status.completed) == (1, 0)

    assert await env.work_until_settled(schedule_id) == "published"

    _, (row,) = await env.store.schedule(schedule_id)
    (post,) = env.networks.posts
    assert (row.status, row.external_id, row.attempts, row.error) == ("sent", post["id"], 1, None)
    assert (post["text"], post["account"]) == ("Hello, world", "@ada")
    job = await env.app.queues[DISPATCH].queue.get_job(dispatch_job_id(schedule_id, target))
    assert job is not None and job.state is JobState.COMPLETED and job.result["externalId"] == post["id"]
    status = await env.service.get_queue_status("dispatch")
    assert (status.waiting, status.active, status.completed, status.failed) == (0, 0, 1, 0)


def test_the_default_backoff_is_5_25_125_seconds() -> None:
    settings = Settings()
    backoff = Exponential(settings.backoff_delay, settings.backoff_factor)
    assert [backoff.delay(n) for n in (1, 2, 3)] == [5, 25, 125]
    assert settings.max_retries == 3


async def test_transient_failures_are_retried_until_the_post_goes_out(env: Env) -> None:
    env.networks.fail["mastodon"] = [503, 429]
    schedule_id, _ = await env.publish()
    assert await env.work_until_settled(schedule_id) == "published"
    _, (row,) = await env.store.schedule(schedule_id)
    assert (row.status, row.attempts) == ("sent", 3)
    assert len(env.networks.posts) == 1


async def test_after_three_retries_the_dispatch_is_dead_lettered_then_replayed(env: Env) -> None:
    env.networks.fail["mastodon"] = [503] * 4
    schedule_id, (target,) = await env.publish()
    assert await env.work_until_settled(schedule_id) == "failed"

    _, (row,) = await env.store.schedule(schedule_id)
    assert row.status == "failed" and "HTTP 503" in row.error and row.attempts == 4
    assert env.networks.counters["mastodon:posts"] == 4 and env.networks.posts == []
    queue = env.app.queues[DISPATCH].queue
    (dead,) = await queue.get_jobs(JobState.FAILED)
    assert dead.id == dispatch_job_id(schedule_id, target) and dead.attempts_made == 4
    backoff = env.service.distribution.backoff
    assert [backoff.delay(n) for n in (1, 2, 3)] == pytest.approx([0.02, 0.1, 0.5])

    # the network is back: an operator replays the dispatch
    job = await env.service.add_retry_job(row.id)
    await env.app.run_worker(burst=True)  # the retry job, then the dead job it replays
    assert (await env.store.schedule(schedule_id))[0].status == "published"
    _, (row,) = await env.store.schedule(schedule_id)
    assert row.status == "sent" and row.job_id == dead.id
    assert len(env.networks.posts) == 1
    replay = await queue.get_job(job.id)
    assert replay is not None and replay.result == {"retried": True, "jobId": dead.id, "replayed": True}
    # the replayed job left the dead-letter queue: it completed, on the first of fresh attempts
    assert await queue.dead_letters() == [] and await queue.get_jobs(JobState.FAILED) == []
    sent = await queue.get_job(dead.id)
    assert sent is not None and sent.state is JobState.COMPLETED and row.attempts == 1
    # replaying a sent dispatch does nothing
    again = await env.service.add_retry_job(row.id)
    await env.app.run_worker(burst=True)
    done = await queue.get_job(again.id)
    assert done is not None and done.result == {"retried": False, "status": "sent"}


async def test_a_replay_whose_dead_job_retention_removed_adds_a_new_job(env: Env) -> None:
    env.networks.fail["mastodon"] = [503] * 4
    schedule_id, (target,) = await env.publish()
    assert await env.work_until_settled(schedule_id) == "failed"
    queue = env.app.queues[DISPATCH].queue
    assert await queue.clean(JobState.FAILED) == [dispatch_job_id(schedule_id, target)]
    _, (row,) = await env.store.schedule(schedule_id)
    job = await env.service.add_retry_job(row.id)
    await env.app.run_worker(burst=True)
    replay = await queue.get_job(job.id)
    assert replay is not None and replay.result["replayed"] is False
    _, (row,) = await env.store.schedule(schedule_id)
    assert row.status == "sent" and row.job_id == replay.result["jobId"] != dispatch_job_id(
        schedule_id, target
    )
    assert len(env.networks.posts) == 1


async def test_a_refused_post_is_dead_lettered_at_once(env: Env) -> None:
    schedule_id, _ = await env.publish(custom_message="x" * 600)  # over the network's limit
    assert await env.work_until_settled(schedule_id) == "failed"
    _, (row,) = await env.store.schedule(schedule_id)
    assert row.attempts == 1 and "HTTP 422" in row.error
    assert env.networks.counters["mastodon:posts"] == 1


async def test_a_retry_after_a_lost_answer_does_not_post_twice(env: Env) -> None:
    env.networks.fail_after_accept["mastodon"] = 1  # the post is made, the answer is a 500
    schedule_id, _ = await env.publish()
    assert await env.work_until_settled(schedule_id) == "published"
    assert len(env.networks.posts) == 1 and env.networks.counters["mastodon:posts"] == 2
    _, (row,) = await env.store.schedule(schedule_id)
    assert (row.external_id, row.attempts) == (env.networks.posts[0]["id"], 2)


async def test_a_dispatch_already_sent_is_not_sent_again(env: Env) -> None:
    schedule_id, (target,) = await env.publish()
    await env.work_until_settled(schedule_id)
    _, (row,) = await env.store.schedule(schedule_id)
    again = await env.service.add_dispatch_job(
        DispatchJobData(schedule_id=schedule_id, post_id=1, target_id=target),
        job_id="dispatch-again",
    )
    await env.app.run_worker(burst=True)
    done = await env.app.queues[DISPATCH].queue.get_job(again.id)
    assert done is not None and done.result == {"externalId": row.external_id, "alreadySent": True}
    assert len(env.networks.posts) == 1


async def test_an_expired_token_is_refreshed_before_posting(env: Env) -> None:
    schedule_id, (target,) = await env.publish()
    before = await env.store.connection(target)
    env.networks.expire(before.access_token)  # revoked early: the network answers 401
    assert await env.work_until_settled(schedule_id) == "published"
    after = await env.store.connection(target)
    assert after.access_token != before.access_token and after.refreshed_at is not None
    assert env.networks.counters["mastodon:refresh"] == 1

    # a token past its expiry by our own clock is refreshed before the call
    await env.store.set_token(target, after.access_token, datetime.now(UTC) - timedelta(seconds=1))
    schedule_id, _ = await _publish_to(env, target)
    assert await env.work_until_settled(schedule_id) == "published"
    assert env.networks.counters["mastodon:refresh"] == 2
    assert env.networks.counters["mastodon:posts"] == 3  # 401, then two posts


async def _publish_to(env: Env, target: int) -> tuple[int, int]:
    post = await env.store.add_post("Again")
    schedule, _ = await env.store.add_schedule(
        post.id, [target], scheduled_for=None, custom_message=None, request_ai_assets=False
    )
    await env.service.add_dispatch_job(
        DispatchJobData(schedule_id=schedule.id, post_id=post.id, target_id=target)
    )
    return schedule.id, target


async def test_token_refresh_repeats_every_24_hours_once_per_account(env: Env) -> None:
    connection = await env.connect()
    for _ in range(2):
        await env.service.add_token_refresh_job(TokenRefreshJobData(connection_id=connection.id))
    schedules = await env.app.queues["distribution:token-refresh"].queue.get_schedules()
    assert [(s.key, s.every) for s in schedules] == [(f"token-refresh-{connection.id}", 86400.0)]
    job = await env.service.distribution.token_refresh.enqueue(connection_id=connection.id)
    await env.app.run_worker(["distribution:token-refresh"], burst=True)
    done = await env.app.queues["distribution:token-refresh"].queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    refreshed = await env.store.connection(connection.id)
    assert refreshed.access_token != connection.access_token


async def test_a_scheduled_publish_waits_for_its_time(env: Env) -> None:
    targets = [(await env.connect(n)).id for n in ("mastodon", "bluesky")]
    post = await env.store.add_post("Later")
    at = datetime.now(UTC) + timedelta(seconds=1)
    schedule, _ = await env.store.add_schedule(
        post.id, targets, scheduled_for=at, custom_message=None, request_ai_assets=False
    )
    job = await env.service.add_scheduled_publish_job(ScheduledPublishJobData(schedule_id=schedule.id), at)
    assert job.state is JobState.DELAYED
    assert (await env.service.get_queue_status("scheduled")).delayed == 1

    assert await env.work_until_settled(schedule.id) == "published"
    _, rows = await env.store.schedule(schedule.id)
    assert all(aware(r.sent_at) >= at for r in rows)
    assert sorted(p["network"] for p in env.networks.posts) == ["bluesky", "mastodon"]


async def test_queue_status_names_the_three_queues(env: Env) -> None:
    for name in ("dispatch", "scheduled", "token-refresh"):
        status = await env.service.get_queue_status(name)
        assert status.model_dump() == {"waiting": 0, "active": 0, "completed": 0, "failed": 0, "delayed": 0}
    with pytest.raises(UnknownQueue, match="unknown queue 'emails'"):
        await env.service.get_queue_status("emails")
