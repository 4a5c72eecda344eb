"""The three upstream clients, built from the settings in one place (the
import's, with shared rate limits; ``setlist check``'s, without)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from setlist.adapters.http import Breaker, Gate, open_gate
from setlist.adapters.setlistfm import SetlistFmClient
from setlist.adapters.spotify import SpotifyClient
from setlist.adapters.ticketmaster import TicketmasterClient
from setlist.config import Settings


@dataclass(frozen=True, slots=True)
class Upstreams:
    ticketmaster: TicketmasterClient
    spotify: SpotifyClient
    setlistfm: SetlistFmClient

    @classmethod
    def build(
        cls,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        gate: Callable[[str, int], Gate] | None = None,
        breaker: Callable[[str], Breaker] | None = None,
        retry_delay: float | None = None,
    ) -> Upstreams:
        """``gate(name, rate)``: each upstream's rate limit (none: open);
        ``breaker(name)``: its circuit breaker (none: always closed);
        ``retry_delay``: the first in-request retry delay (the settings' by default)."""

        def breaker_of(name: str) -> Breaker | None:
            return breaker(name) if breaker is not None else None

        def gate_of(name: str, rate: int) -> Gate:
            return gate(name, rate) if gate is not None else open_gate()

        delay = settings.upstream_retry_delay if retry_delay is None else retry_delay
        return cls(
            TicketmasterClient(
                http,
                settings.ticketmaster_url,
                settings.ticketmaster_key.get_secret_value(),
                gate=gate_of("ticketmaster", settings.ticketmaster_rate),
                breaker=breaker_of("ticketmaster"),
                retry_delay=delay,
                spike_wait=settings.ticketmaster_spike_wait,
            ),
            SpotifyClient(
                http,
                settings.spotify_url,
                settings.spotify_accounts_url,
                settings.spotify_client_id,
                settings.spotify_client_secret.get_secret_value(),
                gate=gate_of("spotify", settings.spotify_rate),
                breaker=breaker_of("spotify"),
                retry_delay=delay,
            ),
            SetlistFmClient(
                http,
                settings.setlistfm_url,
                settings.setlistfm_key.get_secret_value(),
                gate=gate_of("setlistfm", settings.setlistfm_rate),
                breaker=breaker_of("setlistfm"),
                retry_delay=delay,
                backoff=settings.setlistfm_backoff,
            ),
        )
