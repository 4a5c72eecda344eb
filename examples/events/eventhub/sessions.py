"""Sessions on the master Redis, as the design keeps them there: created
for a user, touched on each use (which pushes their expiry back), expired
by Redis after ``ttl`` seconds unused, revoked one by one or all of a
user's at once."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

KEY = "eventhub:session:"
USER = "eventhub:user-sessions:"


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user_id: str
    created_at: float
    expires_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "sessionId": self.id,
            "userId": self.user_id,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
        }


class Sessions:
    def __init__(self, redis: Any, ttl: float) -> None:
        self.redis, self.ttl_ms = redis, max(1, round(ttl * 1000))

    async def create(self, user_id: str) -> Session:
        session_id = secrets.token_urlsafe(24)
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(KEY + session_id, mapping={"user": user_id, "created": repr(now)})
            pipe.pexpire(KEY + session_id, self.ttl_ms)
            pipe.sadd(USER + user_id, session_id)
            pipe.pexpire(USER + user_id, self.ttl_ms)
            await pipe.execute()
        return Session(session_id, user_id, now, now + self.ttl_ms / 1000)

    async def touch(self, session_id: str) -> Session | None:
        """The session, its expiry pushed back; None when it expired or was revoked."""
        if not session_id or len(session_id) > 100:
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.pexpire(KEY + session_id, self.ttl_ms)
            pipe.hgetall(KEY + session_id)
            extended, fields = await pipe.execute()
        if not extended or not fields:
            return None
        user = fields[b"user"].decode()
        await self.redis.pexpire(USER + user, self.ttl_ms)
        return Session(session_id, user, float(fields[b"created"]), time.time() + self.ttl_ms / 1000)

    async def revoke(self, session_id: str) -> bool:
        user = await self.redis.hget(KEY + session_id, "user")
        removed = bool(await self.redis.delete(KEY + session_id))
        if user is not None:
            await self.redis.srem(USER + user.decode(), session_id)
        return removed

    async def revoke_user(self, user_id: str) -> int:
        """Revokes every session of ``user_id``; how many were live."""
        ids = [i.decode() for i in await self.redis.smembers(USER + user_id)]
        removed = int(await self.redis.delete(*(KEY + i for i in ids))) if ids else 0
        await self.redis.delete(USER + user_id)
        return removed
