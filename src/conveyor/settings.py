"""Connection settings, read from the environment at the edges (``connect``,
the CLI). The variables are the seeds': ``REDIS_URL`` (``redis://``,
``rediss://``, ``unix://``, ``redis+sentinel://``) or ``REDIS_HOST``, ``REDIS_PORT``,
``REDIS_USERNAME``, ``REDIS_PASSWORD``, ``REDIS_DB``, ``REDIS_TLS``, plus
``REDIS_TLS_CA_FILE`` for a server whose certificate a private CA signed."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.errors import ConnectionFailed


class RedisSettings(BaseSettings):
    """Where Redis is and how to talk to it."""

    model_config = SettingsConfigDict(env_prefix="REDIS_", extra="ignore")

    url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=6379, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    db: int = Field(default=0, ge=0)
    tls: bool = False
    #: PEM file of the CA that signed the server's certificate, for
    #: ``rediss://`` to a server outside the system's trust store. The
    #: certificate and host name are always verified.
    tls_ca_file: str | None = None
    #: Seconds to wait for a connection or a reply before failing.
    timeout: float = Field(default=5.0, gt=0)

    def resolved_url(self) -> str:
        """The URL to connect to: ``REDIS_URL`` or one built from the parts.
        Raises ConnectionFailed for ``REDIS_TLS`` with a plain-TCP URL,
        rather than send the password in the clear."""
        if self.url:
            if self.tls and not self.url.startswith(("rediss:", "rediss+", "unix:")):
                scheme = self.url.partition(":")[0]
                raise ConnectionFailed(
                    f"REDIS_TLS is on but REDIS_URL is {scheme}:// (plain TCP): "
                    f"use {scheme.replace('redis', 'rediss', 1)}:// or unset REDIS_TLS"
                )
            return self.url
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.username or self.password:
            auth = quote(self.username or "", safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"

    def is_configured(self) -> bool:
        """True when the environment names a Redis (URL or host)."""
        return bool(self.url) or "host" in self.model_fields_set
