"""Broadcast through the real server: between two Python clients (ack, self, binary, REST)
and with realtime-js as the other party."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from supa_realtime import Broadcast, ChannelStatus, Client, RealtimeError

from conftest import DEADLINE, ROOT, LineReader, run, unique


def test_broadcast_between_clients_with_ack_and_self(server):
    async def main():
        name = unique("room")
        with Client(server.url, server.anon_key) as a, Client(server.url, server.anon_key) as b:
            ca = a.channel(name, broadcast_self=True, broadcast_ack=True)
            cb = b.channel(name)
            async with ca.events() as ea, cb.events() as eb:
                await ca.subscribe(timeout=DEADLINE)
                await cb.subscribe(timeout=DEADLINE)
                assert ca.state == "JOINED"
                await ca.send("hello", {"n": 1, "nested": {"ok": True}})  # returns on the ack

                async def next_broadcast(events):
                    while True:
                        e = await events.next(DEADLINE)
                        if isinstance(e, Broadcast):
                            return e

                for events in (ea, eb):  # self: the sender gets it too
                    msg = await next_broadcast(events)
                    assert msg.event == "hello"
                    assert msg.topic == f"realtime:{name}"
                    assert msg.payload == {"n": 1, "nested": {"ok": True}}

                await ca.send("bytes", b"\x00\x01\xffraw")
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
        with Client(server.url, server.anon_key) as c:
            ch = c.channel(unique("room"))
            with pytest.raises(RealtimeError.InvalidArgument):
                await ch.send("x", {"n": 1})  # not subscribed
            with pytest.raises(TypeError):
                await ch.send("x", {"bad": object()})  # not JSON-serializable

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
            with Client(server.url, server.anon_key) as c:
                ch = c.channel(name)
                async with ch.events() as events:
                    await ch.subscribe(timeout=DEADLINE)
                    await ch.send("ping", {"n": 41})
                    while True:
                        e = await events.next(DEADLINE)
                        if isinstance(e, Broadcast) and e.event == "pong":
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


def test_unsubscribe_ends_the_channel_stream(server):
    async def main():
        with Client(server.url, server.anon_key) as c:
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


def test_python_example_runs(server):
    example = ROOT / "examples" / "python" / "realtime_example.py"
    import sys

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
