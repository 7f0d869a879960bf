"""The Pythonic client: :class:`RealtimeClient`, :class:`RealtimeChannel`, :class:`EventStream`.

Names, argument order and callback arguments follow the official ``realtime`` package, so code
written for supabase-py's realtime client ports by changing imports (see docs/bindings.md).

Callbacks run on the client's dispatch thread (``supa-dispatch``), one at a time and in order,
never on the library's network thread. They may call any method, including the ``*_nowait``
ones (``send_broadcast_nowait``, ``subscribe_nowait``, ``unsubscribe_nowait``); an exception
raised by a callback is logged on the ``supa_realtime`` logger and does not stop delivery.
Events cross from the library in batches (one call and one ``json.loads`` per batch), so a
channel's callbacks cost little more than the Python they run.

For asyncio code, ``await`` the coroutine methods and iterate events with
``async for event in channel.events()``. A synchronous program uses callbacks and the
``*_nowait`` methods, and can run any coroutine method with ``asyncio.run(...)``.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import json
import logging
import threading
import weakref
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Generator,
    Iterable,
    List,
    Optional,
    Union,
)

from ._native import supa_realtime as _ffi
from .events import (
    ChannelStatus,
    ConnectionStatus,
    Event,
    decode_batch,
    event_from_dict,
    payload_to_ffi,
)
from .errors import RealtimeError, shutdown, with_message
from .errors import timeout as timeout_error
from .types import (
    BroadcastPayload,
    Json,
    PostgresChangesEvent,
    PostgresChangesPayload,
    Presence,
    RealtimeChannelOptions,
    RealtimePresenceState,
    RealtimeSubscribeStates,
)

log = logging.getLogger("supa_realtime")

# A library thread entering Python while the interpreter finalizes is killed mid-call, which
# aborts the process: stop (and drain) all calls into Python before finalization starts.
atexit.register(_ffi.stop_callbacks, 2000)

Payload = Union[Json, bytes]
Persist = Union[bool, int, None]
"""``True`` (stored for the server's retention), a TTL in seconds, or ``None``/``False``."""


def _persist_ttl(persist: Persist) -> Optional[int]:
    """The TTL the library takes (0: the server's retention), or ``None`` for not stored."""
    if persist is None or persist is False:
        return None
    if persist is True:
        return 0
    if isinstance(persist, int) and persist > 0:
        return persist
    raise ValueError(f"persist must be True or a positive number of seconds, not {persist!r}")
SubscribeCallback = Callable[[RealtimeSubscribeStates, Optional[Exception]], Any]

DEFAULT_JOIN_TIMEOUT = 10.0
"""Seconds ``subscribe()`` waits by default (``push_timeout`` when given), as realtime-js."""

DEFAULT_QUEUE_CAPACITY = 100_000
"""The events the library may queue for this client's callbacks before it drops data events
(reported by a ``Lagged`` event and ``metrics()["dropped_events"]``). Python callbacks are the
slowest consumer of the library's queue, and the official ``realtime`` client loses nothing
in a burst (it stops reading the socket instead), so the binding holds ten times the core's
default: a 20,000-message burst into a callback slower than the network fits several times
over. A queued broadcast takes about 0.5 KB, so a full queue is some 50 MB."""


def _ms(seconds: Optional[float]) -> Optional[int]:
    return None if seconds is None else int(seconds * 1000)


def _ms_list(seconds: Optional[Iterable[float]]) -> Optional[List[int]]:
    return None if seconds is None else [int(s * 1000) for s in seconds]


def _bound(name: str, value: Optional[int]) -> Optional[int]:
    """A bound option as the library takes it; the library checks its minimum."""
    if value is not None and value < 0:
        raise with_message(
            RealtimeError.InvalidArgument(f"{name} must not be negative"),
            f"invalid argument: {name} must not be negative (got {value})",
        )
    return value


class _Done:
    """The result of a method that acts at once but, in realtime, is a coroutine: calling it
    is enough, and ``await`` on it (as code ported from realtime does) is harmless."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover  (makes this a generator)


class _Lazy:
    """An awaitable that runs ``factory()`` only when awaited (no "never awaited" warning
    when the caller does not wait)."""

    def __init__(self, factory: Callable[[], Awaitable[None]]):
        self._factory = factory

    def __await__(self) -> Generator[Any, None, None]:
        return self._factory().__await__()


class _Batches(_ffi.EventBatchListener):
    """Receives the library's batches for ``target._on_batch``. Channels and streams are held
    weakly, so the library never keeps them (and through them the client) alive."""

    def __init__(self, target: Any, weak: bool = True):
        self._target: Callable[[], Any] = weakref.ref(target) if weak else lambda: target

    def on_events(self, events_json: str, binaries: List[bytes]) -> None:
        target = self._target()
        if target is not None:
            target._on_batch(decode_batch(events_json, binaries))


def _call(callback: Callable[..., Any], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:  # a user callback must not break delivery
        log.exception("supa_realtime callback %r raised", callback)


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
    """An async iterator of typed events, fed from the dispatch thread into the running loop
    (one hand-over per batch).

    Use it as ``async with channel.events() as events: async for e in events: ...``; leaving
    the block (or :meth:`close`) unregisters it. A channel's stream ends after the channel's
    final ``CLOSED`` status; a client's stream ends when the client shuts down.
    """

    def __init__(self, register: Callable[[Any], int], unregister: Callable[[int], None],
                 is_last: Callable[[Event], bool]):
        self._loop = asyncio.get_running_loop()
        self._items: Deque[Any] = collections.deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self._is_last = is_last
        self._unregister_fn = unregister
        self._done = False
        self._id: Optional[int] = None
        self._id = register(_Batches(self))

    def _on_batch(self, batch: List[Dict[str, Any]]) -> None:
        # On the dispatch thread: decode here, hand the whole batch to the loop's thread.
        events: List[Any] = []
        for d in batch:
            event = event_from_dict(d)
            events.append(event)
            if self._is_last(event):
                events.append(_END)
                break
        try:
            self._loop.call_soon_threadsafe(self._put, events)
        except RuntimeError:  # the loop was closed
            pass

    def _put(self, events: List[Any]) -> None:
        self._items.extend(events)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Event:
        while not self._items:
            if self._done:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            await self._waiter
        item = self._items.popleft()
        if item is _END:
            self._done = True
            self._items.clear()
            self._unregister()
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    async def next(self, timeout: Optional[float] = None) -> Event:
        """The next event, waiting at most ``timeout`` seconds (then ``RealtimeError.Timeout``,
        which is also an ``asyncio.TimeoutError``)."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except asyncio.TimeoutError:
            raise timeout_error(f"no event within {timeout:g} s") from None

    def _unregister(self) -> None:
        if self._id is not None:
            self._unregister_fn(self._id)
        self._id = None

    def close(self) -> None:
        """Stops the stream; iteration ends once the events already received are consumed."""
        self._unregister()
        if not self._done:
            self._put([_END])

    def _end(self) -> None:
        """From any thread (client shutdown): ends the stream after what was handed over."""
        try:
            self._loop.call_soon_threadsafe(self._put, [_END])
        except RuntimeError:  # the loop was closed
            pass

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class RealtimeClient:
    """A Supabase Realtime client: one WebSocket, many channels (realtime's
    ``AsyncRealtimeClient``).

    Creating it does not connect; :meth:`connect`, or subscribing a channel, does. Call
    :meth:`shutdown` (or use ``with``/``async with``) when done. Durations are in seconds.

    >>> client = RealtimeClient("http://127.0.0.1:4000/realtime/v1", "anon-key")  # doctest: +SKIP
    >>> room = client.channel("room1", {"config": {"broadcast": {"self": True}}})  # doctest: +SKIP
    >>> room.on_broadcast("hello", lambda m: print(m["payload"]))  # doctest: +SKIP
    >>> await room.subscribe()  # doctest: +SKIP
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
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        token_provider: Optional[Callable[[], Optional[str]]] = None,
        token_refresh_margin: Optional[float] = None,
        auth_retries: Optional[int] = None,
        max_message_size: Optional[int] = None,
        max_payload_size: Optional[int] = None,
        max_presence_keys: Optional[int] = None,
        max_presence_size: Optional[int] = None,
    ):
        if vsn not in ("1.0.0", "2.0.0"):
            raise ValueError("vsn must be '1.0.0' or '2.0.0'")
        if queue_capacity < 1:
            raise ValueError("queue_capacity must be at least 1")
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
            max_message_size=_bound("max_message_size", max_message_size),
            max_payload_size=_bound("max_payload_size", max_payload_size),
            max_presence_keys=_bound("max_presence_keys", max_presence_keys),
            max_presence_size=_bound("max_presence_size", max_presence_size),
        )
        provider = _TokenProvider(token_provider) if token_provider is not None else None
        self._ffi = _ffi.RealtimeClient(options, provider)
        self._channels: Dict[str, RealtimeChannel] = {}
        self._join_timeout = DEFAULT_JOIN_TIMEOUT if push_timeout is None else push_timeout
        self._closed = False
        self._streams: "weakref.WeakSet[EventStream]" = weakref.WeakSet()
        # One connection watch while any subscribe() waits (see _watch_connection).
        self._watch_lock = threading.Lock()
        self._watch: Optional[_ConnectionWatch] = None
        self._watch_id = 0
        self._watchers = 0

    def _check(self, what: str) -> None:
        if self._closed:
            raise shutdown(what)

    # lifecycle

    def connect(self) -> Awaitable[None]:
        """Starts connecting (and keeps reconnecting until :meth:`disconnect`); ``await`` it
        to wait until the socket is open."""
        self._check("connect()")
        self._ffi.connect()
        return _Lazy(self._ffi.connected)

    async def connected(self) -> None:
        """Connects if needed and returns once the socket is open."""
        self._check("connected()")
        await self._ffi.connected()

    def disconnect(self) -> None:
        """Closes the socket; channels rejoin on the next :meth:`connect`."""
        self._check("disconnect()")
        self._ffi.disconnect()

    def shutdown(self) -> None:
        """Closes everything for good; later calls raise ``RealtimeError.Shutdown`` and every
        ``events()`` stream ends (after the events it already received). Idempotent."""
        if self._closed:
            return
        self._closed = True
        streams = [s for s in self._streams if not s._done]
        if streams:
            # Ended by the final SHUT_DOWN event: the dispatcher delivers it after every event
            # queued before, so each stream still gets those first.
            self._ffi.on_events(_Batches(_EndOnShutdown(streams), weak=False))
        self._ffi.shutdown()

    def __enter__(self) -> "RealtimeClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    async def __aenter__(self) -> "RealtimeClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.shutdown()

    def set_auth(self, token: Optional[str]) -> Awaitable[None]:
        """Sets the user JWT, pushed to every joined channel; ``None`` falls back to the API
        key. Takes effect at once (awaiting the result, as with realtime, is harmless)."""
        self._check("set_auth()")
        self._ffi.set_auth(token)
        return _Done()

    @property
    def connection_state(self) -> str:
        """``DISCONNECTED``, ``CONNECTING``, ``CONNECTED`` or ``SHUT_DOWN`` (at once after
        :meth:`shutdown`, while the library closes the socket)."""
        if self._closed:
            return "SHUT_DOWN"
        return self._ffi.connection_state().name  # type: ignore[no-any-return]

    @property
    def is_connected(self) -> bool:
        return self.connection_state == "CONNECTED"

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
        self._check("app_foregrounded()")
        self._ffi.app_foregrounded()

    def app_backgrounded(self) -> None:
        self._check("app_backgrounded()")
        self._ffi.app_backgrounded()

    def network_changed(self) -> None:
        """The network changed: checks the link at once (reconnects if it is gone)."""
        self._check("network_changed()")
        self._ffi.network_changed()

    # channels

    def channel(
        self,
        topic: str,
        params: Optional[RealtimeChannelOptions] = None,
        *,
        broadcast_self: Optional[bool] = None,
        broadcast_ack: Optional[bool] = None,
        presence_key: Optional[str] = None,
        presence_enabled: Optional[bool] = None,
        private: Optional[bool] = None,
        wait_for_postgres_ready: bool = True,
        postgres_ready_timeout: float = 20.0,
        replay: Optional[Dict[str, int]] = None,
        replication_ready: Optional[bool] = None,
        auto_replay: bool = False,
    ) -> "RealtimeChannel":
        """The channel for ``realtime:<topic>``. While a channel of that topic is live it is
        returned as is (its options unchanged), as in realtime.

        ``params`` takes realtime's ``{"config": {"broadcast": {"self", "ack", "replay",
        "replication_ready"}, "presence": {"key", "enabled"}, "private"}}``; the keyword
        arguments say the same and win over it. ``replay`` (``{"since": unix_ms, "limit": n}``,
        private channels only) replays stored broadcasts on join; ``auto_replay`` (private
        channels only) replays what was stored during an outage after a rejoin (gap fill).
        """
        self._check(f"channel({topic!r})")
        existing = self._channels.get("realtime:" + topic)
        if existing is not None and not existing._finished:
            return existing
        config = (params or {}).get("config") or {}
        unknown = set(config) - {"broadcast", "presence", "private"}
        broadcast = config.get("broadcast") or {}
        presence = config.get("presence") or {}
        known_broadcast = {"self", "ack", "replay", "replication_ready"}
        unknown |= {f"broadcast.{k}" for k in set(broadcast) - known_broadcast}
        unknown |= {f"presence.{k}" for k in set(presence) - {"key", "enabled"}}
        if unknown:
            raise ValueError(f"unsupported channel config: {', '.join(sorted(unknown))}")

        def pick(value: Any, fallback: Any) -> Any:
            return fallback if value is None else value

        options = _ffi.ChannelOptions(
            broadcast_self=bool(pick(broadcast_self, broadcast.get("self", False))),
            broadcast_ack=bool(pick(broadcast_ack, broadcast.get("ack", False))),
            presence_key=str(pick(presence_key, presence.get("key", ""))),
            presence_enabled=bool(pick(presence_enabled, presence.get("enabled", False))),
            private=bool(pick(private, config.get("private", False))),
            wait_for_postgres_ready=wait_for_postgres_ready,
            postgres_ready_timeout_ms=int(postgres_ready_timeout * 1000),
            replay_since_ms=None,
            replay_limit=None,
            replication_ready=bool(
                pick(replication_ready, broadcast.get("replication_ready", False))
            ),
            auto_replay=auto_replay,
        )
        replay = pick(replay, broadcast.get("replay"))
        if replay is not None:
            if not isinstance(replay.get("since"), int):
                raise ValueError("replay needs 'since': Unix time in milliseconds (an int)")
            options.replay_since_ms = replay["since"]
            options.replay_limit = replay.get("limit")
        channel = RealtimeChannel(self, self._ffi.channel(topic, options))
        self._channels[channel.topic] = channel
        return channel

    def get_channels(self) -> List["RealtimeChannel"]:
        """The channels of this client that are not removed or closed for good."""
        self._check("get_channels()")
        live = [c for c in self._channels.values() if not c._finished]
        if len(live) != len(self._channels):
            self._channels = {c.topic: c for c in live}
        return live

    async def remove_channel(self, channel: "RealtimeChannel") -> None:
        """Unsubscribes ``channel`` and forgets it; when no channel is left, disconnects (as
        realtime does)."""
        self._check("remove_channel()")
        if self._channels.get(channel.topic) is channel:
            del self._channels[channel.topic]
        if channel._subscribed and not channel._finished:
            await channel.unsubscribe()
        if not self.get_channels():
            self.disconnect()

    async def remove_all_channels(self) -> None:
        """Unsubscribes every channel, forgets them and disconnects. Raises the first failure
        after all were tried."""
        self._check("remove_all_channels()")
        channels = list(self._channels.values())
        self._channels.clear()
        results = await asyncio.gather(
            *(c.unsubscribe() for c in channels if c._subscribed and not c._finished),
            return_exceptions=True,
        )
        self.disconnect()
        for r in results:
            if isinstance(r, BaseException):
                raise r

    # every event, for code that does not route by channel

    def on_event(self, callback: Callable[[Event], Any]) -> int:
        """Calls ``callback`` with every event of this client (typed, see
        :mod:`supa_realtime.events`); returns an id for :meth:`remove_listener`."""
        self._check("on_event()")
        listener = _Batches(_EventCallback(callback), weak=False)
        return self._ffi.on_events(listener)  # type: ignore[no-any-return]

    def remove_listener(self, listener_id: int) -> None:
        self._check("remove_listener()")
        self._ffi.remove_listener(listener_id)

    def events(self) -> EventStream:
        """Every event of this client as an async iterator (call it inside a running loop);
        it ends when the client shuts down."""
        self._check("events()")
        return self._stream(
            EventStream(
                self._ffi.on_events,
                self._remove_listener_weakly(),
                lambda e: isinstance(e, ConnectionStatus) and e.state == "SHUT_DOWN",
            )
        )

    def _watch_connection(self) -> "_ConnectionWatch":
        """While a join is awaited, the client's connection events say why it cannot happen:
        one client listener for all waiting joins, registered only while any waits."""
        with self._watch_lock:
            if self._watch is None:
                self._watch = _ConnectionWatch()
                self._watch_id = self._ffi.on_events(_Batches(self._watch, weak=False))
            self._watchers += 1
            return self._watch

    def _unwatch_connection(self) -> None:
        with self._watch_lock:
            self._watchers -= 1
            if self._watchers == 0 and self._watch is not None:
                self._watch = None
                if not self._closed:
                    self._ffi.remove_listener(self._watch_id)

    def _stream(self, stream: EventStream) -> EventStream:
        self._streams.add(stream)
        return stream

    def _remove_listener_weakly(self) -> Callable[[int], None]:
        ref = weakref.ref(self._ffi)

        def remove(listener_id: int) -> None:
            ffi = ref()
            if ffi is not None:
                ffi.remove_listener(listener_id)

        return remove

    # app-pumped mode

    def set_wakeup(self, callback: Callable[[], Any]) -> None:
        """``app_pumped=True``: ``callback`` (any thread) says events wait for :meth:`dispatch`."""
        self._check("set_wakeup()")
        self._ffi.set_wakeup(_Wakeup(callback))

    def dispatch(self, max_events: int = 1000) -> int:
        """``app_pumped=True``: runs up to ``max_events`` queued callbacks on this thread."""
        self._check("dispatch()")
        return self._ffi.dispatch(max_events)  # type: ignore[no-any-return]


class _EndOnShutdown:
    def __init__(self, streams: List[EventStream]):
        self._streams = streams

    def _on_batch(self, batch: List[Dict[str, Any]]) -> None:
        if any(d["type"] == "connection" and d["state"] == "SHUT_DOWN" for d in batch):
            for stream in self._streams:
                stream._end()
            self._streams = []


class _EventCallback:
    """Typed events for a client's ``on_event`` callback (held by the library until removed)."""

    def __init__(self, callback: Callable[[Event], Any]):
        self._callback = callback

    def _on_batch(self, batch: List[Dict[str, Any]]) -> None:
        for d in batch:
            _call(self._callback, event_from_dict(d))


