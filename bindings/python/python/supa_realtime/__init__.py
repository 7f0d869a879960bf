"""Supabase Realtime for Python, on the native libsupa_realtime (uniffi).

>>> from supa_realtime import Client
>>> client = Client("http://127.0.0.1:4000/realtime/v1", "anon-key")  # doctest: +SKIP

See :class:`Client` and :class:`Channel`. The generated low-level bindings are in
``supa_realtime._native``.
"""

from .client import Channel, Client, EventStream, RealtimeError
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

__all__ = [
    "Broadcast",
    "Channel",
    "ChannelStatus",
    "Client",
    "ClientError",
    "ConnectionStatus",
    "Event",
    "EventStream",
    "Heartbeat",
    "Lagged",
    "PostgresChange",
    "PresenceEvent",
    "PresenceJoin",
    "PresenceLeave",
    "PresenceSync",
    "RealtimeError",
    "Resumed",
    "System",
]
