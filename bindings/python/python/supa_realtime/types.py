"""What callbacks receive, in the shapes of the official ``realtime`` package (supabase-py).

Broadcast and postgres-changes callbacks get plain dicts with realtime's keys (typed here as
``TypedDict``), presence callbacks get realtime's arguments, and subscribe callbacks get a
:class:`RealtimeSubscribeStates`, so callbacks written for ``realtime`` run unchanged.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Dict, List, Literal, Optional, TypedDict, Union


Json = Any
"""A decoded JSON value (dict, list, str, int, float, bool or None)."""

PostgresChangesEvent = Literal["*", "INSERT", "UPDATE", "DELETE"]
"""Which changes a postgres-changes binding receives."""


class RealtimeSubscribeStates(str, Enum):
    """The statuses a subscribe callback receives (realtime's enum, same values)."""

    SUBSCRIBED = "SUBSCRIBED"
    TIMED_OUT = "TIMED_OUT"
    CLOSED = "CLOSED"
    CHANNEL_ERROR = "CHANNEL_ERROR"


class _BroadcastRequired(TypedDict):
    type: Literal["broadcast"]
    topic: str
    event: str
    payload: Union[Json, bytes]


class BroadcastPayload(_BroadcastRequired, total=False):
    """A received broadcast: ``payload`` is the decoded JSON (``bytes`` for a binary
    broadcast); ``meta`` (e.g. ``{"id": ...}``) only when the server sent one."""

    meta: Dict[str, Json]


class PostgresChangesColumn(TypedDict):
    name: str
    type: str


class PostgresChangesData(TypedDict):
    """A database change. ``record`` is the new row (``{}`` for DELETE), ``old_record`` the
    old row's replica-identity columns (``{}`` for INSERT); values are converted by column
    type as realtime-js does (numbers, booleans, JSON, arrays; timestamps stay strings)."""

    schema: str
    table: str
    commit_timestamp: str
    type: Literal["INSERT", "UPDATE", "DELETE"]
    errors: Optional[List[str]]
    columns: List[PostgresChangesColumn]
    record: Dict[str, Json]
    old_record: Dict[str, Json]


class PostgresChangesPayload(TypedDict):
    """What a postgres-changes callback receives. ``ids``: the indices (registration order)
    of the channel's bindings that matched."""

    type: Literal["postgres_changes"]
    topic: str
    ids: List[int]
    data: PostgresChangesData


Presence = Dict[str, Json]
"""One tracked presence: its metadata plus ``presence_ref``."""

RealtimePresenceState = Dict[str, List[Presence]]
"""Presence key -> the presences tracked under it."""


class RealtimeChannelBroadcastConfig(TypedDict, total=False):
    ack: bool
    self: bool


class RealtimeChannelPresenceConfig(TypedDict, total=False):
    key: str
    enabled: bool


class RealtimeChannelConfig(TypedDict, total=False):
    broadcast: RealtimeChannelBroadcastConfig
    presence: RealtimeChannelPresenceConfig
    private: bool


class RealtimeChannelOptions(TypedDict, total=False):
    """realtime's ``params`` for ``client.channel(topic, params)``."""

    config: RealtimeChannelConfig
