"""Typed events, as ``events()`` streams and ``on_event`` callbacks receive them.

Every event carries the channel ``topic`` (``realtime:<name>``) where one applies. They are
built from the batches the library delivers (see ``src/uniffi/batch.rs`` for the format).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

from ._native import supa_realtime as _ffi
from .types import Json, RealtimeSubscribeStates


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
    """A subscribe status: ``SUBSCRIBED``, ``TIMED_OUT``, ``CLOSED`` or ``CHANNEL_ERROR``
    (a :class:`RealtimeSubscribeStates`, which compares equal to those strings).

    ``reason`` is the server's text unchanged; ``error_kind`` is ``RECOVERABLE`` (the client
    retries) or ``TERMINAL``. ``token_rejected``: the access token was refused for good; call
    ``client.set_auth`` with a new one and subscribe a new channel.
    """

    topic: str
    status: RealtimeSubscribeStates
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

    @property
    def id(self) -> Optional[str]:
        """The stored message's id (``meta["id"]``), for persisted messages."""
        value = (self.meta or {}).get("id")
        return value if isinstance(value, str) else None

    @property
    def replayed(self) -> bool:
        """Delivered by a replay on join (``meta["replayed"]``), not live."""
        return (self.meta or {}).get("replayed") is True


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
    """The channel joined again after ``gap_ms`` away: events may have been missed. With
    ``auto_replay``, it comes after the replayed messages and ``filled`` says that every
    broadcast stored during the gap was delivered."""

    topic: str
    gap_ms: int
    filled: bool = False


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


def payload_to_ffi(payload: Union[Json, bytes, bytearray, memoryview]) -> Any:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return _ffi.Payload.BINARY(bytes(payload))
    return _ffi.Payload.JSON(json.dumps(payload))


def _broadcast(d: Dict[str, Any]) -> Broadcast:
    return Broadcast(d["topic"], d["event"], d["payload"], d.get("meta"))


def _change(d: Dict[str, Any]) -> PostgresChange:
    c = d["data"]
    return PostgresChange(
        topic=d["topic"],
        schema=c["schema"],
        table=c["table"],
        commit_timestamp=c["commit_timestamp"],
        event_type=c["type"],
        new=c["record"],
        old=c["old_record"],
        errors=c["errors"],
        columns=c["columns"],
        bindings=d["ids"],
    )


def _presence(d: Dict[str, Any]) -> Event:
    kind = d["event"]
    if kind == "join":
        return PresenceJoin(d["topic"], d["key"], d["current_presences"], d["new_presences"])
    if kind == "leave":
        return PresenceLeave(d["topic"], d["key"], d["current_presences"], d["left_presences"])
    return PresenceSync(d["topic"])


def _status(d: Dict[str, Any]) -> ChannelStatus:
    return ChannelStatus(
        topic=d["topic"],
        status=RealtimeSubscribeStates(d["status"]),
        reason=d["reason"],
        error_kind=d["error_kind"],
        token_rejected=d["token_rejected"],
    )


_DECODERS: Dict[str, Callable[[Dict[str, Any]], Event]] = {
    "broadcast": _broadcast,
    "postgres_changes": _change,
    "presence": _presence,
    "status": _status,
    "connection": lambda d: ConnectionStatus(d["state"], d["reason"]),
    "heartbeat": lambda d: Heartbeat(d["status"], d["rtt_ms"]),
    "system": lambda d: System(d["topic"], d["payload"]),
    "resumed": lambda d: Resumed(d["topic"], d["gap_ms"], d.get("filled", False)),
    "lagged": lambda d: Lagged(d["dropped"]),
    "error": lambda d: ClientError(d["message"]),
}


def event_from_dict(d: Dict[str, Any]) -> Event:
    """The typed event for one element of a delivered batch."""
    return _DECODERS[d["type"]](d)


def decode_batch(events_json: str, binaries: List[bytes]) -> List[Dict[str, Any]]:
    """One delivered batch as dicts (binary broadcast payloads put in place)."""
    events: List[Dict[str, Any]] = json.loads(events_json)
    if binaries:
        for d in events:
            if "binary" in d:
                d["payload"] = binaries[d.pop("binary")]
    return events
