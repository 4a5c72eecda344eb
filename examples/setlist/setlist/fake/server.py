"""A local fake of Ticketmaster Discovery v2, the Spotify Web API (both the
``extended`` and the 2026 ``development`` profile) and setlist.fm 1.0,
answering in their wire formats (music-apis.md §1-3).

Mounted under ``/ticketmaster``, ``/spotify-accounts``, ``/spotify-api``
and ``/setlistfm``; the artists' pictures the answers link to are served
under ``/images``, and a webhook receiver under ``/receiver`` (see
``receiver``). ``/_fake/config`` (POST) sets the profile, latency,
enforced rate limits and injected faults; ``/_fake/counters`` reports the
requests per route and service; ``/_fake/reset`` clears both.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import math
import re
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from PIL import Image, ImageDraw
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from setlist.fake.fixtures import FakeAlbum, FakeArtist, FakeEvent, FakeTrack, FakeVenue, build_artists
from setlist.fake.receiver import Receiver

API_KEY = "fake-tm-key"
SETLISTFM_KEY = "fake-setlistfm-key"
CLIENT_ID = "fake-client"
CLIENT_SECRET = "fake-secret"
DAILY_QUOTA = 5000
Service = Literal["ticketmaster", "spotify", "setlistfm", "images"]
DEFAULT_RATES: dict[Service, int] = {"ticketmaster": 5, "setlistfm": 2, "spotify": 20}


class Fault(BaseModel):
    """An injected failure: from the ``after``-th matching request on (1 =
    the first), ``times`` requests fail as ``kind``."""

    service: Service
    route: str = ""  # a substring of the route template, e.g. "/albums/{id}/tracks"
    kind: Literal["spike", "quota", "retry_after", "no_header", "server_error", "token_expired"]
    after: int = Field(default=1, ge=1)
    times: int = Field(default=1, ge=1)
    retry_after: float = 1.0
    seen: int = 0


class FakeConfig(BaseModel):
    spotify_profile: Literal["extended", "development"] = "extended"
    latency_ms: float = Field(default=0.0, ge=0)
    #: Answer 429 past each upstream's rate: Ticketmaster's spike arrest,
    #: setlist.fm's 429, Spotify's 429 with Retry-After.
    enforce_limits: bool = False
    #: Requests per second each upstream allows: what the real APIs allow
    #: (music-apis.md; Spotify publishes no number, 20/s stands in for it).
    rates: dict[Service, int] = Field(default_factory=lambda: dict(DEFAULT_RATES))
    token_ttl_calls: int | None = None  # a token expires after this many API calls
    faults: list[Fault] = Field(default_factory=list)


@dataclass
class FakeState:
    artists: dict[str, FakeArtist]
    config: FakeConfig = field(default_factory=FakeConfig)
    counters: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, int] = field(default_factory=dict)  # token -> API calls made with it
    windows: dict[str, deque[float]] = field(default_factory=dict)
    images: dict[tuple[str, str], bytes] = field(default_factory=dict)
    inflight: Counter[str] = field(default_factory=Counter)
    receiver: Receiver = field(default_factory=Receiver)

    def __post_init__(self) -> None:
        self.by_attraction = {a.attraction_id: a for a in self.artists.values()}
        self.by_spotify = {a.spotify_id: a for a in self.artists.values()}
        self.by_mbid = {a.mbid: a for a in self.artists.values()}
        self.albums: dict[str, tuple[FakeArtist, FakeAlbum]] = {
            al.id: (a, al) for a in self.artists.values() for al in a.albums
        }
        self.venues: dict[str, FakeVenue] = {
            e.venue.id: e.venue for a in self.artists.values() for e in a.events
        }
        self.tracks: dict[str, tuple[FakeAlbum, FakeTrack]] = {
            t.id: (al, t) for a in self.artists.values() for al in a.albums for t in al.tracks
        }


def _tm_error(status: int, code: str, detail: str) -> JSONResponse:
    link = {"about": {"href": f"/discovery/v2/errors.html#{code}"}}
    body = {"errors": [{"_links": link, "code": code, "detail": detail, "status": f"{status} BAD_REQUEST"}]}
    return JSONResponse(body, status)


def _sp_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status)


def _fault_response(fault: Fault, request: Request) -> Response:
    if fault.service == "ticketmaster":
        if fault.kind == "quota":
            key = request.query_params.get("apikey", "")
            text = f"Rate limit quota violation. Quota limit  exceeded. Identifier : {key}"
            return JSONResponse(
                {
                    "fault": {
                        "faultstring": text,
                        "detail": {"errorcode": "policies.ratelimit.QuotaViolation"},
                    }
                },
                429,
            )
        if fault.kind in ("spike", "retry_after", "no_header"):
            return _spike()
        return JSONResponse({"fault": {"faultstring": "Internal error"}}, 503)
    if fault.service == "spotify":
        if fault.kind == "token_expired":
            return _sp_error(401, "The access token expired")
        if fault.kind == "retry_after":
            return Response(status_code=429, headers={"Retry-After": f"{fault.retry_after:g}"})
        if fault.kind in ("spike", "no_header", "quota"):
            return _sp_error(429, "API rate limit exceeded")
        return _sp_error(502, "Bad gateway")
    if fault.kind == "server_error":
        return JSONResponse({"code": 500, "status": "Internal Server Error", "message": "error"}, 500)
    return _setlistfm_throttled()


def _setlistfm_throttled() -> JSONResponse:
    """setlist.fm's 429 comes from AWS API Gateway, with no Retry-After."""
    return JSONResponse(
        {"message": "Too Many Requests"}, 429, headers={"x-amzn-errortype": "TooManyRequestsException"}
    )


