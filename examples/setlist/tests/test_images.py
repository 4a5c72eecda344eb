"""Artist pictures fetched once and stored resized (``image-processing``),
served by the API; a picture that is not one fails at once, an upstream
error is retried."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image
from setlist_env import Env

from conveyor import JobState
from setlist.fake.server import FakeConfig, Fault
from setlist.images import SIZES, BadImage, resize
from setlist.queues import QueueName

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE
async def test_an_import_stores_the_artists_picture_in_every_size(env: Env, admin: httpx.AsyncClient) -> None:
    artist_id = await env.import_artist("midsize")  # Ticketmaster's 16:9 picture, 640 x 360

    page = (await admin.get(f"/api/artists/{artist_id}")).json()
    assert page["images"] == {
        size: {"url": f"/api/artists/{artist_id}/images/{size}", "width": width, "height": width * 9 // 16}
        for size, width in SIZES.items()
    }
    served = await admin.get(f"/api/artists/{artist_id}/images/thumb")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert "max-age" in served.headers["cache-control"]
    with Image.open(io.BytesIO(served.content)) as thumb:
        assert (thumb.format, thumb.size) == ("JPEG", (64, 36))

    assert (await admin.get(f"/api/artists/{artist_id}/images/huge")).status_code == 422
    assert (await admin.get("/api/artists/nobody/images/thumb")).status_code == 404

    # importing again queues no second processing of the same picture
    queue = env.app.queues[QueueName.IMAGE_PROCESSING].queue
    assert len(await queue.get_jobs(JobState.COMPLETED)) == 1
    await env.import_artist("midsize")
    assert len(await queue.get_jobs(JobState.COMPLETED)) == 1


@SQLITE
async def test_a_cdn_error_is_retried_and_a_missing_picture_fails_at_once(env: Env) -> None:
    env.upstream.state.config = FakeConfig(faults=[Fault(service="images", kind="server_error", times=2)])
    artist_id = await env.import_artist("sparse")
    await env.drain(QueueName.IMAGE_PROCESSING)
    queue = env.app.queues[QueueName.IMAGE_PROCESSING].queue
    (done,) = await queue.get_jobs(JobState.COMPLETED)
    assert done.attempts_made == 2 and env.upstream.state.counters["images faults"] == 2  # two 500s, retried
    assert await env.pipeline.upkeep.images.source(artist_id) == "http://fake/images/tm/sparse.jpg"

    gone = await env.pipeline.upkeep.queue_images(artist_id, "http://fake/images/tm/nobody.jpg")
    assert gone is not None
    await env.app.run_worker([QueueName.IMAGE_PROCESSING.value], burst=True)
    failed = await queue.get_job(gone.id)
    assert failed is not None and failed.state is JobState.FAILED and failed.attempts_made == 1
    assert failed.error is not None and "HTTP 404" in failed.error
    # the stored picture is left as it was
    assert await env.pipeline.upkeep.images.source(artist_id) == "http://fake/images/tm/sparse.jpg"


def test_only_pictures_are_resized_never_enlarged() -> None:
    for junk in (b"", b"not a picture", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20):
        with pytest.raises(BadImage):
            resize(junk)
    small = io.BytesIO()
    Image.new("RGB", (100, 50), (200, 10, 10)).save(small, "PNG")
    sizes = {v.size: (v.width, v.height) for v in resize(small.getvalue())}
    assert sizes == {"thumb": (64, 32), "small": (100, 50), "medium": (100, 50), "large": (100, 50)}
