"""Broadcast through the real server: between two Python clients (ack, self, binary, REST),
with the official `realtime` package and realtime-js as the other party, and a burst that must
arrive whole at default settings."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from supa_realtime import (
    Broadcast,
    ChannelStatus,
    RealtimeClient,
    RealtimeError,
    RealtimeSubscribeStates,
)

from conftest import DEADLINE, ROOT, LineReader, Peer, run, unique, until


async def next_broadcast(events):
    while True:
        e = await events.next(DEADLINE)
        if isinstance(e, Broadcast):
            return e


def test_broadcast_between_clients_with_ack_and_self(server):
    async def main():
        name = unique("room")
        with RealtimeClient(server.url, server.anon_key) as a, \
                RealtimeClient(server.url, server.anon_key) as b:
            ca = a.channel(name, {"config": {"broadcast": {"self": True, "ack": True}}})
            cb = b.channel(name)
            got = []
            cb.on_broadcast("HELLO", got.append)  # event names match case-insensitively
            async with ca.events() as ea, cb.events() as eb:
                assert await ca.subscribe() is ca
                await cb.subscribe(timeout=DEADLINE)
                assert ca.state == "JOINED" and ca.is_joined
                await ca.send_broadcast("hello", {"n": 1, "nested": {"ok": True}})  # on the ack

                for events in (ea, eb):  # self: the sender gets it too
                    msg = await next_broadcast(events)
                    assert msg.event == "hello"
                    assert msg.topic == f"realtime:{name}"
                    assert msg.payload == {"n": 1, "nested": {"ok": True}}
                # The callback got realtime's dict (plus the topic).
                assert got == [{"type": "broadcast", "topic": f"realtime:{name}", "event": "hello",
                                "payload": {"n": 1, "nested": {"ok": True}}}]

                await ca.send_broadcast("bytes", b"\x00\x01\xffraw")
                msg = await next_broadcast(eb)
                assert msg.payload == b"\x00\x01\xffraw"

                await ca.http_send("rest", {"via": "http"})
                msg = await next_broadcast(eb)
                assert (msg.event, msg.payload) == ("rest", {"via": "http"})

            m = a.metrics()
            assert m["connects"] == 1 and m["messages_out"] >= 3
            assert f"realtime:{name}" in m["join_latency_ms"]

    run(main())


def test_bad_payload_and_unsubscribed_send_are_clear_errors(server):
    async def main():
        with RealtimeClient(server.url, server.anon_key) as c:
            ch = c.channel(unique("room"))
            with pytest.raises(RealtimeError.InvalidArgument):
                await ch.send_broadcast("x", {"n": 1})  # not subscribed
            with pytest.raises(TypeError):
                await ch.send_broadcast("x", {"bad": object()})  # not JSON-serializable
            with pytest.raises(ValueError, match="broadcast.rewind"):
                c.channel(unique("room"), {"config": {"broadcast": {"rewind": True}}})
            with pytest.raises(ValueError, match="replay needs 'since'"):
                c.channel(unique("room"), {"config": {"broadcast": {"replay": {"limit": 1}}}})
            with pytest.raises(ValueError, match="event must be"):
                ch.on_postgres_changes("insert", print)  # type: ignore[arg-type]

    run(main())


def test_subscribe_callback_gets_realtimes_statuses(server):
    async def main():
        with RealtimeClient(server.url, server.anon_key) as c:
            ch = c.channel(unique("room"))
            statuses = []
            done = asyncio.Event()
            loop = asyncio.get_running_loop()

            def on_status(status, err):
                statuses.append((status, err))
                if status == "CLOSED":
                    loop.call_soon_threadsafe(done.set)

            await ch.subscribe(on_status)
            await ch.unsubscribe()
            await asyncio.wait_for(done.wait(), DEADLINE)
            assert statuses == [(RealtimeSubscribeStates.SUBSCRIBED, None),
                                (RealtimeSubscribeStates.CLOSED, None)]

    run(main())


def test_burst_from_realtime_py_arrives_whole_at_defaults(roomy_server):
    """20,000 broadcasts sent back to back by the official client reach a callback on default
    settings: all of them, in order, none dropped."""
    server = roomy_server
    n = 20_000

    async def main():
        name = unique("burst")
        with RealtimeClient(server.url, server.anon_key) as c:
            ch = c.channel(name)
            seen = []
            done = threading.Event()

            def on_message(msg):
                seen.append(msg["payload"]["i"])
                if len(seen) == n:
                    done.set()

            ch.on_broadcast("e", on_message)
            await ch.subscribe(timeout=DEADLINE)
            with Peer(server, name, "burst", n) as peer:
                peer.out.wait_for(lambda l: l == "ready", "realtime-py SUBSCRIBED")
                peer.out.wait_for(lambda l: l == "sent", "the burst sent", timeout=120)
                # Until everything arrived or nothing more is coming (drops end it early).
                while not done.is_set():
                    before = len(seen)
                    if await asyncio.to_thread(done.wait, DEADLINE):
                        break
                    if len(seen) == before:
                        break
            m = c.metrics()
            assert m["dropped_events"] == 0, m
            assert m["reconnects"] == 0, m  # else the server dropped us and the burst is cut
            assert len(seen) == n, f"{len(seen)} of {n} arrived"
            assert seen == list(range(n))

    run(main())


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_broadcast_with_realtime_js(server):
    interop = ROOT / "tests" / "interop"
    if not (interop / "node_modules" / "@supabase" / "realtime-js").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(interop)],
            check=True,
            timeout=300,
        )
    name = unique("js")
    ws_url = server.http_url.replace("http", "ws", 1) + "/realtime/v1"
    peer = subprocess.Popen(
        ["node", str(Path(__file__).with_name("js_peer.mjs")), ws_url, server.anon_key, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        out = LineReader(peer)
        out.wait_for(lambda l: l == "ready", "realtime-js SUBSCRIBED")

        async def main():
            with RealtimeClient(server.url, server.anon_key) as c:
                ch = c.channel(name)
                async with ch.events() as events:
                    await ch.subscribe(timeout=DEADLINE)
                    await ch.send_broadcast("ping", {"n": 41})
                    while True:
                        e = await next_broadcast(events)
                        if e.event == "pong":
                            assert e.payload == {"n": 42, "from": "js"}
                            break
                await ch.unsubscribe()

        run(main())
        out.wait_for(lambda l: l == 'got {"n":41}', "realtime-js received the ping")
    finally:
        peer.stdin.close()
        try:
            peer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            peer.kill()


def test_broadcast_with_realtime_py(server):
    name = unique("py")
    with Peer(server, name, "echo") as peer:
        peer.out.wait_for(lambda l: l == "ready", "realtime-py SUBSCRIBED")

        async def main():
            with RealtimeClient(server.url, server.anon_key) as c:
                ch = c.channel(name)
                async with ch.events() as events:
                    await ch.subscribe(timeout=DEADLINE)
                    await ch.send_broadcast("ping", {"n": 1})
                    e = await next_broadcast(events)
                    assert (e.event, e.payload) == ("pong", {"n": 2, "from": "py"})

        run(main())
        peer.out.wait_for(lambda l: l == "got 1", "realtime-py received the ping")


def test_unsubscribe_ends_the_channel_stream(server):
    async def main():
        with RealtimeClient(server.url, server.anon_key) as c:
            ch = c.channel(unique("room"))
            statuses = []
            async with ch.events() as events:
                await ch.subscribe(timeout=DEADLINE)
                await ch.unsubscribe()
                async for e in events:  # ends after the final CLOSED
                    if isinstance(e, ChannelStatus):
                        statuses.append(e.status)
            assert statuses == ["SUBSCRIBED", "CLOSED"]
            assert ch.state == "CLOSED"

    run(main())


def test_channels_are_kept_and_removed_as_in_realtime(server):
    async def main():
        with RealtimeClient(server.url, server.anon_key) as c:
            await c.connect()  # awaitable, as realtime's
            assert c.is_connected
            a, b = c.channel(unique("a")), c.channel(unique("b"))
            assert c.channel(a.topic.removeprefix("realtime:")) is a  # the live one
            assert c.get_channels() == [a, b]
            await a.subscribe(timeout=DEADLINE)
            await b.subscribe(timeout=DEADLINE)

            await c.remove_channel(a)
            assert a.state == "CLOSED" and c.get_channels() == [b]
            fresh = c.channel(a.topic.removeprefix("realtime:"))  # a is finished: a new one
            assert fresh is not a and fresh.state == "CLOSED"
            await c.remove_all_channels()
            assert c.get_channels() == [] and b.state == "CLOSED"
            # Nothing left: it disconnects, as realtime does.
            await until(lambda: c.connection_state == "DISCONNECTED", "the disconnect")

            await c.set_auth(None)  # awaitable, as realtime's (and takes effect at once)
            c.set_auth(None)

    run(main())


def test_python_example_runs(server):
    example = ROOT / "examples" / "python" / "realtime_example.py"
    out = subprocess.run(
        [sys.executable, str(example), "--url", server.url, "--key", server.anon_key, "--once",
         "--seconds", str(DEADLINE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "broadcast message: {'text': 'hello from Python'}" in out.stdout
    assert "presence join python" in out.stdout
