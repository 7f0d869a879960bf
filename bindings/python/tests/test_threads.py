"""Where callbacks run, and calling back into the client from a callback."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from supa_realtime import Broadcast, ChannelStatus, RealtimeClient, RealtimeError

from conftest import DEADLINE, run, unique


def native_thread_name() -> str:
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        return f.read().strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc thread names")
def test_callbacks_run_on_the_dispatch_thread(server):
    async def main():
        names = set()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        with RealtimeClient(server.url, server.anon_key) as c:
            ch = c.channel(unique("room"), broadcast_self=True)

            def on_broadcast(msg) -> None:
                names.add(native_thread_name())
                loop.call_soon_threadsafe(done.set)

            ch.on_broadcast("*", on_broadcast)
            await ch.subscribe(lambda status, err: names.add(native_thread_name()),
                               timeout=DEADLINE)
            await ch.send_broadcast("x", {})
            await asyncio.wait_for(done.wait(), DEADLINE)
        assert names == {"supa-dispatch"}, names

    run(main())


def test_reentrant_calls_from_a_callback(server):
    """A callback replies, subscribes a new channel and unsubscribes its own, all from the
    dispatch thread; a blocking-style misuse is impossible (only nowait calls exist there)."""

    async def main():
        name = unique("echo")
        with RealtimeClient(server.url, server.anon_key) as a, \
                RealtimeClient(server.url, server.anon_key) as b:
            echo = a.channel(name)
            later = {}

            def on_ping(msg) -> None:
                echo.send_broadcast_nowait("pong", {"n": msg["payload"]["n"] + 1})
                side = a.channel(name + "-side")
                side.subscribe_nowait()
                later["side"] = side
                echo.unsubscribe_nowait()

            echo.on_broadcast("ping", on_ping)
            peer = b.channel(name)
            async with peer.events() as peer_events, echo.events() as echo_events:
                await echo.subscribe(timeout=DEADLINE)
                await peer.subscribe(timeout=DEADLINE)
                await peer.send_broadcast("ping", {"n": 1})
                while True:
                    e = await peer_events.next(DEADLINE)
                    if isinstance(e, Broadcast) and e.event == "pong":
                        assert e.payload == {"n": 2}
                        break
                statuses = [e.status async for e in echo_events if isinstance(e, ChannelStatus)]
                assert statuses[-1] == "CLOSED"
            side = later["side"]
            async with side.events() as side_events:
                while side.state != "JOINED":
                    e = await side_events.next(DEADLINE)
                    if isinstance(e, ChannelStatus):
                        assert e.status == "SUBSCRIBED"
            with pytest.raises(RealtimeError.InvalidArgument):
                echo.subscribe_nowait()  # single use: closed channels stay closed

    run(main())


def test_callback_exceptions_are_logged_and_delivery_continues(server, caplog):
    async def main():
        got = asyncio.Event()
        loop = asyncio.get_running_loop()
        with RealtimeClient(server.url, server.anon_key) as c:
            ch = c.channel(unique("room"), broadcast_self=True)

            def boom(msg):
                raise RuntimeError("listener bug")

            ch.on_broadcast("*", boom)
            ch.on_broadcast("*", lambda m: loop.call_soon_threadsafe(got.set))
            await ch.subscribe(timeout=DEADLINE)
            await ch.send_broadcast("x", {"n": 1})
            await asyncio.wait_for(got.wait(), DEADLINE)
        assert any("listener bug" in r.getMessage() or r.exc_info for r in caplog.records)

    run(main())


def test_app_pumped_dispatch(server):
    async def main():
        woken = asyncio.Event()
        loop = asyncio.get_running_loop()
        wakers = set()

        def wake():
            if sys.platform.startswith("linux"):
                wakers.add(native_thread_name())
            loop.call_soon_threadsafe(woken.set)

        with RealtimeClient(server.url, server.anon_key, app_pumped=True) as c:
            c.set_wakeup(wake)
            where = []
            ch = c.channel(unique("room"))
            await ch.subscribe(lambda status, err: where.append((status, threading.get_ident())),
                               timeout=DEADLINE)
            while not where:
                await asyncio.wait_for(woken.wait(), DEADLINE)
                woken.clear()
                c.dispatch(100)
            assert where[0] == ("SUBSCRIBED", threading.get_ident())
        assert wakers <= {"supa-wake"}, wakers  # never the network thread
    run(main())


def test_shutdown_then_calls_fail_cleanly(server):
    async def main():
        c = RealtimeClient(server.url, server.anon_key)
        ch = c.channel(unique("room"))
        await ch.subscribe(timeout=DEADLINE)
        async with c.events() as events:
            c.shutdown()
            states = [e.state async for e in events if hasattr(e, "state")]
        assert states[-1] == "SHUT_DOWN"
        with pytest.raises(RealtimeError.Shutdown):
            await ch.send_broadcast("x", {})

    run(main())


def test_token_provider_is_asked_off_the_network_thread(server):
    from conftest import user_token

    async def main():
        threads = []

        def provide():
            if sys.platform.startswith("linux"):
                threads.append(native_thread_name())
            else:
                threads.append("?")
            return user_token("33333333-3333-3333-3333-333333333333")

        with RealtimeClient(server.url, server.anon_key, token_provider=provide) as c:
            await c.channel(unique("tok")).subscribe(timeout=DEADLINE)
        assert threads, "the provider was asked before connecting"
        assert "supa-rt" not in threads and "supa-dispatch" not in threads, threads

    run(main())


def test_failing_token_provider_is_reported(server):
    async def main():
        def provide():
            raise RuntimeError("refresh failed")

        with RealtimeClient(server.url, server.anon_key, token_provider=provide) as c:
            async with c.events() as events:
                c.connect()
                while True:
                    e = await events.next(DEADLINE)
                    if type(e).__name__ == "ClientError":
                        assert "refresh failed" in e.message
                        break

    run(main())


def test_cancelled_await_leaves_the_client_usable(server):
    """Cancelling a pending await (here: a connect that cannot succeed) drops the Rust future;
    the client keeps working and shuts down cleanly."""

    async def main():
        dead = "http://127.0.0.1:9/realtime/v1"  # discard port: nothing listens
        with RealtimeClient(dead, server.anon_key, reconnect_delays=[0.05]) as c:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.connected(), 0.3)
            assert c.connection_state in ("CONNECTING", "DISCONNECTED")
        with RealtimeClient(server.url, server.anon_key) as c:
            task = asyncio.ensure_future(c.channel(unique("room")).subscribe())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await c.channel(unique("room2")).subscribe(timeout=DEADLINE)

    run(main())


def test_shutdown_from_a_callback(server):
    async def main():
        c = RealtimeClient(server.url, server.anon_key)
        ch = c.channel(unique("room"), broadcast_self=True)
        ch.on_broadcast("bye", lambda m: c.shutdown())
        async with c.events() as events:
            await ch.subscribe(timeout=DEADLINE)
            await ch.send_broadcast("bye", {})
            last = None
            async for e in events:  # ends on SHUT_DOWN
                last = e
        assert last.state == "SHUT_DOWN"

    run(main())


def test_synchronous_use_without_asyncio(server):
    """No event loop anywhere: callbacks, the nowait methods, and asyncio.run for a blocking
    call."""
    subscribed, got = threading.Event(), threading.Event()
    received = []
    with RealtimeClient(server.url, server.anon_key) as c:
        ch = c.channel(unique("sync"), broadcast_self=True)
        ch.on_broadcast("note", lambda m: (received.append(m["payload"]), got.set()))
        ch.subscribe_nowait(lambda status, err: status == "SUBSCRIBED" and subscribed.set())
        assert subscribed.wait(DEADLINE)
        ch.send_broadcast_nowait("note", {"sync": True})
        assert got.wait(DEADLINE)
        assert received == [{"sync": True}]
        asyncio.run(ch.unsubscribe())  # any coroutine method, from synchronous code
        assert ch.state == "CLOSED"
