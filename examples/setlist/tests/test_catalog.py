"""Catalog purity rules, from tables (music-apis.md §5.16-18)."""

from __future__ import annotations

import pytest

from setlist.catalog import Track, dedupe, is_live_album, is_live_title, is_studio, normalize_title


@pytest.mark.parametrize(
    ("title", "live"),
    [
        ("Hotel California - Live", True),
        ("Hotel California - Live at the Forum, 1976", True),
        ("Take It Easy (Live at Wembley)", True),
        ("Desperado [Live]", True),
        ("Lyin' Eyes - MTV Unplugged", True),
        ("Heart of the Matter (Unplugged)", True),
        ("Live Forever", False),
        ("Live Forever - Remastered", False),
        ("Alive", False),
        ("Live and Let Die", False),
        ("Live Wire", False),
        ("Beat It", False),
        ("That's the Way", False),
        ("Deliver Us (Live Version Edit)", True),
    ],
)
def test_live_titles_are_recognised_by_suffix_or_bracket_only(title: str, live: bool) -> None:
    assert is_live_title(title) is live


@pytest.mark.parametrize(
    ("album", "live"),
    [
        ("Live at Leeds", True),
        ("Eagles Live", True),
        ("MTV Unplugged in New York", True),
        ("Hell Freezes Over (Live)", True),
        ("In Concert", True),
        ("Live", True),
        ("Live Through This", False),
        ("Hotel California (2013 Remaster)", False),
        ("Alive II Sessions Demos", False),
        ("Beat It", False),
    ],
)
def test_live_albums_are_recognised(album: str, live: bool) -> None:
    assert is_live_album(album) is live


@pytest.mark.parametrize(
    ("title", "normal"),
    [
        ("Hotel California - 2013 Remaster", "hotel california"),
        ("Hotel California (Remastered 2011)", "hotel california"),
        ("Hotel California - Remastered", "hotel california"),
        ("Take It Easy - Mono Version", "take it easy"),
        ("Take It Easy (2009 Stereo Mix)", "take it easy"),
        ("Desperado (Deluxe Edition) - 2011 Remaster", "desperado"),
        ("Café Del Mar", "cafe del mar"),
        ("Song 2 - Tiësto Remix", "song 2 tiesto remix"),
        ("Live Forever - Remastered", "live forever"),
    ],
)
def test_titles_normalise_without_edition_suffixes(title: str, normal: str) -> None:
    assert normalize_title(title) == normal


def track(sid: str, name: str, **kw: object) -> Track:
    fields: dict[str, object] = {
        "album_id": "al-" + sid,
        "album_name": "Studio Album",
        "album_type": "album",
        "release_date": "1976-12-08",
        "duration_ms": 200_000,
        "artist_ids": ("eagles",),
    }
    fields.update(kw)
    return Track(sid, name, **fields)  # type: ignore[arg-type]


def test_one_row_per_isrc_keeping_the_most_popular_release() -> None:
    single = track("b", "Take It Easy", isrc="USEE1", album_type="single", popularity=70)
    album = track("a", "Take It Easy", isrc="USEE1", popularity=60)
    compilation = track("c", "Take It Easy", isrc="USEE1", album_type="compilation", popularity=80)

    assert dedupe([single, album, compilation]) == [compilation]


def test_without_popularity_the_album_release_and_earliest_date_win() -> None:
    single = track("b", "Take It Easy", isrc="USEE1", album_type="single", release_date="1972")
    deluxe = track("d", "Take It Easy", isrc="USEE1", album_name="Eagles (Deluxe)", release_date="1972-06-01")
    album = track("z", "Take It Easy", isrc="USEE1", release_date="1972-06-01")
    later = track("a", "Take It Easy", isrc="USEE1", release_date="1973")

    assert dedupe([single, deluxe, later, album]) == [album]


def test_remasters_with_a_new_isrc_merge_by_title_but_remixes_stay() -> None:
    original = track("a", "Hotel California", isrc="USEE1")
    remaster = track("b", "Hotel California - 2013 Remaster", isrc="USEE9")
    no_isrc = track("c", "Hotel California (Remastered 2011)")
    remix = track("d", "Hotel California - Tiesto Remix", isrc="NLRM1")
    other_artist = track("e", "Hotel California", isrc="GBXX1", artist_ids=("gipsy-kings",))

    kept = dedupe([remaster, original, no_isrc, remix, other_artist])

    assert {t.spotify_id for t in kept} == {"a", "d", "e"}


def test_merging_is_transitive_across_isrc_and_title() -> None:
    a = track("a", "Desperado", isrc="X1")
    b = track("b", "Desperado - 2013 Remaster", isrc="X2")
    c = track("c", "Desperado - Single Version", isrc="X2", album_type="single")

    assert [t.spotify_id for t in dedupe([c, b, a])] == ["a"]


def test_liveness_excludes_only_when_features_are_used() -> None:
    crowd = track("a", "Studio Song", liveness=0.93)
    quiet = track("b", "Another Song", liveness=0.1)
    on_live_album = track("c", "Studio Song", album_name="Live at the Forum")
    unmeasured = track("d", "Song Without Features")  # features served, but none for this track
    tracks = (crowd, quiet, on_live_album, unmeasured)

    assert [is_studio(t, use_liveness=True) for t in tracks] == [False, True, False, False]
    assert [is_studio(t, use_liveness=False) for t in tracks] == [True, True, False, True]
