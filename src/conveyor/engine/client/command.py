"""A script as the engine calls it: :class:`Command` names its KEYS, its
ARGV and the fields of its reply in the order its header lists them, and
the typed function beside each one (in ``engine/commands``) is the only
caller. A test holds every declaration
to its script's header, so a header, its declaration and its caller agree
by name, not only by count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import redis
import redis.cluster

from conveyor.engine.client.channel import Arg
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.headers import check_call
from conveyor.engine.client.scripts import Script, script

#: Every command declared, by script name (a test checks them against the headers).
COMMANDS: dict[str, Command] = {}


class Command:
    """One Lua script: what its KEYS and ARGV are called (``more_keys`` /
    ``more_argv``: the header's ``then ...``, values that follow the named
    ones) and, for a script that replies ``{ a, b, ... }``, the NamedTuple
    its reply becomes."""

    __slots__ = ("_script", "argv", "keys", "more_argv", "more_keys", "name", "reply")

    def __init__(
        self,
        name: str,
        *,
        keys: Sequence[str],
        argv: Sequence[str],
        more_keys: bool = False,
        more_argv: bool = False,
        reply: type[NamedTuple] | None = None,
    ) -> None:
        if name in COMMANDS:
            raise RuntimeError(f"script {name} is declared twice")
        self.name = name
        self._script: Script | None = None  # read at the first call, not on import
        self.keys = tuple(keys)
        self.argv = tuple(argv)
        self.more_keys = more_keys
        self.more_argv = more_argv
        self.reply = reply
        COMMANDS[name] = self

    @property
    def script(self) -> Script:
        found = self._script
        if found is None:
            found = self._script = script(self.name)
        return found

    async def run(
        self, client: RedisClient, keys: Sequence[str], argv: Sequence[Arg], *, resend: bool = True
    ) -> Any:
        """The script's raw reply (see :meth:`Script.run`)."""
        return await self.script.run(client, keys, argv, resend=resend)

    async def run_replicated(
        self,
        client: RedisClient,
        keys: Sequence[str],
        argv: Sequence[Arg],
        replicas: int,
        wait_ms: int,
        *,
        resend: bool = False,
    ) -> tuple[Any, int]:
        """The reply and how many replicas confirmed it (see :meth:`Script.run_replicated`)."""
        return await self.script.run_replicated(client, keys, argv, replicas, wait_ms, resend=resend)

    def run_sync(
        self, client: redis.Redis | redis.cluster.RedisCluster, keys: Sequence[str], argv: Sequence[Arg]
    ) -> Any:
        return self.script.run_sync(client, keys, argv)

    def queue_in(self, pipe: Any, keys: Sequence[str], argv: Sequence[Arg]) -> None:
        """Queues the script in a redis-py pipeline (as EVALSHA: a cluster
        pipeline refuses ``.evalsha()``); the caller loads :attr:`source`
        when the pipeline answers NOSCRIPT."""
        pipe.execute_command(*self.evalsha(keys, argv))

    def evalsha(self, keys: Sequence[str], argv: Sequence[Arg]) -> tuple[Any, ...]:
        """The call as a raw EVALSHA command, for a caller that writes it on a
        connection itself (a pipeline, or behind a blocking command) and
        loads :attr:`source` when Redis answers NOSCRIPT."""
        if self.script.checked:
            check_call(self.name, keys, argv)
        return ("EVALSHA", self.script.sha, len(keys), *keys, *argv)

    @property
    def source(self) -> str:
        return self.script.source
