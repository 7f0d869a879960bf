"""The Pythonic client: :class:`Client`, :class:`Channel` and :class:`EventStream`.

Callbacks run on the client's dispatch thread (``supa-dispatch``), one at a time and in order,
never on the library's network thread. They may call any method, including the ``*_nowait``
ones (``send_nowait``, ``subscribe_nowait``, ``unsubscribe_nowait``); an exception raised by a
callback is logged on the ``supa_realtime`` logger and does not stop delivery.

For asyncio code, ``await`` the coroutine methods and iterate events with
``async for event in channel.events()``: events are handed to the event loop with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import weakref
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Union,
)

from ._native import supa_realtime as _ffi
from .events import (
    Broadcast,
    ChannelStatus,
    ConnectionStatus,
    Event,
    Json,
    PostgresChange,
    PresenceEvent,
    broadcast_from_ffi,
    change_from_ffi,
    event_from_ffi,
    payload_to_ffi,
    presence_from_ffi,
)

log = logging.getLogger("supa_realtime")

# A library thread entering Python while the interpreter finalizes is killed mid-call, which
# aborts the process: stop (and drain) all calls into Python before finalization starts.
atexit.register(_ffi.stop_callbacks, 2000)

RealtimeError = _ffi.RealtimeError
"""Raised by failing calls; subclasses: ``RealtimeError.ChannelError`` (``.reason``, the
server's text, and ``.recoverable``), ``.Timeout``, ``.InvalidArgument``, ``.Shutdown``, ..."""

Payload = Union[Json, bytes]


def _call(fn: Callable[[Any], Any], arg: Any) -> None:
    try:
        fn(arg)
    except Exception:  # a user callback must not break delivery
        log.exception("supa_realtime callback %r raised", fn)


class _EventListener(_ffi.EventListener):
    def __init__(self, fn: Callable[[Event], Any]):
        self._fn = fn

    def on_event(self, event: Any) -> None:
        _call(self._fn, event_from_ffi(event))


class _BroadcastListener(_ffi.BroadcastListener):
    def __init__(self, fn: Callable[[Broadcast], Any]):
        self._fn = fn

    def on_broadcast(self, message: Any) -> None:
        _call(self._fn, broadcast_from_ffi(message))


class _PresenceListener(_ffi.PresenceListener):
    def __init__(self, fn: Callable[[PresenceEvent], Any]):
        self._fn = fn

    def on_presence(self, event: Any) -> None:
        _call(self._fn, presence_from_ffi(event))


class _ChangeListener(_ffi.PostgresChangeListener):
    def __init__(self, fn: Callable[[PostgresChange], Any]):
        self._fn = fn

    def on_change(self, change: Any) -> None:
        _call(self._fn, change_from_ffi(change))


class _SystemListener(_ffi.SystemListener):
    def __init__(self, fn: Callable[[Dict[str, Json]], Any]):
        self._fn = fn

    def on_system(self, payload_json: str) -> None:
        _call(self._fn, json.loads(payload_json))


class _TokenProvider(_ffi.TokenProvider):
    def __init__(self, fn: Callable[[], Optional[str]]):
        self._fn = fn

    def token(self) -> Optional[str]:
        return self._fn()


class _Wakeup(_ffi.WakeupListener):
    def __init__(self, fn: Callable[[], Any]):
        self._fn = fn

    def wake(self) -> None:
        try:
            self._fn()
        except Exception:
            log.exception("supa_realtime wakeup callback raised")


_END = object()


class EventStream(AsyncIterator[Event]):
    """An async iterator of events, fed from the dispatch thread into the running event loop.

    Use it as ``async with channel.events() as events: async for e in events: ...``; leaving the
    block (or :meth:`close`) unregisters it. A channel's stream ends after the channel's final
    ``CLOSED`` status; a client's stream ends when the client shuts down.
    """

    def __init__(
        self,
        client: "_ffi.RealtimeClient",
        register: Callable[[Any], int],
        is_last: Callable[[Event], bool],
    ):
        self._loop = asyncio.get_running_loop()
        self._queue: "asyncio.Queue[Any]" = asyncio.Queue()
        self._is_last = is_last
        self._client = weakref.ref(client)
        self._done = False
        self._id: Optional[int] = None
        self._id = register(_EventListener(self._push))

    def _push(self, event: Event) -> None:
        # On the dispatch thread: hand over to the loop's thread.
        last = self._is_last(event)
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
            if last:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, _END)
        except RuntimeError:  # the loop was closed
            pass

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._done = True
            self._unregister()
            raise StopAsyncIteration
        return item

    async def next(self, timeout: Optional[float] = None) -> Event:
        """The next event, waiting at most ``timeout`` seconds (``asyncio.TimeoutError``)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def _unregister(self) -> None:
        client = self._client()
        if self._id is not None and client is not None:
            client.remove_listener(self._id)
        self._id = None

    def close(self) -> None:
        """Stops the stream; iteration ends once the already queued events are consumed."""
        self._unregister()
        if not self._done:
            self._queue.put_nowait(_END)

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


def _ms(seconds: Optional[float]) -> Optional[int]:
    return None if seconds is None else int(seconds * 1000)


def _ms_list(seconds: Optional[Iterable[float]]) -> Optional[List[int]]:
    return None if seconds is None else [int(s * 1000) for s in seconds]


class Client:
    """A Supabase Realtime client: one WebSocket, many channels.

    Creating it does not connect; :meth:`connect`, or subscribing a channel, does. Call
    :meth:`shutdown` (or use ``with``/``async with``) when done: listeners that reference the
    client keep it alive otherwise. Durations are in seconds.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        access_token: Optional[str] = None,
        params: Optional[Dict[str, str]] = None,
        headers: Optional[Dict[str, str]] = None,
        vsn: str = "2.0.0",
        heartbeat_interval: Optional[float] = None,
        push_timeout: Optional[float] = None,
        reconnect_delays: Optional[Iterable[float]] = None,
        reconnect_jitter: Optional[float] = None,
        rejoin_delays: Optional[Iterable[float]] = None,
        custom_ca_pem: Optional[str] = None,
        native_roots: bool = False,
        app_pumped: bool = False,
        queue_capacity: Optional[int] = None,
        token_provider: Optional[Callable[[], Optional[str]]] = None,
        token_refresh_margin: Optional[float] = None,
        auth_retries: Optional[int] = None,
    ):
        if vsn not in ("1.0.0", "2.0.0"):
            raise ValueError("vsn must be '1.0.0' or '2.0.0'")
        options = _ffi.ClientOptions(
            url=url,
            api_key=api_key,
            access_token=access_token,
            params=dict(params or {}),
            headers=dict(headers or {}),
            vsn=_ffi.SerializerVersion.V1 if vsn == "1.0.0" else _ffi.SerializerVersion.V2,
            heartbeat_interval_ms=_ms(heartbeat_interval),
            push_timeout_ms=_ms(push_timeout),
            reconnect_delays_ms=_ms_list(reconnect_delays),
            reconnect_jitter=reconnect_jitter,
            rejoin_delays_ms=_ms_list(rejoin_delays),
            custom_ca_pem=custom_ca_pem,
            native_roots=native_roots,
            dispatch=_ffi.DispatchMode.APP_PUMPED if app_pumped else _ffi.DispatchMode.THREAD,
            queue_capacity=queue_capacity,
            token_refresh_margin_ms=_ms(token_refresh_margin),
            auth_retries=auth_retries,
        )
        provider = _TokenProvider(token_provider) if token_provider is not None else None
        self._ffi = _ffi.RealtimeClient(options, provider)

    # lifecycle

    def connect(self) -> None:
        """Starts connecting (and keeps reconnecting until :meth:`disconnect`)."""
        self._ffi.connect()

    async def connected(self) -> None:
        """Connects if needed and returns once the socket is open."""
        await self._ffi.connected()

    def disconnect(self) -> None:
        """Closes the socket; channels rejoin on the next :meth:`connect`."""
        self._ffi.disconnect()

    def shutdown(self) -> None:
        """Closes everything for good; later calls raise ``RealtimeError.Shutdown``."""
        self._ffi.shutdown()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.shutdown()

    def set_auth(self, token: Optional[str]) -> None:
        """Sets the user JWT, pushed to every joined channel; ``None`` falls back to the API key."""
        self._ffi.set_auth(token)

    @property
    def connection_state(self) -> str:
        """``DISCONNECTED``, ``CONNECTING``, ``CONNECTED`` or ``SHUT_DOWN``."""
        return self._ffi.connection_state().name

    def metrics(self) -> Dict[str, Any]:
        """Counters: connects, reconnects, messages in/out, heartbeat RTT (last, p50, p99, ms),
        time disconnected (ms), queue depth, dropped and lagged events, join latency per topic."""
        m = self._ffi.metrics()
        return {
            "connects": m.connects,
            "reconnects": m.reconnects,
            "messages_in": m.messages_in,
            "messages_out": m.messages_out,
            "heartbeat_rtt_ms": m.heartbeat_rtt_ms,
            "heartbeat_rtt_p50_ms": m.heartbeat_rtt_p50_ms,
            "heartbeat_rtt_p99_ms": m.heartbeat_rtt_p99_ms,
            "time_disconnected_ms": m.time_disconnected_ms,
            "queue_depth": m.queue_depth,
            "dropped_events": m.dropped_events,
            "lagged_events": m.lagged_events,
            "join_latency_ms": {j.topic: j.latency_ms for j in m.join_latency},
        }

    def app_foregrounded(self) -> None:
        """The app came back to the foreground: checks the link at once."""
        self._ffi.app_foregrounded()

    def app_backgrounded(self) -> None:
        self._ffi.app_backgrounded()

    def network_changed(self) -> None:
        """The network changed: checks the link at once (reconnects if it is gone)."""
        self._ffi.network_changed()

    # channels and listeners

    def channel(
        self,
        name: str,
        *,
        broadcast_self: bool = False,
        broadcast_ack: bool = False,
        presence_key: str = "",
        presence_enabled: bool = False,
        private: bool = False,
        wait_for_postgres_ready: bool = True,
        postgres_ready_timeout: float = 20.0,
    ) -> "Channel":
        """The channel for topic ``realtime:<name>`` (an existing live one is returned as is)."""
        options = _ffi.ChannelOptions(
            broadcast_self=broadcast_self,
            broadcast_ack=broadcast_ack,
            presence_key=presence_key,
            presence_enabled=presence_enabled,
            private=private,
            wait_for_postgres_ready=wait_for_postgres_ready,
            postgres_ready_timeout_ms=int(postgres_ready_timeout * 1000),
        )
        return Channel(self, self._ffi.channel(name, options))

    def on_event(self, callback: Callable[[Event], Any]) -> int:
        """Calls ``callback`` with every event of this client; returns the listener id."""
        return self._ffi.on_event(_EventListener(callback))

    def remove_listener(self, listener_id: int) -> None:
        self._ffi.remove_listener(listener_id)

    def events(self) -> EventStream:
        """Every event of this client as an async iterator (call it inside a running loop)."""
        return EventStream(
            self._ffi,
            self._ffi.on_event,
            lambda e: isinstance(e, ConnectionStatus) and e.state == "SHUT_DOWN",
        )

    # app-pumped mode

    def set_wakeup(self, callback: Callable[[], Any]) -> None:
        """``app_pumped=True``: ``callback`` (any thread) says events wait for :meth:`dispatch`."""
        self._ffi.set_wakeup(_Wakeup(callback))

    def dispatch(self, max_events: int = 1000) -> int:
        """``app_pumped=True``: runs up to ``max_events`` queued callbacks on this thread."""
        return self._ffi.dispatch(max_events)


