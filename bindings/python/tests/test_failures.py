"""Failures say why (issue 11, Python side): typed errors with messages, subscribe() bounded
by the join timeout, streams that end, and calls after shutdown that fail clearly."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from supa_realtime import ClientError, RealtimeClient, RealtimeError
from supa_realtime._native import supa_realtime as rt
from supa_realtime._native.supa_realtime import IoCause

from conftest import DEADLINE, run, unique, until

JOIN_TIMEOUT = 1.5  # push_timeout of these clients: subscribe() gives up after it


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def failed_subscribe(url: str, key: str) -> Exception:
    """subscribe() with no timeout of its own: it must fail by itself, within the join timeout."""
    with RealtimeClient(url, key, push_timeout=JOIN_TIMEOUT, reconnect_delays=[0.2]) as c:
        ch = c.channel(unique("room"))
        started = time.monotonic()
        with pytest.raises(RealtimeError) as err:
            await asyncio.wait_for(ch.subscribe(), DEADLINE)  # (the test's own bound)
        assert time.monotonic() - started < JOIN_TIMEOUT + 2
        return err.value


def test_wrong_key_fails_with_the_servers_reason(server):
    async def main():
        e = await failed_subscribe(server.url, "not-a-jwt")
        # A refusal that cannot clear by itself fails at once, as the server's HTTP error,
        # not after the join timeout.
        assert isinstance(e, RealtimeError.Http), repr(e)
        text = str(e)
        assert "realtime:room" in text, text
        assert "HTTP 401" in text and "not a valid JWT" in text, text

    run(main())


def test_server_not_listening_fails_with_connection_refused(server):
    async def main():
        e = await failed_subscribe(f"http://127.0.0.1:{free_port()}/realtime/v1", server.anon_key)
        assert isinstance(e, RealtimeError.Timeout)
        assert "refused" in str(e).lower(), str(e)

    run(main())


def test_connection_refused_carries_its_cause(server):
    """The generated layer's Io error says which transport failure it was (what the Kotlin and
    Swift layers turn into their typed errors)."""
    url = f"http://127.0.0.1:{free_port()}/realtime/v1"
    options = rt.ClientOptions(url=url, api_key=server.anon_key, push_timeout_ms=1000,
                               reconnect_delays_ms=[100])
    c = rt.RealtimeClient(options, None)
    try:
        ch = c.channel(unique("room"), rt.ChannelOptions())

        async def main():
            with pytest.raises(RealtimeError.Io) as err:
                await asyncio.wait_for(ch.subscribe(), DEADLINE)
            return err.value

        e = run(main())
        assert e.kind == IoCause.CONNECTION_REFUSED, repr(e)
        assert "refused" in e.reason.lower() and "is the server running?" in e.reason, e.reason
    finally:
        c.shutdown()


def test_wrong_path_fails_with_http_404(server):
    async def main():
        e = await failed_subscribe(server.http_url + "/not-realtime/v1", server.anon_key)
        assert "HTTP 404" in str(e), str(e)

    run(main())


def test_explicit_timeout_is_a_realtime_timeout_with_a_message(server):
    async def main():
        url = f"http://127.0.0.1:{free_port()}/realtime/v1"
        with RealtimeClient(url, server.anon_key) as c:
            with pytest.raises(RealtimeError.Timeout) as err:
                await c.channel(unique("room")).subscribe(timeout=0.3)
            assert "not joined within 0.3 s" in str(err.value)
            stream = c.events()
            with pytest.raises(RealtimeError.Timeout) as err:
                await stream.next(0.05)
            assert str(err.value) == "no event within 0.05 s"
            stream.close()

    run(main())


def test_every_error_variant_has_a_message():
    variants = {
        RealtimeError.InvalidArgument: ("bad url",),
        RealtimeError.NotConnected: (),
        RealtimeError.Timeout: (),
        RealtimeError.ChannelError: ("", False),
        RealtimeError.WouldDeadlock: (),
        RealtimeError.Shutdown: (),
        RealtimeError.Http: (401, ""),
        RealtimeError.Tls: ("handshake",),
        RealtimeError.Io: ("refused", IoCause.CONNECTION_REFUSED),
        RealtimeError.Callback: ("boom",),
    }
    for cls, args in variants.items():
        text = str(cls(*args))
        assert text.strip(), cls
        shown = [a for a in args if isinstance(a, (str, int)) and a not in ("", False)]
        assert all(str(a) in text for a in shown), (cls, text)


def test_calls_after_shutdown_raise_shutdown(server):
    async def main():
        c = RealtimeClient(server.url, server.anon_key)
        ch = c.channel(unique("room"))
        await ch.subscribe(timeout=DEADLINE)
        c.shutdown()
        c.shutdown()  # idempotent
        calls = {
            "connect": c.connect,
            "disconnect": c.disconnect,
            "set_auth": lambda: c.set_auth("token"),
            "channel": lambda: c.channel("other"),
            "on_event": lambda: c.on_event(print),
            "get_channels": c.get_channels,
            "events": c.events,
            "presence_state": ch.presence_state,
            "on_broadcast": lambda: ch.on_broadcast("x", print),
            "send_broadcast_nowait": lambda: ch.send_broadcast_nowait("x", {}),
            "subscribe_nowait": ch.subscribe_nowait,
        }
        for name, call in calls.items():
            with pytest.raises(RealtimeError.Shutdown) as err:
                call()
            assert "shut down" in str(err.value), (name, str(err.value))
        for coro in (ch.send_broadcast("x", {}), ch.track({"a": 1}), ch.unsubscribe(),
                     ch.subscribe(), c.connected(), c.remove_all_channels()):
            with pytest.raises(RealtimeError.Shutdown) as err:
                await coro
            assert "shut down" in str(err.value)
        assert c.connection_state == "SHUT_DOWN"  # still readable

    run(main())


def test_channel_stream_ends_on_shutdown_after_what_was_queued(server):
    async def main():
        c = RealtimeClient(server.url, server.anon_key)
        ch = c.channel(unique("room"), broadcast_self=True)
        events = ch.events()
        await ch.subscribe(timeout=DEADLINE)
        await ch.send_broadcast("hello", {"n": 1})

        async def collect():
            return [e async for e in events]

        task = asyncio.ensure_future(collect())
        # The broadcast came back before shutting down, so the stream must still yield it.
        seen = []
        ch.on_broadcast("hello", seen.append)
        await ch.send_broadcast("hello", {"n": 2})
        # (The echo of the first may arrive after on_broadcast was registered: wait for n=2.)
        await until(lambda: any(m.get("payload") == {"n": 2} for m in seen), "the second broadcast")
        c.shutdown()
        got = await asyncio.wait_for(task, DEADLINE)
        payloads = [e.payload for e in got if type(e).__name__ == "Broadcast"]
        assert {"n": 2} in payloads, got

    run(main())


class _Listener(rt.EventListener, rt.EventBatchListener, rt.BroadcastListener,
                rt.PresenceListener, rt.PostgresChangeListener, rt.SystemListener,
                rt.WakeupListener):
    """Any of the generated listener interfaces: every callback records that it was called."""

    def __init__(self):
        self.calls = 0

    def _called(self, *args):
        self.calls += 1

    on_event = on_events = on_broadcast = on_presence = on_change = on_system = wake = _called


def test_generated_calls_after_shutdown_raise_shutdown(server):
    """The generated layer itself (not only the Python layer) refuses every call that acts
    after shutdown, listeners included; reading the state and dispatching still work."""
    c = rt.RealtimeClient(rt.ClientOptions(url=server.url, api_key=server.anon_key), None)
    ch = c.channel(unique("raw"), rt.ChannelOptions())
    c.shutdown()
    c.shutdown()  # idempotent
    listener = _Listener()
    pg = rt.PostgresChangesFilter(event="*", schema="public", table=None, filter=None, select=None)
    calls = {
        "connect": c.connect,
        "disconnect": c.disconnect,
        "set_auth": lambda: c.set_auth("token"),
        "set_auth(None)": lambda: c.set_auth(None),
        "channel": lambda: c.channel("other", rt.ChannelOptions()),
        "channels": c.channels,
        "on_event": lambda: c.on_event(listener),
        "on_events": lambda: c.on_events(listener),
        "set_wakeup": lambda: c.set_wakeup(listener),
        "network_changed": c.network_changed,
        "app_backgrounded": c.app_backgrounded,
        "app_foregrounded": c.app_foregrounded,
        "channel.on_event": lambda: ch.on_event(listener),
        "channel.on_events": lambda: ch.on_events(listener),
        "channel.on_broadcast": lambda: ch.on_broadcast("x", listener),
        "channel.on_presence": lambda: ch.on_presence(listener),
        "channel.on_system": lambda: ch.on_system(listener),
        "channel.on_postgres_changes": lambda: ch.on_postgres_changes(pg, listener),
        "channel.add_postgres_changes": lambda: ch.add_postgres_changes(pg),
        "channel.enable_presence": ch.enable_presence,
        "channel.presence_state_json": ch.presence_state_json,
        "channel.subscribe_nowait": ch.subscribe_nowait,
        "channel.unsubscribe_nowait": ch.unsubscribe_nowait,
        "channel.send_broadcast_nowait": lambda: ch.send_broadcast_nowait("x", rt.Payload.JSON("{}")),
    }
    for name, call in calls.items():
        with pytest.raises(RealtimeError.Shutdown):
            call()
            pytest.fail(f"{name} succeeded after shutdown")

    async def main():
        payload = rt.Payload.JSON("{}")
        for coro in (c.connected(), c.remove_all_channels(), c.remove_channel(ch),
                     ch.subscribe(), ch.unsubscribe(), ch.send_broadcast("x", payload),
                     ch.http_send("x", payload), ch.track("{}"), ch.untrack()):
            with pytest.raises(RealtimeError.Shutdown):
                await asyncio.wait_for(coro, DEADLINE)

    run(main())
    assert listener.calls == 0
    # Still readable and harmless.
    c.remove_listener(1)
    c.metrics()
    ch.topic()


def test_bound_options_are_validated():
    for name, value, text in [
        ("max_payload_size", 100, "max_payload_size must be at least 1024 (got 100)"),
        ("max_message_size", 0, "max_message_size must be at least 1024 (got 0)"),
        ("max_presence_keys", 0, "max_presence_keys must be at least 1 (got 0)"),
        ("max_presence_size", -1, "max_presence_size must not be negative (got -1)"),
    ]:
        with pytest.raises(RealtimeError.InvalidArgument) as err:
            RealtimeClient("http://127.0.0.1:1/realtime/v1", "k", **{name: value})
        assert text in str(err.value), str(err.value)
    RealtimeClient("http://127.0.0.1:1/realtime/v1", "k", max_presence_keys=1,
                   max_payload_size=1024, max_message_size=1 << 30,
                   max_presence_size=1024).shutdown()


def test_a_broadcast_over_max_payload_size_is_skipped_and_the_connection_stays(server):
    async def main():
        name = unique("bound")
        with RealtimeClient(server.url, server.anon_key, max_payload_size=2048) as small, \
                RealtimeClient(server.url, server.anon_key) as sender:
            rx = small.channel(name)
            tx = sender.channel(name)
            async with small.events() as events:
                await rx.subscribe(timeout=DEADLINE)
                await tx.subscribe(timeout=DEADLINE)
                await tx.send_broadcast("big", {"blob": "x" * 4096})
                await tx.send_broadcast("small", {"n": 1})
                errors, broadcasts = [], []
                while not broadcasts:
                    e = await events.next(DEADLINE)
                    if isinstance(e, ClientError):
                        errors.append(e.message)
                    elif type(e).__name__ == "Broadcast":
                        broadcasts.append(e)
            assert [(b.event, b.payload) for b in broadcasts] == [("small", {"n": 1})]
            assert len(errors) == 1 and "over max_payload_size (2048)" in errors[0], errors
            assert small.metrics()["connects"] == 1  # the connection stayed up

    run(main())
