"""Supabase Realtime for Python, on the native libsupa_realtime (uniffi).

The API follows the official ``realtime`` package (supabase-py), so its code ports by
changing imports:

>>> from supa_realtime import RealtimeClient
>>> client = RealtimeClient("http://127.0.0.1:4000/realtime/v1", "anon-key")  # doctest: +SKIP
>>> room = client.channel("room1")  # doctest: +SKIP
>>> room.on_broadcast("hello", lambda msg: print(msg["payload"]))  # doctest: +SKIP
>>> await room.subscribe(lambda status, err: print(status))  # doctest: +SKIP

See :class:`RealtimeClient` and :class:`RealtimeChannel`. The generated low-level bindings are
in ``supa_realtime._native``.
"""

from .client import (
    DEFAULT_QUEUE_CAPACITY,
    Channel,
    Client,
    EventStream,
    RealtimeChannel,
    RealtimeClient,
    RealtimeError,
)
from .events import (
    Broadcast,
    ChannelStatus,
    ClientError,
    ConnectionStatus,
    Event,
    Heartbeat,
    Lagged,
    PostgresChange,
    PresenceEvent,
    PresenceJoin,
    PresenceLeave,
    PresenceSync,
    Resumed,
    System,
)
from .types import (
    BroadcastPayload,
    PostgresChangesData,
    PostgresChangesEvent,
    PostgresChangesPayload,
    Presence,
    RealtimeChannelOptions,
    RealtimePresenceState,
    RealtimeSubscribeStates,
)

AsyncRealtimeClient = RealtimeClient
"""realtime's name for :class:`RealtimeClient` (it is asyncio-first, and usable without)."""
AsyncRealtimeChannel = RealtimeChannel
"""realtime's name for :class:`RealtimeChannel`."""

__all__ = [
    "AsyncRealtimeChannel",
    "AsyncRealtimeClient",
    "Broadcast",
    "BroadcastPayload",
    "Channel",
    "ChannelStatus",
    "Client",
    "ClientError",
    "ConnectionStatus",
    "DEFAULT_QUEUE_CAPACITY",
    "Event",
    "EventStream",
    "Heartbeat",
    "Lagged",
    "PostgresChange",
    "PostgresChangesData",
    "PostgresChangesEvent",
    "PostgresChangesPayload",
    "Presence",
    "PresenceEvent",
    "PresenceJoin",
    "PresenceLeave",
    "PresenceSync",
    "RealtimeChannel",
    "RealtimeChannelOptions",
    "RealtimeClient",
    "RealtimeError",
    "RealtimePresenceState",
    "RealtimeSubscribeStates",
    "Resumed",
    "System",
]
