"""The platform's events: user, workspace, auth, Airtable and job events,
each a pydantic model with its type name, and a publisher for them."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from conveyor import EventBus


class PlatformEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: ClassVar[str]


class UserCreated(PlatformEvent):
    type = "user.created"
    user_id: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class UserUpdated(PlatformEvent):
    type = "user.updated"
    user_id: str = Field(min_length=1)
    fields: list[str]


class WorkspaceCreated(PlatformEvent):
    type = "workspace.created"
    workspace_id: str = Field(min_length=1)
    owner_id: str = Field(min_length=1)
    name: str


class AuthLogin(PlatformEvent):
    type = "auth.login"
    user_id: str
    ip: str


class AuthFailed(PlatformEvent):
    type = "auth.failed"
    email: str
    ip: str
    reason: str


class JobFinished(PlatformEvent):
    type = "job.finished"
    queue: str
    job_id: str
    outcome: str


class AirtableRecord(PlatformEvent):
    base_id: str = Field(min_length=1)
    table_id: str = Field(min_length=1)
    record_id: str = Field(min_length=1)
    #: The base's ``baseTransactionNumber`` of the change: it orders one
    #: record's changes however the processor happens to deliver them.
    transaction: int = Field(default=0, ge=0)


class AirtableRecordCreated(AirtableRecord):
    type = "airtable.record.created"
    fields: dict[str, Any]


class AirtableRecordUpdated(AirtableRecord):
    type = "airtable.record.updated"
    #: The record's cells after the change (the changed and the unchanged).
    fields: dict[str, Any]
    #: The fields the change touched.
    changed: list[str]


class AirtableRecordDeleted(AirtableRecord):
    type = "airtable.record.deleted"


class AirtableBaseSynced(PlatformEvent):
    """A base's changes up to ``cursor`` are all published."""

    type = "airtable.base.synced"
    base_id: str = Field(min_length=1)
    webhook_id: str
    cursor: int
    changes: int


EVENT_TYPES: dict[str, type[PlatformEvent]] = {
    cls.type: cls
    for cls in (
        UserCreated,
        UserUpdated,
        WorkspaceCreated,
        AuthLogin,
        AuthFailed,
        AirtableRecordCreated,
        AirtableRecordUpdated,
        AirtableRecordDeleted,
        AirtableBaseSynced,
        JobFinished,
    )
}


class Publisher:
    """Publishes platform events on the streams connection's bus."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def publish(self, event: PlatformEvent) -> str:
        return await self.bus.publish(event.type, event.model_dump())

    async def publish_many(self, events: list[PlatformEvent]) -> list[str]:
        return await self.bus.publish_many([(e.type, e.model_dump()) for e in events])
