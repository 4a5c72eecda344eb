"""The adapters against the fake upstream APIs: paging past Ticketmaster's
depth limit, both Spotify profiles, token expiry, throttling and faults."""

from __future__ import annotations

import pytest
from upstream import Upstream

from setlist.adapters.http import Rejected, Throttled
from setlist.adapters.ticketmaster import TicketmasterClient
from setlist.fake.server import FakeConfig, Fault


async def all_events(upstream: Upstream, key: str) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    async for chunk in upstream.ticketmaster.events(upstream.artist(key).attraction_id):
        found.update({e["id"]: e for e in chunk})
    return found


async def test_every_event_is_read_past_the_paging_depth_limit(upstream: Upstream) -> None:
    prolific = upstream.artist("prolific")
    assert len(prolific.events) > 1_200

    events = await all_events(upstream, "prolific")

    assert set(events) == {e.id for e in prolific.events}
    assert (
        upstream.state.counters["ticketmaster GET /discovery/v2/events.json"]
        == upstream.ticketmaster.requests
    )
    assert upstream.ticketmaster.requests < 20


async def test_a_mid_size_artist_takes_two_pages_and_a_sparse_one_none(upstream: Upstream) -> None:
    assert len(await all_events(upstream, "midsize")) == len(upstream.artist("midsize").events) > 200
    assert upstream.ticketmaster.requests == 2
    assert await all_events(upstream, "sparse") == {}


async def test_a_spike_arrest_is_retried_and_a_quota_fault_throttles(upstream: Upstream) -> None:
    upstream.state.config = FakeConfig(faults=[Fault(service="ticketmaster", kind="spike", times=1)])
    attraction = await upstream.ticketmaster.attraction(upstream.artist("midsize").attraction_id)
    assert attraction is not None and attraction["name"] == "Velvet Echo"

    upstream.state.config = FakeConfig(faults=[Fault(service="ticketmaster", kind="quota", times=1)])
    with pytest.raises(Throttled) as caught:
        await upstream.ticketmaster.attraction(upstream.artist("midsize").attraction_id)
    assert caught.value.retry_after >= 60


async def test_a_bad_key_is_rejected_and_never_logged(upstream: Upstream) -> None:
    bad = TicketmasterClient(upstream.http, upstream.ticketmaster.base_url, "secret-key-123")
    with pytest.raises(Rejected) as caught:
        await bad.attraction("x")
    assert "Invalid ApiKey" in str(caught.value) and "secret-key-123" not in str(caught.value)

    upstream.state.config = FakeConfig(faults=[Fault(service="ticketmaster", kind="quota", times=4)])
    with pytest.raises(Throttled) as throttled:
        await bad.attraction("x")
    assert "secret-key-123" not in repr(throttled.value)


@pytest.mark.parametrize("profile", ["extended", "development"])
async def test_albums_and_tracks_under_both_spotify_profiles(upstream: Upstream, profile: str) -> None:
    upstream.state.config = FakeConfig(spotify_profile=profile)  # type: ignore[arg-type]
    prolific = upstream.artist("prolific")
    spotify = upstream.spotify

    albums = await spotify.albums(prolific.spotify_id)
    expected = {a.id for a in prolific.albums if a.group in ("album", "single") and "US" in a.markets}
    assert {a["id"] for a in albums} == expected
    longest = max(prolific.albums, key=lambda a: len(a.tracks))
    tracks = await spotify.album_tracks(longest.id)
    assert len(tracks) == len(longest.tracks) > 50
    full = await spotify.tracks([t["id"] for t in tracks[:60]] + ["unknown0000000000000000"])
    assert len(full) == 60 and all("external_ids" in t for t in full)
    liveness = await spotify.liveness([t["id"] for t in tracks])

    counters = upstream.state.counters
    if profile == "extended":
        assert spotify.page_limit == 50 and spotify.batch_tracks and liveness is not None
        assert all("popularity" in t for t in full)
        assert counters["spotify GET /v1/tracks/{id}"] == 0
    else:
        assert spotify.page_limit == 10 and not spotify.batch_tracks and liveness is None
        assert not any("popularity" in t for t in full)
        assert counters["spotify GET /v1/tracks?ids="] == 1  # the one 403, paid once
        assert counters["spotify GET /v1/tracks/{id}"] == 61


async def test_an_expired_token_is_refreshed_once_and_the_call_repeated(upstream: Upstream) -> None:
    upstream.state.config = FakeConfig(token_ttl_calls=3)
    prolific = upstream.artist("prolific")

    for _ in range(10):
        assert (await upstream.spotify.artist(prolific.spotify_id) or {})["name"] == "Neon Harbor"

    assert upstream.state.counters["spotify POST /api/token"] >= 3


async def test_retry_after_is_honoured_inline_when_short_and_raised_when_long(upstream: Upstream) -> None:
    artist_id = upstream.artist("midsize").spotify_id
    upstream.state.config = FakeConfig(
        faults=[Fault(service="spotify", route="/v1/artists", kind="retry_after", retry_after=0.05)]
    )
    assert await upstream.spotify.artist(artist_id) is not None

    upstream.state.config = FakeConfig(
        faults=[Fault(service="spotify", route="/v1/artists", kind="retry_after", retry_after=79_892)]
    )
    with pytest.raises(Throttled) as caught:
        await upstream.spotify.artist(artist_id)
    assert caught.value.retry_after == 79_892


async def test_a_bad_client_secret_is_not_retried(upstream: Upstream) -> None:
    upstream.spotify.client_secret = "wrong"
    with pytest.raises(Rejected, match="invalid_client"):
        await upstream.spotify.artist(upstream.artist("midsize").spotify_id)
    assert upstream.state.counters["spotify POST /api/token"] == 1


async def test_setlists_404_means_none_and_429_backs_off(upstream: Upstream) -> None:
    assert (await upstream.setlistfm.setlists(upstream.artist("sparse").mbid))["setlist"] == []

    upstream.state.config = FakeConfig(faults=[Fault(service="setlistfm", kind="no_header", times=2)])
    page = await upstream.setlistfm.setlists(upstream.artist("midsize").mbid)

    assert len(page["setlist"]) == 20 and page["total"] == 25
    assert upstream.state.counters["setlistfm faults"] == 2
