"""Artist images, resized (the ``image-processing`` queue): the picture an
artist's page shows is fetched once from the upstream's CDN and stored as
JPEG variants of a few widths, served by ``/api/artists/{key}/images/{size}``."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from setlist.models import ArtistImage

#: Each variant's name and its width at most (the height keeps the ratio).
SIZES: dict[str, int] = {"thumb": 64, "small": 160, "medium": 320, "large": 640}
#: A picture larger than this is refused before it is decoded.
MAX_BYTES = 10 * 1024 * 1024
#: And one of more pixels than this (a decompression bomb) too.
MAX_PIXELS = 40_000_000


class BadImage(Exception):
    """Raised when the upstream's answer is not a picture we can use;
    trying again would not help."""


@dataclass(frozen=True, slots=True)
class Variant:
    size: str
    width: int
    height: int
    data: bytes


async def fetch(http: httpx.AsyncClient, url: str) -> bytes:
    """The picture at ``url``. Raises BadImage on a 4xx or an oversized
    body, httpx errors (retried by the job) on 5xx and network failures."""
    async with http.stream("GET", url) as response:
        if 400 <= response.status_code < 500:
            raise BadImage(f"{url}: HTTP {response.status_code}")
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BYTES:
                raise BadImage(f"{url}: larger than {MAX_BYTES} bytes")
    return bytes(body)


def resize(data: bytes, sizes: dict[str, int] = SIZES) -> list[Variant]:
    """JPEG variants of the picture, none wider than the original."""
    try:
        with Image.open(io.BytesIO(data)) as original:
            if original.width * original.height > MAX_PIXELS:
                raise BadImage(f"{original.width}x{original.height} is too many pixels")
            picture = ImageOps.exif_transpose(original).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise BadImage(f"not a picture: {exc}") from None
    variants = []
    for size, width in sizes.items():
        copy = picture.copy()
        copy.thumbnail((width, picture.height))  # keeps the ratio, never enlarges
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=85, optimize=True)
        variants.append(Variant(size, copy.width, copy.height, out.getvalue()))
    return variants


class Images:
    """The stored variants of each artist's picture."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient) -> None:
        self.sessions = sessions
        self.http = http

    async def process(self, artist_id: str, url: str) -> dict[str, Any]:
        """Fetches ``url`` and stores its variants in place of the artist's
        previous ones, in one transaction."""
        variants = await asyncio.to_thread(resize, await fetch(self.http, url))
        await self.save(artist_id, url, variants)
        return {"url": url, "sizes": {v.size: [v.width, v.height] for v in variants}}

    async def save(self, artist_id: str, url: str, variants: Sequence[Variant]) -> None:
        async with self.sessions.begin() as session:
            await session.execute(delete(ArtistImage).where(ArtistImage.artist_id == artist_id))
            session.add_all(
                ArtistImage(
                    artist_id=artist_id,
                    size=v.size,
                    width=v.width,
                    height=v.height,
                    content_type="image/jpeg",
                    data=v.data,
                    source_url=url,
                )
                for v in variants
            )

    async def source(self, artist_id: str) -> str | None:
        """The URL the stored variants were made from (None: none stored)."""
        async with self.sessions() as session:
            found = await session.scalar(
                select(ArtistImage.source_url).where(ArtistImage.artist_id == artist_id).limit(1)
            )
        return found

    async def get(self, artist_id: str, size: str) -> ArtistImage | None:
        async with self.sessions() as session:
            return await session.get(ArtistImage, (artist_id, size))


async def stored_sizes(
    sessions: async_sessionmaker[AsyncSession], artist_id: str
) -> dict[str, tuple[int, int]]:
    """The variants stored for the artist: size name to width and height."""
    async with sessions() as session:
        rows = await session.execute(
            select(ArtistImage.size, ArtistImage.width, ArtistImage.height).where(
                ArtistImage.artist_id == artist_id
            )
        )
    return {size: (w, h) for size, w, h in rows}
