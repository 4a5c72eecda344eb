"""From upstream payloads to rows: Ticketmaster attractions, events and
venues, Spotify tracks. Pure functions, no I/O (music-apis.md §5 lists the
edge cases each one handles)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from setlist.catalog import Track

#: Add-on products sold as their own events at a show's venue and date
#: (music-apis.md §4: "VIP Packages", "Parking", "POST GAME", "PASS", "SUITE").
_ADD_ON = re.compile(
    r"\b(vip packages?|vip upgrades?|parking|suites?|post game|(vip|fast lane|lawn|season) pass(es)?"
    r"|add-ons?|hospitality packages?)\b",
    re.IGNORECASE,
)
_SPOTIFY_ARTIST = re.compile(r"open\.spotify\.com/(?:intl-[a-z-]+/)?artist/([A-Za-z0-9]{22})")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """``"Sigur Rós & Friends"`` → ``"sigur-ros-friends"``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _SLUG_JUNK.sub("-", ascii_name.lower()).strip("-") or "artist"


def is_add_on(event: dict[str, Any]) -> bool:
    """Whether a Ticketmaster event is a product sold beside a show (VIP
    package, parking) or not music at all, rather than the show."""
    segments = {
        c.get("segment", {}).get("name", "")
        for c in event.get("classifications") or []
        if isinstance(c, dict) and c.get("primary", True)
    }
    if segments and "Music" not in segments:
        return True
    return bool(_ADD_ON.search(event.get("name", "")))


@dataclass(frozen=True, slots=True)
class Identity:
    """What an attraction says about the artist."""

    name: str
    image_url: str | None
    genres: list[str]
    spotify_id: str | None
    mbid: str | None
    upcoming_events: int


def identity(attraction: dict[str, Any]) -> Identity:
    links = attraction.get("externalLinks") or {}
    spotify_id = None
    for link in links.get("spotify") or []:
        if match := _SPOTIFY_ARTIST.search(str(link.get("url", ""))):
            spotify_id = match.group(1)
            break
    mbid = next((str(m["id"]) for m in links.get("musicbrainz") or [] if m.get("id")), None)
    genres = sorted(
        {
            str(c[level]["name"])
            for c in attraction.get("classifications") or []
            for level in ("genre", "subGenre")
            if isinstance(c.get(level), dict) and c[level].get("name") not in (None, "Undefined", "Other")
        }
    )
    upcoming = attraction.get("upcomingEvents") or {}
    return Identity(
        name=str(attraction.get("name", "")).strip() or str(attraction.get("id")),
        image_url=best_image(attraction.get("images")),
        genres=genres,
        spotify_id=spotify_id,
        mbid=mbid,
        upcoming_events=int(upcoming.get("_total", 0) or 0),
    )


def best_image(images: Any) -> str | None:
    """The widest 16:9 image (any ratio when none is 16:9), fallbacks last."""
    usable = [i for i in images or [] if isinstance(i, dict) and i.get("url")]
    if not usable:
        return None
    usable.sort(key=lambda i: (i.get("ratio") != "16_9", bool(i.get("fallback")), -int(i.get("width") or 0)))
    return str(usable[0]["url"])


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def venue_row(venue: dict[str, Any]) -> dict[str, Any]:
    """A venue's columns: city trimmed, lat/long read from strings, no
    state outside countries that have one, nothing defaulted to the US."""
    location = venue.get("location") or {}
    return {
        "tm_venue_id": str(venue["id"]),
        "name": str(venue.get("name") or "Unknown venue").strip()[:300],
        "city": (str((venue.get("city") or {}).get("name") or "").strip() or None),
        "state_code": (venue.get("state") or {}).get("stateCode"),
        "country_code": (venue.get("country") or {}).get("countryCode"),
        "timezone": venue.get("timezone"),
        "latitude": _float(location.get("latitude")),
        "longitude": _float(location.get("longitude")),
        "address": (str((venue.get("address") or {}).get("line1") or "").strip()[:300] or None),
        "postal_code": (str(venue.get("postalCode") or "").strip()[:20] or None),
    }


def show_row(event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A show's columns and its venue's (None when the event has none).
    Dates stay as Ticketmaster gives them: a TBA event has no date, a show
    with no specific time has a date and no time; the status is kept
    (cancelled, postponed, rescheduled)."""
    dates = event.get("dates") or {}
    start = dates.get("start") or {}
    venues = [v for v in (event.get("_embedded") or {}).get("venues") or [] if v.get("id")]
    venue = venue_row(venues[0]) if venues else None
    local_date = start.get("localDate")
    starts_at = start.get("dateTime")
    row = {
        "tm_event_id": str(event["id"]),
        "name": str(event.get("name") or "").strip()[:300] or "Untitled show",
        "local_date": date.fromisoformat(local_date) if local_date else None,
        "local_time": start.get("localTime"),
        "starts_at": datetime.fromisoformat(starts_at.replace("Z", "+00:00")) if starts_at else None,
        "timezone": dates.get("timezone") or (venue or {}).get("timezone"),
        "status": str((dates.get("status") or {}).get("code") or "onsale")[:20],
        "url": event.get("url"),
        "image_url": best_image(event.get("images")),
    }
    return row, venue


def track_from(full: dict[str, Any], album: dict[str, Any], liveness: float | None) -> Track:
    """A Track from a full track object and its album (simplified)."""
    return Track(
        spotify_id=str(full["id"]),
        name=str(full.get("name", "")),
        album_id=str(album.get("id", "")),
        album_name=str(album.get("name", "")),
        album_type=str(album.get("album_type", "album")),
        release_date=str(album.get("release_date") or ""),
        duration_ms=int(full.get("duration_ms") or 0),
        artist_ids=tuple(str(a["id"]) for a in full.get("artists") or [] if a.get("id")),
        isrc=(full.get("external_ids") or {}).get("isrc"),
        popularity=full.get("popularity"),
        liveness=liveness,
        disc_number=int(full.get("disc_number") or 1),
        track_number=int(full.get("track_number") or 1),
    )
