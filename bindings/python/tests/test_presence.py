"""Presence between two Python clients through the real server."""

from __future__ import annotations

from supa_realtime import Client, PresenceJoin, PresenceLeave

from conftest import DEADLINE, run, unique


async def next_of(events, kind, key=None):
    while True:
        e = await events.next(DEADLINE)
        if isinstance(e, kind) and (key is None or e.key == key):
            return e


def test_track_join_state_and_leave(server):
    async def main():
        name = unique("lobby")
        with Client(server.url, server.anon_key) as a, Client(server.url, server.anon_key) as b:
            ca = a.channel(name, presence_key="alice")
            cb = b.channel(name, presence_key="bob")
            ca.on_presence(lambda e: None)  # presence on for the watcher
            async with ca.events() as events:
                await ca.subscribe(timeout=DEADLINE)
                await cb.subscribe(timeout=DEADLINE)
                await ca.track({"user": "alice"})
                await cb.track({"user": "bob", "online_at": 1})

                join = await next_of(events, PresenceJoin, "bob")
                assert join.new[0]["user"] == "bob"
                assert "presence_ref" in join.new[0]
                state = ca.presence_state()
                assert set(state) >= {"alice", "bob"}
                assert state["alice"][0]["user"] == "alice"

                await cb.untrack()
                leave = await next_of(events, PresenceLeave, "bob")
                assert leave.left[0]["user"] == "bob"
                assert "bob" not in ca.presence_state()

    run(main())
