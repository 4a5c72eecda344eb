"""Catalog purity: which Spotify tracks make an artist's studio catalog, and
which releases of one song are the same song.

- Live markers count only in suffix or bracket positions ("Song - Live",
  "Song (Live at Leeds)", "[Live]"), so studio titles such as "Live
  Forever", "Alive" or "Live and Let Die" stay (music-apis.md §4, §5.18).
- ``liveness > 0.8`` excludes a track when audio features exist, and so
  does a missing one for a track (the seed: "if features are missing for
  a track, that track is excluded"); apps in Spotify's development mode
  get none at all, and the run is then marked degraded and decided by
  titles instead of dropping the whole catalog (§0.1).
- One song is one row: releases sharing an ISRC merge, and so do remasters
  with a new ISRC, by normalized title plus primary artist (§0.7, §5.17).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

LIVENESS_THRESHOLD = 0.8  # Spotify: "a value above 0.8 provides strong likelihood that the track is live"


@dataclass(frozen=True, slots=True)
class Track:
    """A Spotify track as the import sees it (album fields included)."""

    spotify_id: str
    name: str
    album_id: str
    album_name: str
    album_type: str  # album | single | compilation
    release_date: str  # "1976", "1976-12" or "1976-12-08"
    duration_ms: int
    artist_ids: tuple[str, ...]
    isrc: str | None = None
    popularity: int | None = None
    liveness: float | None = None
    disc_number: int = 1
    track_number: int = 1


_DASH = r"\s[-\u2013\u2014]\s*"
_LIVE_TITLE = re.compile(
    rf"({_DASH}(live|en vivo|ao vivo)\b"  # "Song - Live", "Song - Live at Wembley / 1986"
    r"|\(\s*(live|en vivo|ao vivo)\b[^)]*\)"  # "(Live)", "(Live at Leeds)", "(Live from ...)"
    r"|\[\s*live\b[^\]]*\]"  # "[Live]"
    rf"|{_DASH}(mtv\s+)?unplugged\b|\(\s*(mtv\s+)?unplugged[^)]*\))",
    re.IGNORECASE,
)
_LIVE_ALBUM = re.compile(
    r"(^live$|^live[!:]|\blive\s+(at|from|in|on)\b|\blive\s*!?$|\(live[^)]*\)|\[live[^\]]*\]"
    r"|\bunplugged\b|\bin concert\b|\bconcert\s+(at|in|for)\b|\blive (recordings?|sessions?)\b)",
    re.IGNORECASE,
)
# Edition and mastering suffixes that do not make a different song.
_EDITION = (
    r"(\d{4}\s+)?(digital(ly)?\s+)?re-?master(ed)?(\s+(version|edition|\d{4}))?(\s+\d{4})?"
    r"|(\d{4}\s+)?(mono|stereo)(\s+(version|mix|remaster))?"
    r"|(deluxe|expanded|anniversary|special|bonus track|collector'?s)(\s+\w+)*\s+(edition|version)"
    r"|(\d+(st|nd|rd|th)\s+)?anniversary(\s+\w+)*"
    r"|deluxe|remaster|single version|album version|original mix"
)
_EDITION_SUFFIX = re.compile(rf"({_DASH}({_EDITION})\s*$|\s*[(\[]\s*({_EDITION})\s*[)\]]\s*$)", re.IGNORECASE)
_REMIX = re.compile(r"\bre-?mix(ed)?\b|\bdub\b|\bedit\)|\bbootleg\b", re.IGNORECASE)
_DELUXE = re.compile(r"\b(deluxe|expanded|super deluxe|anniversary|bonus)\b", re.IGNORECASE)
_KIND_RANK = {"album": 0, "single": 1, "compilation": 2}


def is_live_title(name: str) -> bool:
    """True when a track title marks a live recording in a suffix or bracket."""
    return bool(_LIVE_TITLE.search(name or ""))


def is_live_album(name: str) -> bool:
    """True for a live album ("Live at Leeds", "MTV Unplugged", "In Concert")."""
    return bool(_LIVE_ALBUM.search(name or ""))


def is_remix(name: str) -> bool:
    return bool(_REMIX.search(name or ""))


def normalize_title(name: str) -> str:
    """The title without remaster, mono/stereo and edition suffixes, case,
    accents and punctuation: "Hotel California - 2013 Remaster" and "Hotel
    California (Remastered 2011)" both give "hotel california"."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(c for c in text if not unicodedata.combining(c))
    previous = None
    while previous != text:  # "Song (Deluxe Edition) - 2011 Remaster": strip each suffix in turn
        previous = text
        text = _EDITION_SUFFIX.sub("", text).rstrip()
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return " ".join(text.split())


def release_key(date: str) -> str:
    """A release date padded to a full day, so "1976" sorts before "1976-12-08"."""
    parts = (date or "9999").split("-")
    while len(parts) < 3:
        parts.append("01")
    return "-".join(parts[:3])


def is_studio(track: Track, *, use_liveness: bool) -> bool:
    """Whether a track belongs to the studio catalog. With audio features
    (``use_liveness``), a track Spotify has none for is left out, as the
    seed has it (no live leakage); without them, titles decide."""
    if is_live_title(track.name) or is_live_album(track.album_name):
        return False
    if not use_liveness:
        return True
    return track.liveness is not None and track.liveness <= LIVENESS_THRESHOLD


def _preference(track: Track) -> tuple[int, int, str, int, str]:
    """Lower is better: popularity when present, then album over single
    over compilation, earliest release, non-deluxe, lowest id (§5.16)."""
    return (
        -(track.popularity if track.popularity is not None else -1),
        _KIND_RANK.get(track.album_type, 3),
        release_key(track.release_date),
        1 if _DELUXE.search(track.album_name) else 0,
        track.spotify_id,
    )


def dedupe(tracks: Iterable[Track]) -> list[Track]:
    """One track per song: tracks sharing an ISRC, or a normalized title
    and primary artist, are one song; the preferred release stands for it.
    Remixes keep their own title, so they stay separate songs."""
    items = list(tracks)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen: dict[tuple[str, str], int] = {}
    for i, track in enumerate(items):
        keys = [("title", f"{track.artist_ids[0] if track.artist_ids else ''}:{normalize_title(track.name)}")]
        if track.isrc:
            keys.append(("isrc", track.isrc.upper()))
        for key in keys:
            if key in seen:
                parent[find(i)] = find(seen[key])
            else:
                seen[key] = i
    groups: dict[int, list[Track]] = {}
    for i, track in enumerate(items):
        groups.setdefault(find(i), []).append(track)
    chosen = [min(group, key=_preference) for group in groups.values()]
    return sorted(chosen, key=lambda t: (normalize_title(t.name), t.spotify_id))
