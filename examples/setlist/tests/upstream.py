"""The fake upstream APIs and the adapters pointed at them, for tests."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from setlist.adapters.setlistfm import SetlistFmClient
from setlist.adapters.spotify import SpotifyClient
from setlist.adapters.ticketmaster import TicketmasterClient
from setlist.fake.fixtures import FakeArtist
from setlist.fake.server import FakeState


@dataclass
class Upstream:
    state: FakeState
    http: httpx.AsyncClient
    ticketmaster: TicketmasterClient
    spotify: SpotifyClient
    setlistfm: SetlistFmClient

    def artist(self, key: str) -> FakeArtist:
        return self.state.artists[key]
