"""Deterministic upstream data for the fake APIs: three artists whose events,
releases and setlists carry the quirks of music-apis.md §5.

- ``prolific``: 1,262 events (past the 1,200 reachable by paging) plus
  add-on events, 40+ releases: studio albums, deluxe and remastered
  editions, live albums, singles, compilations, appears-on, a 60-track
  deluxe (album tracks need paging), tracks without ISRC.
- ``midsize``: 240 events (two pages at size 200), a handful of albums.
- ``sparse``: no events, no setlists (setlist.fm answers 404), no
  external links (identity falls back to a name search), two singles.

Each artist's ``studio_songs`` is the answer a correct import must give.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EPOCH = date(2027, 1, 1)  # first show date; fixed so fixtures never change


def ident(*parts: object, length: int = 22) -> str:
    """A stable base-62 id from ``parts`` (Spotify ids are 22 such chars)."""
    n = int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest(), "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(out)


@dataclass
class FakeTrack:
    id: str
    name: str
    isrc: str | None
    duration_ms: int
    popularity: int
    liveness: float
    disc_number: int = 1
    track_number: int = 1
    artist_ids: tuple[str, ...] = ()
    song: str | None = None  # the studio song this recording is, None when live


@dataclass
class FakeAlbum:
    id: str
    name: str
    album_type: str  # album | single | compilation
    group: str  # album | single | compilation | appears_on
    release_date: str
    precision: str
    tracks: list[FakeTrack] = field(default_factory=list)
    markets: tuple[str, ...] = ("US", "CA", "GB")
    duplicate_of: str | None = None  # a per-market duplicate's original id


@dataclass
class FakeVenue:
    id: str
    name: str
    city: str
    state: tuple[str, str] | None
    country: tuple[str, str]
    timezone: str
    location: tuple[str, str] | None
    postal_code: str


@dataclass
class FakeEvent:
    id: str
    name: str
    local_date: str | None
    local_time: str | None
    utc: str | None
    status: str
    venue: FakeVenue
    attraction_ids: list[str]
    with_timezone: bool = True
    add_on: bool = False
    initial_start: str | None = None
    onsale: str = "2026-10-20T17:00:00Z"


@dataclass
class FakeSetlist:
    id: str
    version: str
    event_date: date
    venue: FakeVenue
    sets: list[dict[str, Any]]
    tour: str | None = None


@dataclass
class FakeArtist:
    key: str
    name: str
    attraction_id: str
    spotify_id: str
    mbid: str
    genres: list[str]
    popularity: int
    followers: int
    external_links: bool = True
    events: list[FakeEvent] = field(default_factory=list)
    albums: list[FakeAlbum] = field(default_factory=list)
    setlists: list[FakeSetlist] = field(default_factory=list)

    @property
    def shows(self) -> list[FakeEvent]:
        """The real shows (add-on events excluded)."""
        return [e for e in self.events if not e.add_on]

    @property
    def studio_songs(self) -> set[str]:
        """The songs a correct studio-only import stores, by canonical title."""
        return {
            t.song
            for a in self.albums
            if a.group in ("album", "single") and a.duplicate_of is None
            for t in a.tracks
            if t.song is not None
        }


_CITIES = [
    ("Las Vegas", ("Nevada", "NV"), ("United States Of America", "US"), "America/Los_Angeles"),
    (" Chicago ", ("Illinois", "IL"), ("United States Of America", "US"), "America/Chicago"),
    ("New York", ("New York", "NY"), ("United States Of America", "US"), "America/New_York"),
    ("Austin", ("Texas", "TX"), ("United States Of America", "US"), "America/Chicago"),
    ("London", None, ("Great Britain", "GB"), "Europe/London"),
    ("Berlin", None, ("Germany", "DE"), "Europe/Berlin"),
    ("Toronto", ("Ontario", "ON"), ("Canada", "CA"), "America/Toronto"),
    ("Sydney", ("New South Wales", "NSW"), ("Australia", "AU"), "Australia/Sydney"),
]


def _venues(rng: random.Random, count: int) -> list[FakeVenue]:
    venues = []
    for i in range(count):
        city, state, country, tz = _CITIES[i % len(_CITIES)]
        located = rng.random() > 0.15
        lat, lon = f"{rng.uniform(-40, 55):.5f}", f"{rng.uniform(-120, 150):.5f}"
        venues.append(
            FakeVenue(
                id="KovZ" + ident("venue", i, length=7),
                name=f"{['Arena', 'Hall', 'Theatre', 'Amphitheatre', 'Stadium'][i % 5]} {city.strip()} {i}",
                city=city,
                state=state,
                country=country,
                timezone=tz,
                location=(lat, lon) if located else None,
                postal_code=f"{10000 + i}",
            )
        )
    return venues


def _events(artist: FakeArtist, rng: random.Random, count: int, add_ons: int) -> list[FakeEvent]:
    venues = _venues(rng, max(1, count // 6))
    support = "K8vZ" + ident("headliner", artist.key, length=7)
    events: list[FakeEvent] = []
    for i in range(count):
        venue = venues[i % len(venues)]
        day = EPOCH + timedelta(days=i // 3)
        tba = i % 97 == 96
        no_time = i % 41 == 7
        hour = 19 + i % 3
        status = "onsale"
        initial = None
        if i % 53 == 5:
            status = "cancelled"
        elif i % 61 == 9:
            status, initial = "rescheduled", (day - timedelta(days=30)).isoformat()
        elif i % 71 == 11:
            status = "postponed"
        attractions = [artist.attraction_id] if i % 9 else [support, artist.attraction_id]
        events.append(
            FakeEvent(
                id="vv" + ident("event", artist.key, i, length=14),
                name=f"{artist.name} {'World Tour' if i % 2 else 'Live in Concert'}",
                local_date=None if tba else day.isoformat(),
                local_time=None if tba or no_time else f"{hour:02d}:30:00",
                utc=None
                if tba or no_time
                else datetime(day.year, day.month, day.day, hour, 30, tzinfo=UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                status=status,
                venue=venue,
                attraction_ids=[] if i % 23 == 4 else attractions,
                with_timezone=rng.random() > 0.2,
                initial_start=initial,
                onsale="1900-01-01T18:00:00Z" if i % 29 == 3 else "2026-10-20T17:00:00Z",
            )
        )
    for j in range(add_ons):  # VIP packages and parking at a real show's venue and date
        base = events[(j * 37) % len(events)]
        events.append(
            FakeEvent(
                id="vv" + ident("addon", artist.key, j, length=14),
                name=f"{artist.name} - {'VIP Packages' if j % 2 else 'Parking'}",
                local_date=base.local_date,
                local_time=base.local_time,
                utc=base.utc,
                status="onsale",
                venue=base.venue,
                attraction_ids=[artist.attraction_id],
                add_on=True,
            )
        )
    events.sort(key=lambda e: (e.local_date or "9999", e.id))
    return events


_WORDS = (
    "Harbor",
    "Neon",
    "Desert",
    "Midnight",
    "River",
    "Glass",
    "Summer",
    "Electric",
    "Golden",
    "Highway",
    "Silver",
    "Echo",
    "Paper",
    "Wild",
    "Velvet",
    "Broken",
    "Hollow",
    "Northern",
    "Rain",
    "Fire",
    "Stone",
    "Ocean",
    "Quiet",
    "Satellite",
    "Crimson",
    "Shadow",
    "Wire",
    "Heart",
)
_FALSE_FRIENDS = ["Live Forever", "Alive", "Live and Let Die", "Live Wire"]


def _song_titles(rng: random.Random, count: int) -> list[str]:
    titles: list[str] = []
    while len(titles) < count:
        title = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"
        if title not in titles:
            titles.append(title)
    return titles


def _catalog(artist: FakeArtist, rng: random.Random, studio_albums: int, per_album: int) -> None:
    a = artist.spotify_id
    songs: dict[str, FakeTrack] = {}  # canonical title -> original recording

    def recording(title: str, song: str | None, isrc: str | None, *, live: bool = False) -> FakeTrack:
        return FakeTrack(
            id=ident("track", artist.key, title, isrc, rng.random()),
            name=title,
            isrc=isrc,
            duration_ms=rng.randint(150_000, 420_000),
            popularity=rng.randint(10, 90),
            liveness=rng.uniform(0.82, 0.98) if live else rng.uniform(0.03, 0.3),
            artist_ids=(a,),
            song=song,
        )

    def album(
        name: str, kind: str, group: str, year: int, tracks: list[FakeTrack], precision: str = "day"
    ) -> None:
        released = {
            "day": f"{year}-0{1 + year % 9}-1{year % 10}",
            "month": f"{year}-0{1 + year % 9}",
            "year": str(year),
        }
        for n, t in enumerate(tracks, start=1):
            t.track_number = n if n <= 30 else n - 30
            t.disc_number = 1 if n <= 30 else 2
        artist.albums.append(
            FakeAlbum(
                ident("album", artist.key, name, len(artist.albums)),
                name,
                kind,
                group,
                released[precision],
                precision,
                tracks,
            )
        )

    originals: list[list[FakeTrack]] = []
    all_titles = _song_titles(rng, studio_albums * per_album)
    if studio_albums >= 4:  # studio songs whose titles look live to a naive filter
        all_titles[1 : 1 + len(_FALSE_FRIENDS)] = _FALSE_FRIENDS
    for n in range(studio_albums):
        titles = all_titles[n * per_album : (n + 1) * per_album]
        tracks = []
        for t in titles:
            isrc = f"US{artist.key[:3].upper()}{70 + n:02d}{len(songs):05d}"
            tracks.append(songs.setdefault(t, recording(t, t, isrc)))
        originals.append(tracks)
        album(
            f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} {n + 1}",
            "album",
            "album",
            1990 + n,
            tracks,
            precision=("day", "month", "year")[n % 3],
        )

    def copy(t: FakeTrack, *, name: str | None = None, isrc: str | bool | None = True) -> FakeTrack:
        """Another release of a recording: same ISRC unless told otherwise."""
        return FakeTrack(
            id=ident("copy", t.id, name, isrc, rng.random()),
            name=name or t.name,
            isrc=t.isrc if isrc is True else (isrc or None),
            duration_ms=t.duration_ms,
            popularity=max(0, t.popularity - rng.randint(1, 20)),
            liveness=t.liveness,
            artist_ids=t.artist_ids,
            song=t.song,
        )

    for n, tracks in enumerate(
        originals[: max(1, studio_albums // 3)]
    ):  # deluxe editions: same ISRCs plus extras
        extras = [
            recording(f"{t.name} - Demo", f"{t.name} - Demo", f"USDMO{n:02d}{i:05d}")
            for i, t in enumerate(tracks[:2])
        ]
        extras.append(recording(f"{tracks[0].name} - Live", None, f"USLIV{n:02d}00001", live=True))
        deluxe = [copy(t) for t in tracks] + extras
        if n == 0:  # a two-disc deluxe past 50 tracks: album tracks need paging
            deluxe += [copy(t) for ts in originals[1:] for t in ts][: 62 - len(deluxe)]
        album(f"{artist.albums[n].name} (Deluxe Edition)", "album", "album", 2015 + n, deluxe)
    for n, tracks in enumerate(
        originals[: max(1, studio_albums // 2)]
    ):  # remasters: new ISRCs, edition suffixes
        suffix = ("- 2013 Remaster", "(Remastered 2011)", "- Mono Version", "(2009 Stereo Mix)")[n % 4]
        remastered = [
            copy(t, name=f"{t.name} {suffix}", isrc=f"GBREM{n:02d}{i:05d}") for i, t in enumerate(tracks)
        ]
        if remastered:
            remastered[-1].isrc = None  # an empty external_ids
        album(f"{artist.albums[n].name} ({suffix.strip('-() ')})", "album", "album", 2011 + n, remastered)
    for n in range(max(1, studio_albums // 3)):  # live albums
        picks = rng.sample([t for ts in originals for t in ts], k=min(12, per_album * studio_albums))
        live = [recording(f"{t.name}", None, f"USLIVE{n:02d}{i:04d}", live=True) for i, t in enumerate(picks)]
        album(
            f"Live at the {rng.choice(_WORDS)} Bowl {2000 + n}" if n % 2 == 0 else f"{artist.name} Unplugged",
            "album",
            "album",
            2000 + n,
            live,
        )
    for n, tracks in enumerate(originals):  # singles: the album recording, plus a single-only song
        album(tracks[0].name, "single", "single", 1990 + n, [copy(tracks[0])])
        if n % 3 == 0:
            title = f"{rng.choice(_WORDS)} Single {n}"
            album(
                title,
                "single",
                "single",
                1991 + n,
                [
                    recording(title, title, f"USSNG{n:02d}00001"),
                    recording(f"{title} - Tiesto Remix", f"{title} - Tiesto Remix", f"NLRMX{n:02d}00001"),
                ],
            )
    if studio_albums >= 3:
        hits = [copy(ts[0]) for ts in originals] + [copy(ts[1], isrc=False) for ts in originals[:3]]
        album("Greatest Hits", "compilation", "compilation", 2005, hits)
        album(
            f"The Essential {artist.name}",
            "compilation",
            "compilation",
            2012,
            [copy(ts[2]) for ts in originals],
        )
        guest = FakeTrack(
            ident("guest", artist.key),
            f"Guest Spot ({artist.name} feat.)",
            "USGST0000001",
            210_000,
            40,
            0.1,
            artist_ids=(ident("other"), a),
        )
        album("Friends of the Band", "compilation", "appears_on", 2018, [guest])
    for original in list(artist.albums[:2]):  # market duplicates: the same album under another id
        artist.albums.append(
            FakeAlbum(
                ident("dup", original.id),
                original.name,
                original.album_type,
                original.group,
                original.release_date,
                original.precision,
                [copy(t) for t in original.tracks],
                markets=("DE",),
                duplicate_of=original.id,
            )
        )


def _setlists(artist: FakeArtist, rng: random.Random, count: int) -> list[FakeSetlist]:
    songs = sorted(artist.studio_songs)
    venues = _venues(rng, 6)
    out = []
    for i in range(count):
        day = date(2026, 10, 1) - timedelta(days=i * 3 // 2)  # two shows on some days (early and late)
        played = rng.sample(songs, k=min(len(songs), rng.randint(8, 18))) if songs and i % 7 else []
        main = [{"name": "Intro", "tape": True}] + [{"name": s} for s in played[:-2]]
        if i % 5 == 1:
            main.append(
                {
                    "name": "Ol' 55",
                    "cover": {"mbid": ident("cover"), "name": "Tom Waits", "sortName": "Waits, Tom"},
                }
            )
        sets = (
            [] if not played else [{"song": main}, {"encore": 1, "song": [{"name": s} for s in played[-2:]]}]
        )
        if i % 11 == 3 and played:
            sets.insert(1, {"name": "Acoustic set", "song": [{"name": played[0]}, {"name": " "}]})
        out.append(
            FakeSetlist(
                ident("setlist", artist.key, i, length=8).lower(),
                ident("v", i, length=8).lower(),
                day,
                venues[i % 6],
                sets,
                "World Tour" if i % 2 else None,
            )
        )
    return out


def build_artists(crowd: int = 0) -> dict[str, FakeArtist]:
    """The three fixture artists, plus ``crowd`` small ones (30 shows, two
    albums; for load tests), keyed by ``key`` (same output every call)."""
    specs = [
        ("prolific", "Neon Harbor", 1_262, 24, 14, 11, 64, 88, 4_200_000),
        ("midsize", "Velvet Echo", 240, 4, 4, 10, 25, 61, 380_000),
        ("sparse", "Quiet Satellite", 0, 0, 0, 0, 0, 12, 900),
    ]
    specs += [
        (f"{n:03d}crowd", f"Crowd Act {n}", 30, 1, 2, 8, 5, 30 + n % 50, 5_000 + n) for n in range(crowd)
    ]
    artists = {}
    for key, name, events, add_ons, albums, per_album, setlists, popularity, followers in specs:
        rng = random.Random(key)
        artist = FakeArtist(
            key=key,
            name=name,
            attraction_id="K8vZ" + ident("attraction", key, length=7),
            spotify_id=ident("artist", key),
            mbid=str(uuid.UUID(bytes=hashlib.sha256(f"mbid/{key}".encode()).digest()[:16])),
            genres=["rock"],
            popularity=popularity,
            followers=followers,
            external_links=key != "sparse",
        )
        artist.events = _events(artist, rng, events, add_ons) if events else []
        if albums:
            _catalog(artist, rng, albums, per_album)
        else:  # two singles, nothing else
            for n in range(2):
                t = FakeTrack(
                    ident("sparse-track", n),
                    f"First Light {n + 1}",
                    f"USQST26{n:05d}",
                    190_000,
                    5,
                    0.1,
                    artist_ids=(artist.spotify_id,),
                    song=f"First Light {n + 1}",
                )
                artist.albums.append(
                    FakeAlbum(ident("sparse-album", n), t.name, "single", "single", "2026-03", "month", [t])
                )
        artist.setlists = _setlists(artist, rng, setlists) if setlists else []
        artists[key] = artist
    return artists