class _ConnectionWatch:
    """Remembers why the connection last failed (a client listener while ``subscribe``
    waits): a connect failure arrives as an ``error`` event, a lost socket as the reason of
    a ``connection`` event."""

    def __init__(self) -> None:
        self.reason: Optional[str] = None

    def _on_batch(self, batch: List[Dict[str, Any]]) -> None:
        for d in batch:
            kind = d["type"]
            if kind == "error":
                self.reason = d["message"]
            elif kind == "connection" and d["reason"]:
                self.reason = d["reason"]

    def describe(self, state: str) -> str:
        if state == "CONNECTED":
            return "the socket is open but the server did not answer the join"
        if self.reason:
            return f"connection {state}, last failure: {self.reason}"
        return f"connection {state}: no reply from the server"


class RealtimeChannel:
    """One channel on topic ``realtime:<name>`` (realtime's ``AsyncRealtimeChannel``).

    Register listeners before :meth:`subscribe` (postgres changes and presence are part of
    the join). The ``on_*`` methods return the channel, for chaining. A channel is single-use:
    after it closes, ask the client for a new one.
    """

    def __init__(self, client: RealtimeClient, ffi: "_ffi.RealtimeChannel"):
        self.client = client  # keeps the client alive as long as the channel is used
        self._ffi = ffi
        self.topic: str = ffi.topic()
        self._broadcast: Dict[str, List[Callable[[BroadcastPayload], Any]]] = {}
        self._broadcast_all: List[Callable[[BroadcastPayload], Any]] = []
        self._bindings: List[Callable[[PostgresChangesPayload], Any]] = []
        self._presence_sync: List[Callable[[], Any]] = []
        self._presence_join: List[Callable[[str, List[Presence], List[Presence]], Any]] = []
        self._presence_leave: List[Callable[[str, List[Presence], List[Presence]], Any]] = []
        self._system: List[Callable[[Dict[str, Json]], Any]] = []
        self._status: List[SubscribeCallback] = []
        self._every: List[Callable[[Event], Any]] = []
        self._presence_on = False
        self._subscribed = False
        ffi.on_events(_Batches(self))

    @property
    def state(self) -> str:
        """``CLOSED``, ``JOINING``, ``JOINED``, ``LEAVING`` or ``ERRORED``."""
        return self._ffi.state().name  # type: ignore[no-any-return]

    @property
    def is_joined(self) -> bool:
        return self.state == "JOINED"

    def _check(self, what: str) -> None:
        self.client._check(f"{self.topic}: {what}")

    @property
    def _finished(self) -> bool:
        """Subscribed once and closed since (the client then makes a new channel)."""
        return self._subscribed and self.state == "CLOSED"

    # listeners (callbacks run on the dispatch thread, in order)

    def on_broadcast(
        self, event: str, callback: Callable[[BroadcastPayload], Any]
    ) -> "RealtimeChannel":
        """Broadcasts named ``event`` (case-insensitive), or all with ``"*"``. ``callback``
        gets realtime's dict: ``{"type": "broadcast", "event", "payload", "meta"?}`` (plus
        ``"topic"``); ``payload`` is ``bytes`` for a binary broadcast."""
        self._check("on_broadcast()")
        if event == "*":
            self._broadcast_all.append(callback)
        else:
            self._broadcast.setdefault(event.lower(), []).append(callback)
        return self

    def on_postgres_changes(
        self,
        event: PostgresChangesEvent,
        callback: Callable[[PostgresChangesPayload], Any],
        table: Optional[str] = None,
        schema: Optional[str] = None,
        filter: Optional[str] = None,
        select: Optional[List[str]] = None,
    ) -> "RealtimeChannel":
        """Database changes of type ``event`` (``"*"``, ``"INSERT"``, ``"UPDATE"``,
        ``"DELETE"``) on ``schema.table`` (``schema`` defaults to ``public``, no ``table``
        means every table), narrowed by ``filter`` (e.g. ``"room_id=eq.1"``) and ``select``
        (the columns to receive). ``callback`` gets realtime's ``{"data": {"type", "record",
        "old_record", ...}, "ids": [...]}``. Must come before :meth:`subscribe`."""
        self._check("on_postgres_changes()")
        event = getattr(event, "value", event)  # realtime's RealtimePostgresChangesListenEvent
        if event not in ("*", "INSERT", "UPDATE", "DELETE"):
            raise ValueError(f"event must be '*', 'INSERT', 'UPDATE' or 'DELETE', not {event!r}")
        binding = _ffi.PostgresChangesFilter(
            event=event, schema=schema or "public", table=table, filter=filter, select=select
        )
        self._ffi.add_postgres_changes(binding)
        self._bindings.append(callback)
        return self

    def on_presence_sync(self, callback: Callable[[], Any]) -> "RealtimeChannel":
        """Called after every presence update; read :meth:`presence_state`."""
        self._check("on_presence_sync()")
        self._enable_presence()
        self._presence_sync.append(callback)
        return self

    def on_presence_join(
        self, callback: Callable[[str, List[Presence], List[Presence]], Any]
    ) -> "RealtimeChannel":
        """``callback(key, current_presences, new_presences)``."""
        self._check("on_presence_join()")
        self._enable_presence()
        self._presence_join.append(callback)
        return self

    def on_presence_leave(
        self, callback: Callable[[str, List[Presence], List[Presence]], Any]
    ) -> "RealtimeChannel":
        """``callback(key, current_presences, left_presences)``."""
        self._check("on_presence_leave()")
        self._enable_presence()
        self._presence_leave.append(callback)
        return self

    def _enable_presence(self) -> None:
        if not self._presence_on:
            self._ffi.enable_presence()
            self._presence_on = True

    def on_system(self, callback: Callable[[Dict[str, Json]], Any]) -> "RealtimeChannel":
        """``system`` messages, e.g. ``{"message": "Subscribed to PostgreSQL", ...}``."""
        self._check("on_system()")
        self._system.append(callback)
        return self

    def on_event(self, callback: Callable[[Event], Any]) -> "RealtimeChannel":
        """Every event of this channel, typed (see :mod:`supa_realtime.events`)."""
        self._check("on_event()")
        self._every.append(callback)
        return self

    def events(self) -> EventStream:
        """This channel's events as an async iterator; it ends after the final ``CLOSED``
        or when the client shuts down."""
        self._check("events()")
        topic = self.topic
        return self.client._stream(
            EventStream(
                self._ffi.on_events,
                self.client._remove_listener_weakly(),
                lambda e: isinstance(e, ChannelStatus) and e.topic == topic and e.status == "CLOSED",
            )
        )

    def _on_batch(self, batch: List[Dict[str, Any]]) -> None:
        # On the dispatch thread. The hot path (broadcasts) stays short on purpose.
        for d in batch:
            kind = d["type"]
            if kind == "broadcast":
                callbacks = self._broadcast.get(d["event"].lower())
                if callbacks:
                    for cb in callbacks:
                        try:
                            cb(d)
                        except Exception:
                            log.exception("supa_realtime callback %r raised", cb)
                for cb in self._broadcast_all:
                    _call(cb, d)
            elif kind == "postgres_changes":
                for i in d["ids"]:
                    if i < len(self._bindings):
                        _call(self._bindings[i], d)
            elif kind == "presence":
                self._on_presence(d)
            elif kind == "status":
                self._on_status(d)
            elif kind == "system":
                for cb in self._system:
                    _call(cb, d["payload"])
            elif kind == "lagged":
                log.warning("%s: %d events dropped, the queue was full (queue_capacity)",
                            self.topic, d["dropped"])
            if self._every:
                event = event_from_dict(d)
                for cb in self._every:
                    _call(cb, event)

    def _on_presence(self, d: Dict[str, Any]) -> None:
        what = d["event"]
        if what == "join":
            for cb in self._presence_join:
                _call(cb, d["key"], d["current_presences"], d["new_presences"])
        elif what == "leave":
            for cb in self._presence_leave:
                _call(cb, d["key"], d["current_presences"], d["left_presences"])
        else:
            for cb in self._presence_sync:
                _call(cb)

    def _on_status(self, d: Dict[str, Any]) -> None:
        status = RealtimeSubscribeStates(d["status"])
        error: Optional[Exception] = None
        if status is RealtimeSubscribeStates.CHANNEL_ERROR:
            error = RealtimeError.ChannelError(d["reason"] or "", d["error_kind"] != "TERMINAL")
        for cb in self._status:
            _call(cb, status, error)

    # operations

    async def subscribe(
        self, callback: Optional[SubscribeCallback] = None, *, timeout: Optional[float] = None
    ) -> "RealtimeChannel":
        """Joins (connecting the client if needed) and returns the channel on ``SUBSCRIBED``.

        ``callback(status, error)`` receives every status of this channel from now on
        (:class:`RealtimeSubscribeStates`; ``error`` is a ``RealtimeError.ChannelError`` with
        the server's reason for ``CHANNEL_ERROR``, else ``None``), as in realtime. Unlike
        realtime, a failed join also raises: ``RealtimeError.ChannelError`` on a terminal
        refusal, ``RealtimeError.Timeout`` on ``TIMED_OUT`` or when not joined within
        ``timeout`` seconds (default: the join timeout, ``push_timeout`` or 10 s), with what
        the connection last reported (e.g. the server's refusal of the key). That timeout is
        also a ``TimeoutError``. After it the client keeps trying underneath (``callback``
        then sees ``SUBSCRIBED``); :meth:`unsubscribe` stops it."""
        self._check("subscribe()")
        if callback is not None:
            self._status.append(callback)
        self._subscribed = True
        limit = self.client._join_timeout if timeout is None else timeout
        watch = self.client._watch_connection()
        try:
            await asyncio.wait_for(self._ffi.subscribe(), limit)
        except asyncio.TimeoutError:
            raise timeout_error(
                f"{self.topic}: subscribe() not joined within {limit:g} s; "
                f"{watch.describe(self.client.connection_state)}"
            ) from None
        except RealtimeError as e:
            raise with_message(e, f"{self.topic}: subscribe() failed: {e}") from None
        finally:
            self.client._unwatch_connection()
        return self

    def subscribe_nowait(self, callback: Optional[SubscribeCallback] = None) -> None:
        """Starts joining; ``callback`` gets the statuses. Usable inside callbacks and from
        synchronous code."""
        self._check("subscribe_nowait()")
        if callback is not None:
            self._status.append(callback)
        self._subscribed = True
        self._ffi.subscribe_nowait()

    async def send_broadcast(self, event: str, payload: Payload, persist: Persist = None) -> None:
        """Broadcasts ``payload`` (JSON-serializable, or bytes); with ``broadcast_ack`` it
        returns once the server acknowledged. ``persist`` (private channels only): ``True``
        or a TTL in seconds stores the message, so that a join with replay replays it."""
        self._check("send_broadcast()")
        ttl = _persist_ttl(persist)
        if ttl is None:
            await self._ffi.send_broadcast(event, payload_to_ffi(payload))
        else:
            await self._ffi.send_broadcast_persist(event, payload_to_ffi(payload), ttl)

    def send_broadcast_nowait(self, event: str, payload: Payload) -> None:
        """Queues a broadcast without waiting. Usable inside callbacks."""
        self._check("send_broadcast_nowait()")
        self._ffi.send_broadcast_nowait(event, payload_to_ffi(payload))

    send = send_broadcast
    """Deprecated name of :meth:`send_broadcast`."""
    send_nowait = send_broadcast_nowait
    """Deprecated name of :meth:`send_broadcast_nowait`."""

    async def http_send(self, event: str, payload: Payload, persist: Persist = None) -> None:
        """Broadcasts over REST (no join needed); ``persist`` as for :meth:`send_broadcast`."""
        self._check("http_send()")
        ttl = _persist_ttl(persist)
        if ttl is None:
            await self._ffi.http_send(event, payload_to_ffi(payload))
        else:
            await self._ffi.http_send_persist(event, payload_to_ffi(payload), ttl)

    async def replication_ready(self) -> None:
        """Returns once the server said the channel's replication is ready (channel option
        ``replication_ready``); raises with the server's message when it is not."""
        self._check("replication_ready()")
        await self._ffi.replication_ready()

    async def track(self, user_status: Dict[str, Json]) -> None:
        """Tracks this client's presence with ``user_status``."""
        self._check("track()")
        await self._ffi.track(json.dumps(user_status))

    async def untrack(self) -> None:
        """Stops tracking this client's presence."""
        self._check("untrack()")
        await self._ffi.untrack()

    def presence_state(self) -> RealtimePresenceState:
        """key -> presences (each with ``presence_ref``), as realtime's ``presence_state()``."""
        self._check("presence_state()")
        return json.loads(self._ffi.presence_state_json())  # type: ignore[no-any-return]

    async def unsubscribe(self) -> None:
        """Leaves; returns once the server confirmed."""
        self._check("unsubscribe()")
        await self._ffi.unsubscribe()

    def unsubscribe_nowait(self) -> None:
        """Leaves without waiting. Usable inside callbacks."""
        self._check("unsubscribe_nowait()")
        self._ffi.unsubscribe_nowait()

    def __repr__(self) -> str:
        return f"RealtimeChannel({self.topic!r}, {self.state})"


Client = RealtimeClient
"""Deprecated name of :class:`RealtimeClient`."""
Channel = RealtimeChannel
"""Deprecated name of :class:`RealtimeChannel`."""
