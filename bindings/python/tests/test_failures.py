"""Failures say why (issue 11, Python side): typed errors with messages, subscribe() bounded
by the join timeout, streams that end, and calls after shutdown that fail clearly."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from supa_realtime import RealtimeClient, RealtimeError

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
        RealtimeError.Io: ("refused",),
        RealtimeError.Callback: ("boom",),
    }
    for cls, args in variants.items():
        text = str(cls(*args))
        assert text.strip(), cls
        assert all(str(a) in text for a in args if a not in ("", False)), (cls, text)


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