class Channel:
    """One channel: broadcast, presence and postgres changes on topic ``realtime:<name>``.

    Register presence and postgres listeners before :meth:`subscribe`. A channel is single-use:
    after it closes, ask the client for a new one.
    """

    def __init__(self, client: Client, ffi: "_ffi.RealtimeChannel"):
        self.client = client  # keeps the client alive as long as the channel is used
        self._ffi = ffi

    @property
    def topic(self) -> str:
        return self._ffi.topic()

    @property
    def state(self) -> str:
        """``CLOSED``, ``JOINING``, ``JOINED``, ``LEAVING`` or ``ERRORED``."""
        return self._ffi.state().name

    # listeners (callbacks run on the dispatch thread)

    def on_broadcast(self, event: str, callback: Callable[[Broadcast], Any]) -> int:
        """Broadcasts named ``event`` (case-insensitive), or all with ``"*"``."""
        return self._ffi.on_broadcast(event, _BroadcastListener(callback))

    def on_presence(self, callback: Callable[[PresenceEvent], Any]) -> int:
        """Presence sync/join/leave; turns presence on for this channel."""
        return self._ffi.on_presence(_PresenceListener(callback))

    def on_postgres_changes(
        self,
        callback: Callable[[PostgresChange], Any],
        *,
        event: str = "*",
        schema: str = "public",
        table: Optional[str] = None,
        filter: Optional[str] = None,
        select: Optional[List[str]] = None,
    ) -> int:
        """Database changes matching the binding (``event``: ``*``, ``INSERT``, ``UPDATE``,
        ``DELETE``; ``filter`` e.g. ``"room_id=eq.1"``). Must come before :meth:`subscribe`."""
        binding = _ffi.PostgresChangesFilter(
            event=event, schema=schema, table=table, filter=filter, select=select
        )
        return self._ffi.on_postgres_changes(binding, _ChangeListener(callback))

    def on_system(self, callback: Callable[[Dict[str, Json]], Any]) -> int:
        return self._ffi.on_system(_SystemListener(callback))

    def on_status(self, callback: Callable[[ChannelStatus], Any]) -> int:
        """Subscribe statuses (``SUBSCRIBED``, ``TIMED_OUT``, ``CLOSED``, ``CHANNEL_ERROR``)."""

        def only_status(event: Event) -> None:
            if isinstance(event, ChannelStatus):
                callback(event)

        return self.on_event(only_status)

    def on_event(self, callback: Callable[[Event], Any]) -> int:
        """Every event of this channel."""
        return self._ffi.on_event(_EventListener(callback))

    def remove_listener(self, listener_id: int) -> None:
        self._ffi.remove_listener(listener_id)

    def events(self) -> EventStream:
        """This channel's events as an async iterator; it ends after the final ``CLOSED``."""
        topic = self.topic
        return EventStream(
            self.client._ffi,
            self._ffi.on_event,
            lambda e: isinstance(e, ChannelStatus) and e.topic == topic and e.status == "CLOSED",
        )

    # operations

    async def subscribe(self, timeout: Optional[float] = None) -> None:
        """Joins and returns on ``SUBSCRIBED``; raises ``RealtimeError.ChannelError`` with the
        server's reason on a terminal refusal, ``RealtimeError.Timeout`` on ``TIMED_OUT``."""
        await asyncio.wait_for(self._ffi.subscribe(), timeout)

    def subscribe_nowait(self) -> None:
        """Starts joining; watch :meth:`on_status`. Usable inside callbacks."""
        self._ffi.subscribe_nowait()

    async def send(self, event: str, payload: Payload) -> None:
        """Broadcasts ``payload`` (JSON-serializable, or bytes); with ``broadcast_ack`` it
        returns once the server acknowledged."""
        await self._ffi.send_broadcast(event, payload_to_ffi(payload))

    def send_nowait(self, event: str, payload: Payload) -> None:
        """Queues a broadcast without waiting. Usable inside callbacks."""
        self._ffi.send_broadcast_nowait(event, payload_to_ffi(payload))

    async def http_send(self, event: str, payload: Payload) -> None:
        """Broadcasts over REST (no join needed)."""
        await self._ffi.http_send(event, payload_to_ffi(payload))

    async def track(self, meta: Dict[str, Json]) -> None:
        """Tracks this client's presence with ``meta``."""
        await self._ffi.track(json.dumps(meta))

    async def untrack(self) -> None:
        await self._ffi.untrack()

    def presence_state(self) -> Dict[str, List[Dict[str, Json]]]:
        """key → metas (each with ``presence_ref``), as realtime-js' ``presenceState()``."""
        return json.loads(self._ffi.presence_state_json())

    async def unsubscribe(self) -> None:
        """Leaves; returns once the server confirmed."""
        await self._ffi.unsubscribe()

    def unsubscribe_nowait(self) -> None:
        """Leaves without waiting. Usable inside callbacks."""
        self._ffi.unsubscribe_nowait()
