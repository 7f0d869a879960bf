"""Events as plain Python objects: JSON payloads become dicts/lists, statuses become strings.

Every event carries the channel ``topic`` (``realtime:<name>``) where one applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from ._native import supa_realtime as _ffi

Json = Any
"""A decoded JSON value (dict, list, str, int, float, bool or None)."""


@dataclass(frozen=True)
class ConnectionStatus:
    """The socket's state changed: ``DISCONNECTED``, ``CONNECTING``, ``CONNECTED`` or ``SHUT_DOWN``."""

    state: str
    reason: Optional[str] = None


@dataclass(frozen=True)
class Heartbeat:
    """A heartbeat was sent (``SENT``) or answered (``OK``, ``ERROR``, ``TIMEOUT``)."""

    status: str
    rtt_ms: Optional[float] = None


@dataclass(frozen=True)
class ChannelStatus:
    """A subscribe status: ``SUBSCRIBED``, ``TIMED_OUT``, ``CLOSED`` or ``CHANNEL_ERROR``.

    ``reason`` is the server's text unchanged; ``error_kind`` is ``RECOVERABLE`` (the client
    retries) or ``TERMINAL``. ``token_rejected``: the access token was refused for good; call
    ``client.set_auth`` with a new one and subscribe a new channel.
    """

    topic: str
    status: str
    reason: Optional[str] = None
    error_kind: Optional[str] = None
    token_rejected: bool = False


@dataclass(frozen=True)
class Broadcast:
    """A broadcast: ``payload`` is the decoded JSON, or ``bytes`` for a binary broadcast."""

    topic: str
    event: str
    payload: Union[Json, bytes]
    meta: Optional[Dict[str, Json]] = None


@dataclass(frozen=True)
class PresenceSync:
    """The presence state changed; read it with ``channel.presence_state()``."""

    topic: str


@dataclass(frozen=True)
class PresenceJoin:
    """``key`` gained ``new`` metas (``current`` were there before)."""

    topic: str
    key: str
    current: List[Dict[str, Json]]
    new: List[Dict[str, Json]]


@dataclass(frozen=True)
class PresenceLeave:
    """``key`` lost ``left`` metas (``current`` remain)."""

    topic: str
    key: str
    current: List[Dict[str, Json]]
    left: List[Dict[str, Json]]


PresenceEvent = Union[PresenceSync, PresenceJoin, PresenceLeave]


@dataclass(frozen=True)
class PostgresChange:
    """A database change, shaped as realtime-js delivers it (values converted by column type)."""

    topic: str
    schema: str
    table: str
    commit_timestamp: str
    event_type: str
    new: Dict[str, Json]
    old: Dict[str, Json]
    errors: Optional[List[str]]
    columns: List[Dict[str, Json]]
    bindings: List[int] = field(default_factory=list)


@dataclass(frozen=True)
class System:
    """A ``system`` message, e.g. ``{"message": "Subscribed to PostgreSQL", ...}``."""

    topic: str
    payload: Dict[str, Json]


@dataclass(frozen=True)
class Resumed:
    """The channel joined again after ``gap_ms`` away: events may have been missed."""

    topic: str
    gap_ms: int


@dataclass(frozen=True)
class Lagged:
    """The event queue was full: ``dropped`` data events were skipped here."""

    dropped: int


@dataclass(frozen=True)
class ClientError:
    """A problem not tied to a request (malformed frame, token provider failure, ...)."""

    message: str


Event = Union[
    ConnectionStatus,
    Heartbeat,
    ChannelStatus,
    Broadcast,
    PresenceSync,
    PresenceJoin,
    PresenceLeave,
    PostgresChange,
    System,
    Resumed,
    Lagged,
    ClientError,
]


def _name(e: Any) -> str:
    return e.name


def payload_from_ffi(p: Any) -> Union[Json, bytes]:
    if p.is_binary():
        return bytes(p.data)
    return json.loads(p.json)


def payload_to_ffi(payload: Union[Json, bytes, bytearray, memoryview]) -> Any:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return _ffi.Payload.BINARY(bytes(payload))
    return _ffi.Payload.JSON(json.dumps(payload))


def broadcast_from_ffi(m: Any) -> Broadcast:
    return Broadcast(
        topic=m.topic,
        event=m.event,
        payload=payload_from_ffi(m.payload),
        meta=json.loads(m.meta_json) if m.meta_json is not None else None,
    )


def presence_from_ffi(p: Any) -> PresenceEvent:
    if p.is_sync():
        return PresenceSync(topic=p.topic)
    if p.is_join():
        return PresenceJoin(
            topic=p.topic,
            key=p.key,
            current=json.loads(p.current_json),
            new=json.loads(p.new_json),
        )
    return PresenceLeave(
        topic=p.topic,
        key=p.key,
        current=json.loads(p.current_json),
        left=json.loads(p.left_json),
    )


def change_from_ffi(c: Any) -> PostgresChange:
    return PostgresChange(
        topic=c.topic,
        schema=c.schema,
        table=c.table,
        commit_timestamp=c.commit_timestamp,
        event_type=c.event_type,
        new=json.loads(c.new_json),
        old=json.loads(c.old_json),
        errors=json.loads(c.errors_json),
        columns=json.loads(c.columns_json),
        bindings=list(c.bindings),
    )


def event_from_ffi(e: Any) -> Event:
    """Converts a generated ``RealtimeEvent`` into one of the dataclasses above."""
    if e.is_broadcast():
        return broadcast_from_ffi(e.message)
    if e.is_presence():
        return presence_from_ffi(e.event)
    if e.is_postgres_change():
        return change_from_ffi(e.change)
    if e.is_channel_status():
        return ChannelStatus(
            topic=e.topic,
            status=_name(e.status),
            reason=e.reason,
            error_kind=_name(e.error_kind) if e.error_kind is not None else None,
            token_rejected=e.token_rejected,
        )
    if e.is_connection_status():
        return ConnectionStatus(state=_name(e.state), reason=e.reason)
    if e.is_heartbeat():
        return Heartbeat(status=_name(e.status), rtt_ms=e.rtt_ms)
    if e.is_system():
        return System(topic=e.topic, payload=json.loads(e.payload_json))
    if e.is_resumed():
        return Resumed(topic=e.topic, gap_ms=e.gap_ms)
    if e.is_lagged():
        return Lagged(dropped=e.dropped)
    return ClientError(message=e.message)
