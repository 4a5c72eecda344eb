"""What the benchmarks share: a lean HTTP/1.1 client, percentiles, and
waiting for a service to answer."""

from __future__ import annotations

import asyncio
import json
import time

import httpx


class LeanClient:
    """HTTP/1.1 over kept-alive connections, one per request in flight and
    none shared: a load generator must cost little, or its own event loop
    delays what it measures (httpx's pool spends most of a core on 200
    connections in flight)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"host": f"{host}:{port}", **headers}.items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else b""
        extra = f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n" if payload else ""
        message = f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + payload
        reader, writer = await self._connection()
        try:
            writer.write(message)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            fields = {k.lower(): v for k, v in fields.items()}
            answer = await reader.readexactly(int(fields.get("content-length", "0")))
        except BaseException:
            writer.close()
            raise
        if fields.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        return status, answer

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The last one used, unless idle long enough for the server to close
        it (uvicorn keeps an idle connection 5 s)."""
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < 3.0:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def wait_http(url: str, headers: dict[str, str] | None = None, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url, headers=headers or {})).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer")
            await asyncio.sleep(0.1)