def _tm_not_found(ident: str) -> JSONResponse:
    body = {
        "errors": [
            {
                "code": "DIS1004",
                "status": "404",
                "detail": f"Resource not found with provided criteria (locale=en-us, id={ident})",
                "_links": {"about": {"href": "/discovery/v2/errors.html#DIS1004"}},
            }
        ]
    }
    return JSONResponse(body, 404)


def _spike() -> JSONResponse:
    text = (
        "Spike arrest violation. Allowed rate : MessageRate{messagesPerPeriod=5, "
        "periodInMicroseconds=1000000, maxBurstMessageCount=1.0}"
    )
    return JSONResponse(
        {"fault": {"faultstring": text, "detail": {"errorcode": "policies.ratelimit.SpikeArrestViolation"}}},
        429,
    )


def create_fake(state: FakeState | None = None, *, public_base: str = "") -> Starlette:
    """The fake as an ASGI app. ``public_base`` is the address clients use
    (Spotify's ``next`` links are absolute); by default the request's own."""
    st = state or FakeState(build_artists())

    def base(request: Request) -> str:
        return public_base or str(request.base_url).rstrip("/")

    async def gate(request: Request, service: Service, route: str) -> Response | None:
        """Counts the request, waits the configured latency, applies limits
        and faults; returns the response to send instead, if any."""
        cfg = st.config
        st.counters[f"{service} {request.method} {route}"] += 1
        st.counters[service] += 1
        if cfg.latency_ms:
            # requests of one route served at once: the highest is kept as ``peak <route>``
            st.inflight[route] += 1
            peak = f"peak {service} {route}"
            st.counters[peak] = max(st.counters[peak], st.inflight[route])
            try:
                await asyncio.sleep(cfg.latency_ms / 1000)
            finally:
                st.inflight[route] -= 1
        for fault in cfg.faults:
            if fault.service == service and fault.route in route:
                fault.seen += 1
                if fault.after <= fault.seen < fault.after + fault.times:
                    st.counters[f"{service} faults"] += 1
                    return _fault_response(fault, request)
        per_second = cfg.rates.get(service)
        if cfg.enforce_limits and per_second is not None:
            window = st.windows.setdefault(service, deque())
            now = time.monotonic()
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= per_second:
                st.counters[f"{service} 429"] += 1
                if service == "spotify":
                    return JSONResponse(
                        {"error": {"status": 429, "message": "API rate limit exceeded"}},
                        429,
                        headers={"Retry-After": "1"},
                    )
                return _spike() if service == "ticketmaster" else _setlistfm_throttled()
            window.append(now)
        return None

    # -- Ticketmaster ---------------------------------------------------------------

    async def tm_auth(request: Request, route: str) -> Response | None:
        if (blocked := await gate(request, "ticketmaster", route)) is not None:
            return blocked
        if request.query_params.get("apikey") != API_KEY:
            body = {
                "fault": {"faultstring": "Invalid ApiKey", "detail": {"errorcode": "oauth.v2.InvalidApiKey"}}
            }
            return JSONResponse(body, 401)
        return None

    def tm_ok(body: dict[str, Any]) -> JSONResponse:
        used = st.counters["ticketmaster"]
        headers = {
            "Rate-Limit": str(DAILY_QUOTA),
            "Rate-Limit-Available": str(max(0, DAILY_QUOTA - used)),
            "Rate-Limit-Over": "0",
            "Rate-Limit-Reset": str(int(time.time() * 1000) + 86_400_000),
        }
        return JSONResponse(body, headers=headers)

    async def tm_events(request: Request) -> Response:
        if (denied := await tm_auth(request, "/discovery/v2/events.json")) is not None:
            return denied
        q = request.query_params
        try:
            size, page = int(q.get("size", "20")), int(q.get("page", "0"))
        except ValueError:
            return _tm_error(400, "DIS1001", "Query param must be a number")
        if size > 200:
            return _tm_error(400, "DIS1036", 'Query param "size" must be less than 200')
        if page * size > 1000:
            return _tm_error(
                400,
                "DIS1035",
                "API Limits Exceeded: Max paging depth exceeded. (page * size) must be less than 1,000",
            )
        bounds = []
        for name in ("startDateTime", "endDateTime"):
            value = q.get(name)
            if value is not None and not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value):
                return _tm_error(
                    400,
                    "DIS1015",
                    "Query param with date must be of valid format YYYY-MM-DDTHH:mm:ssZ "
                    "{example: 2020-08-01T14:00:00Z }",
                )
            bounds.append(value)
        ids = [i for i in q.get("attractionId", "").split(",") if i]
        events = [e for i in ids if (a := st.by_attraction.get(i)) for e in a.events]
        start, end = bounds
        if start or end:  # events without a time are placed at their day's start

            def at(e: FakeEvent) -> str:
                return e.utc or (f"{e.local_date}T00:00:00Z" if e.local_date else "")

            events = [
                e for e in events if at(e) and (not start or at(e) >= start) and (not end or at(e) <= end)
            ]
        if q.get("includeTBA") == "only":
            events = [e for e in events if not e.local_date]
        elif q.get("includeTBA") == "no":
            events = [e for e in events if e.local_date]
        if q.get("sort", "relevance,desc") == "id,asc":
            events = sorted(events, key=lambda e: e.id)
        total = min(len(events), 10_000)
        pages = math.ceil(total / size) if size else 0
        chunk = events[page * size : (page + 1) * size]
        path = "/discovery/v2/events.json"
        shown = {k: v for k, v in q.items() if k != "apikey"}
        links = {"self": {"href": f"{path}?{_qs({**shown, 'page': page})}"}}
        if pages:
            links["first"] = {"href": f"{path}?{_qs({**shown, 'page': 0})}"}
            links["last"] = {"href": f"{path}?{_qs({**shown, 'page': pages - 1})}"}
            if page + 1 < pages:
                links["next"] = {"href": f"{path}?{_qs({**shown, 'page': page + 1})}"}
            if page > 0:
                links["prev"] = {"href": f"{path}?{_qs({**shown, 'page': page - 1})}"}
        body: dict[str, Any] = {
            "_links": links,
            "page": {"size": size, "totalElements": total, "totalPages": pages, "number": page},
        }
        if chunk:
            body["_embedded"] = {"events": [_event(e, request) for e in chunk]}
        return tm_ok(body)

    def _event(e: FakeEvent, request: Request) -> dict[str, Any]:
        start: dict[str, Any] = {
            "dateTBD": False,
            "dateTBA": e.local_date is None,
            "timeTBA": e.local_time is None,
            "noSpecificTime": e.local_date is not None and e.local_time is None,
        }
        if e.local_date:
            start["localDate"] = e.local_date
        if e.local_time:
            start["localTime"] = e.local_time
        if e.utc:
            start["dateTime"] = e.utc
        dates: dict[str, Any] = {"start": start, "status": {"code": e.status}, "spanMultipleDays": False}
        if e.with_timezone:
            dates["timezone"] = e.venue.timezone
        if e.initial_start:
            dates["initialStartDate"] = {"localDate": e.initial_start}
        embedded: dict[str, Any] = {"venues": [_venue(e.venue)]}
        if e.attraction_ids:
            embedded["attractions"] = [
                _attraction(st.by_attraction[i], request) if i in st.by_attraction else _support(i)
                for i in e.attraction_ids
            ]
        return {
            "name": e.name,
            "type": "event",
            "id": e.id,
            "test": False,
            "url": f"https://www.ticketmaster.com/event/{e.id[2:10].upper()}",
            "locale": "en-us",
            "images": [
                {
                    "ratio": "16_9",
                    "url": f"https://s1.ticketm.net/dam/{e.id}.jpg",
                    "width": 1136,
                    "height": 639,
                    "fallback": False,
                }
            ],
            "sales": {"public": {"startDateTime": e.onsale, "startTBD": False, "startTBA": False}},
            "dates": dates,
            "classifications": [
                {
                    "primary": True,
                    "segment": {"id": "KZFzniwnSyZfZ7v7nJ", "name": "Music"},
                    "genre": {"id": "KnvZfZ7vAeA", "name": "Rock"},
                    "subGenre": {"id": "KZazBEonSMnZfZ7v6F1", "name": "Pop"},
                }
            ],
            "_links": {"self": {"href": f"/discovery/v2/events/{e.id}?locale=en-us"}},
            "_embedded": embedded,
        }

    def _venue(v: FakeVenue) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": v.name,
            "type": "venue",
            "id": v.id,
            "test": False,
            "locale": "en-us",
            "postalCode": v.postal_code,
            "timezone": v.timezone,
            "city": {"name": v.city},
            "country": {"name": v.country[0], "countryCode": v.country[1]},
            "address": {"line1": "1 Main St"},
            "upcomingEvents": {"_total": 12, "ticketmaster": 12, "_filtered": 0},
            "_links": {"self": {"href": f"/discovery/v2/venues/{v.id}?locale=en-us"}},
        }
        if v.state:
            out["state"] = {"name": v.state[0], "stateCode": v.state[1]}
        if v.location:
            out["location"] = {"latitude": v.location[0], "longitude": v.location[1]}
        return out

    def _support(attraction_id: str) -> dict[str, Any]:
        return {"name": "Opening Act", "type": "attraction", "id": attraction_id, "locale": "en-us"}

    def _attraction(a: FakeArtist, request: Request) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": a.name,
            "type": "attraction",
            "id": a.attraction_id,
            "test": False,
            "locale": "en-us",
            "url": f"https://www.ticketmaster.com/artist/{a.attraction_id}",
            "images": [
                {
                    "ratio": "16_9",
                    "url": f"{base(request)}/images/tm/{a.key}.jpg",
                    "width": 640,
                    "height": 360,
                    "fallback": False,
                }
            ],
            "classifications": [{"primary": True, "segment": {"id": "KZFzniwnSyZfZ7v7nJ", "name": "Music"}}],
            "upcomingEvents": {"_total": len(a.shows), "ticketmaster": len(a.shows), "_filtered": 0},
            "_links": {"self": {"href": f"/discovery/v2/attractions/{a.attraction_id}?locale=en-us"}},
        }
        if a.external_links:
            out["externalLinks"] = {
                "spotify": [{"url": f"https://open.spotify.com/artist/{a.spotify_id}"}],
                "musicbrainz": [{"id": a.mbid}],
                "homepage": [{"url": f"https://{a.key}.example"}],
            }
        return out

    async def tm_attraction(request: Request) -> Response:
        if (denied := await tm_auth(request, "/discovery/v2/attractions/{id}.json")) is not None:
            return denied
        found = st.by_attraction.get(request.path_params["id"])
        if found is None:
            return _tm_not_found(request.path_params["id"])
        return tm_ok(_attraction(found, request))

    async def tm_venue(request: Request) -> Response:
        if (denied := await tm_auth(request, "/discovery/v2/venues/{id}.json")) is not None:
            return denied
        found = st.venues.get(request.path_params["id"])
        if found is None:
            return _tm_not_found(request.path_params["id"])
        return tm_ok(_venue(found))

    async def tm_attractions(request: Request) -> Response:
        if (denied := await tm_auth(request, "/discovery/v2/attractions.json")) is not None:
            return denied
        keyword = request.query_params.get("keyword", "").lower()
        hits = [_attraction(a, request) for a in st.artists.values() if keyword and keyword in a.name.lower()]
        body: dict[str, Any] = {
            "_links": {"self": {"href": "/discovery/v2/attractions.json"}},
            "page": {"size": 20, "totalElements": len(hits), "totalPages": 1 if hits else 0, "number": 0},
        }
        if hits:
            body["_embedded"] = {"attractions": hits}
        return tm_ok(body)

    # -- Spotify --------------------------------------------------------------------

    async def sp_token(request: Request) -> Response:
        if (blocked := await gate(request, "spotify", "/api/token")) is not None:
            return blocked
        auth = request.headers.get("authorization", "")
        form = (await request.body()).decode()
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if "grant_type=client_credentials" not in form:
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
                400,
            )
        if auth != expected:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Invalid client secret"}, 400
            )
        token = "BQ" + secrets.token_urlsafe(40)
        st.tokens[token] = 0
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    async def sp_gate(request: Request, route: str) -> Response | None:
        if (blocked := await gate(request, "spotify", route)) is not None:
            return blocked
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in st.tokens:
            return _sp_error(401, "Invalid access token")
        st.tokens[token] += 1
        ttl = st.config.token_ttl_calls
        if ttl is not None and st.tokens[token] > ttl:
            return _sp_error(401, "The access token expired")
        return None

    def dev() -> bool:
        return st.config.spotify_profile == "development"

    def _artist(a: FakeArtist, request: Request) -> dict[str, Any]:
        out: dict[str, Any] = {
            "external_urls": {"spotify": f"https://open.spotify.com/artist/{a.spotify_id}"},
            "genres": a.genres,
            "href": f"{base(request)}/spotify-api/v1/artists/{a.spotify_id}",
            "id": a.spotify_id,
            "images": [{"url": f"{base(request)}/images/spotify/{a.key}.jpg", "width": 640, "height": 640}],
            "name": a.name,
            "type": "artist",
            "uri": f"spotify:artist:{a.spotify_id}",
        }
        if not dev():
            out["popularity"] = a.popularity
            out["followers"] = {"href": None, "total": a.followers}
        return out

    def _simple_artist(spotify_id: str) -> dict[str, Any]:
        name = st.by_spotify[spotify_id].name if spotify_id in st.by_spotify else "Guest Artist"
        return {"id": spotify_id, "name": name, "type": "artist", "uri": f"spotify:artist:{spotify_id}"}

    def _album(al: FakeAlbum, owner: FakeArtist, *, in_listing: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "album_type": al.album_type,
            "total_tracks": len(al.tracks),
            "id": al.id,
            "name": al.name,
            "release_date": al.release_date,
            "release_date_precision": al.precision,
            "type": "album",
            "uri": f"spotify:album:{al.id}",
            "images": [],
            "external_urls": {"spotify": f"https://open.spotify.com/album/{al.id}"},
            "artists": [_simple_artist(owner.spotify_id if al.group != "appears_on" else "guest")],
        }
        if not dev():
            out["available_markets"] = list(al.markets)
            if in_listing:
                out["album_group"] = al.group
        return out

    def _simple_track(al: FakeAlbum, t: FakeTrack) -> dict[str, Any]:
        return {
            "artists": [_simple_artist(i) for i in t.artist_ids],
            "disc_number": t.disc_number,
            "duration_ms": t.duration_ms,
            "explicit": False,
            "id": t.id,
            "is_local": False,
            "is_playable": True,
            "name": t.name,
            "preview_url": None,
            "track_number": t.track_number,
            "type": "track",
            "uri": f"spotify:track:{t.id}",
            "external_urls": {"spotify": f"https://open.spotify.com/track/{t.id}"},
        }

    def _full_track(track_id: str) -> dict[str, Any] | None:
        if track_id not in st.tracks:
            return None
        al, t = st.tracks[track_id]
        owner = st.albums[al.id][0]
        out = _simple_track(al, t)
        out["album"] = _album(al, owner, in_listing=False)
        out["external_ids"] = {"isrc": t.isrc} if t.isrc else {}
        if not dev():
            out["popularity"] = t.popularity
        return out

    def page(request: Request, items: list[Any], limit: int, offset: int, path: str) -> dict[str, Any]:
        """A Spotify paging object; its links carry the request's other parameters."""
        root = base(request) + "/spotify-api"
        extra = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}

        def link(at: int) -> str:
            return f"{root}{path}?{_qs({'offset': at, 'limit': limit, **extra})}"

        return {
            "href": link(offset),
            "limit": limit,
            "offset": offset,
            "total": len(items),
            "items": items[offset : offset + limit],
            "next": link(offset + limit) if offset + limit < len(items) else None,
            "previous": link(max(0, offset - limit)) if offset > 0 else None,
        }

    def limits(request: Request, default: int, maximum: int) -> tuple[int, int] | Response:
        try:
            limit = int(request.query_params.get("limit", str(default)))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return _sp_error(400, "Invalid limit")
        if not 1 <= limit <= maximum or offset < 0:
            return _sp_error(400, "Invalid limit")
        return limit, offset

    async def sp_artist(request: Request) -> Response:
        if (denied := await sp_gate(request, "/v1/artists/{id}")) is not None:
            return denied
        found = st.by_spotify.get(request.path_params["id"])
        if found is None:
            return _sp_error(404, "Resource not found")
        return JSONResponse(_artist(found, request))

    async def sp_albums(request: Request) -> Response:
        if (denied := await sp_gate(request, "/v1/artists/{id}/albums")) is not None:
            return denied
        found = st.by_spotify.get(request.path_params["id"])
        if found is None:
            return _sp_error(404, "Resource not found")
        window = limits(request, 5 if dev() else 20, 10 if dev() else 50)
        if isinstance(window, Response):
            return window
        groups = request.query_params.get("include_groups", "album,single,compilation,appears_on").split(",")
        market = request.query_params.get("market")
        chosen = [
            _album(al, found, in_listing=True)
            for al in found.albums
            if al.group in groups and (market in al.markets if market else True)
        ]
        return JSONResponse(page(request, chosen, *window, f"/v1/artists/{found.spotify_id}/albums"))

    async def sp_album_tracks(request: Request) -> Response:
        if (denied := await sp_gate(request, "/v1/albums/{id}/tracks")) is not None:
            return denied
        found = st.albums.get(request.path_params["id"])
        if found is None:
            return _sp_error(404, "Resource not found")
        window = limits(request, 20, 50)
        if isinstance(window, Response):
            return window
        al = found[1]
        items = [_simple_track(al, t) for t in al.tracks]
        return JSONResponse(page(request, items, *window, f"/v1/albums/{al.id}/tracks"))

    async def sp_tracks(request: Request) -> Response:
        if (denied := await sp_gate(request, "/v1/tracks?ids=")) is not None:
            return denied
        if dev():
            return _sp_error(403, "Forbidden")
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not ids or len(ids) > 50:
            return _sp_error(400, "Too many ids requested" if ids else "invalid id")
        return JSONResponse({"tracks": [_full_track(i) for i in ids]})

    async def sp_track(request: Request) -> Response:
        if (denied := await sp_gate(request, "/v1/tracks/{id}")) is not None:
            return denied
        found = _full_track(request.path_params["id"])
        return JSONResponse(found) if found else _sp_error(404, "Resource not found")

    async def sp_features(request: Request) -> Response:
        if (denied := await sp_gate(request, "/v1/audio-features")) is not None:
            return denied
        if dev():
            return JSONResponse({"error": {"status": 403}}, 403)
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not ids or len(ids) > 100:
            return _sp_error(400, "Too many ids requested" if ids else "invalid id")
        out = []
        for i in ids:
            if i not in st.tracks:
                out.append(None)
                continue
            t = st.tracks[i][1]
            out.append(
                {
                    "id": i,
                    "liveness": round(t.liveness, 4),
                    "duration_ms": t.duration_ms,
                    "energy": 0.5,
                    "danceability": 0.5,
                    "type": "audio_features",
                    "uri": f"spotify:track:{i}",
                }
            )
        return JSONResponse({"audio_features": out})

    async def sp_search(request: Request) -> Response:
        if (denied := await sp_gate(request, "/v1/search")) is not None:
            return denied
        window = limits(request, 5 if dev() else 20, 10 if dev() else 50)
        if isinstance(window, Response):
            return window
        q = request.query_params.get("q", "").lower().replace("artist:", "").strip().strip('"')
        hits = [_artist(a, request) for a in st.artists.values() if q and q in a.name.lower()]
        return JSONResponse({"artists": page(request, hits, *window, "/v1/search")})

    # -- setlist.fm -----------------------------------------------------------------

    async def sf_gate(request: Request, route: str) -> Response | None:
        if (blocked := await gate(request, "setlistfm", route)) is not None:
            return blocked
        if request.headers.get("x-api-key") != SETLISTFM_KEY:
            return JSONResponse({"code": 403, "status": "Forbidden", "message": "Forbidden"}, 403)
        return None

    def _not_found() -> JSONResponse:
        return JSONResponse(
            {
                "code": 404,
                "status": "Not Found",
                "message": "not found",
                "timestamp": datetime.now().isoformat(),
            },
            404,
        )

    def _setlist(a: FakeArtist, s: Any) -> dict[str, Any]:
        v: FakeVenue = s.venue
        city: dict[str, Any] = {
            "id": v.id[-7:],
            "name": v.city.strip(),
            "country": {"code": v.country[1], "name": v.country[0]},
        }
        if v.state:
            city.update(state=v.state[0], stateCode=v.state[1])
        out = {
            "id": s.id,
            "versionId": s.version,
            "eventDate": s.event_date.strftime("%d-%m-%Y"),
            "lastUpdated": "2026-10-02T05:18:08.000+0000",
            "artist": {
                "mbid": a.mbid,
                "name": a.name,
                "sortName": a.name,
                "url": f"https://www.setlist.fm/setlists/{a.key}.html",
            },
            "venue": {"id": v.id[-8:].lower(), "name": v.name, "city": city},
            "sets": {"set": s.sets},
            "url": f"https://www.setlist.fm/setlist/{a.key}/{s.id}.html",
        }
        if s.tour:
            out["tour"] = {"name": s.tour}
        return out

    async def sf_artist_setlists(request: Request) -> Response:
        if (denied := await sf_gate(request, "/artist/{mbid}/setlists")) is not None:
            return denied
        found = st.by_mbid.get(request.path_params["mbid"])
        p = int(request.query_params.get("p", "1") or 1)
        if found is None or not found.setlists or (p - 1) * 20 >= len(found.setlists):
            return _not_found()
        chunk = found.setlists[(p - 1) * 20 : p * 20]
        return JSONResponse(
            {
                "type": "setlists",
                "itemsPerPage": 20,
                "page": p,
                "total": len(found.setlists),
                "setlist": [_setlist(found, s) for s in chunk],
            }
        )

    # -- images (the CDNs the APIs' image URLs point at) ---------------------------

    async def image(request: Request) -> Response:
        if (blocked := await gate(request, "images", "/images/{source}/{key}.jpg")) is not None:
            return blocked
        source, key = request.path_params["source"], request.path_params["key"]
        if source not in ("tm", "spotify") or key not in st.artists:
            return Response(status_code=404)
        if (source, key) not in st.images:
            size = (640, 360) if source == "tm" else (640, 640)
            st.images[source, key] = _picture(f"{source}/{key}", size)
        return Response(st.images[source, key], media_type="image/jpeg")

    # -- control --------------------------------------------------------------------

    async def set_config(request: Request) -> Response:
        try:
            st.config = FakeConfig.model_validate_json(await request.body())
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 422)
        return JSONResponse(st.config.model_dump())

    async def counters(request: Request) -> Response:
        return JSONResponse(dict(st.counters))

    async def reset(request: Request) -> Response:
        st.config = FakeConfig()
        st.counters.clear()
        st.windows.clear()
        st.receiver.reset()
        return Response(status_code=204)

    routes = [
        Route("/ticketmaster/discovery/v2/events.json", tm_events),
        Route("/ticketmaster/discovery/v2/attractions.json", tm_attractions),
        Route("/ticketmaster/discovery/v2/attractions/{id}.json", tm_attraction),
        Route("/ticketmaster/discovery/v2/venues/{id}.json", tm_venue),
        Route("/spotify-accounts/api/token", sp_token, methods=["POST"]),
        Route("/spotify-api/v1/artists/{id}", sp_artist),
        Route("/spotify-api/v1/artists/{id}/albums", sp_albums),
        Route("/spotify-api/v1/albums/{id}/tracks", sp_album_tracks),
        Route("/spotify-api/v1/tracks", sp_tracks),
        Route("/spotify-api/v1/tracks/{id}", sp_track),
        Route("/spotify-api/v1/audio-features", sp_features),
        Route("/spotify-api/v1/search", sp_search),
        Route("/setlistfm/rest/1.0/artist/{mbid}/setlists", sf_artist_setlists),
        Route("/images/{source}/{key}.jpg", image),
        *st.receiver.routes(),
        Route("/_fake/config", set_config, methods=["POST"]),
        Route("/_fake/counters", counters),
        Route("/_fake/reset", reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.fake = st
    return app


def _picture(seed: str, size: tuple[int, int]) -> bytes:
    """A JPEG of ``size``: two colour bands derived from ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    picture = Image.new("RGB", size, (digest[0], digest[1], digest[2]))
    ImageDraw.Draw(picture).rectangle(
        (0, size[1] // 2, size[0], size[1]), fill=(digest[3], digest[4], digest[5])
    )
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=80)
    return out.getvalue()


def _qs(params: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    return urlencode({k: str(v) for k, v in params.items()}, safe=",:")
