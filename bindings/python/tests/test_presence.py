"""Presence between two Python clients through the real server, with realtime's callbacks."""

from __future__ import annotations

import asyncio

from supa_realtime import PresenceJoin, PresenceLeave, RealtimeClient

from conftest import DEADLINE, run, unique


async def next_of(events, kind, key=None):
    while True:
        e = await events.next(DEADLINE)
        if isinstance(e, kind) and (key is None or e.key == key):
            return e


def test_track_join_state_and_leave(server):
    async def main():
        name = unique("lobby")
        with RealtimeClient(server.url, server.anon_key) as a, \
                RealtimeClient(server.url, server.anon_key) as b:
            ca = a.channel(name, presence_key="alice")
            cb = b.channel(name, {"config": {"presence": {"key": "bob"}}})
            joins, leaves, syncs = [], [], []
            loop = asyncio.get_running_loop()
            left = asyncio.Event()

            def on_leave(key, current, gone):
                leaves.append((key, gone))
                loop.call_soon_threadsafe(left.set)

            (ca.on_presence_sync(lambda: syncs.append(1))  # presence on for the watcher
               .on_presence_join(lambda key, current, new: joins.append((key, new)))
               .on_presence_leave(on_leave))
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
                bob = [new for key, new in joins if key == "bob"]
                assert bob and bob[0][0]["user"] == "bob"  # realtime's (key, current, new)
                assert syncs

                await cb.untrack()
                leave = await next_of(events, PresenceLeave, "bob")
                assert leave.left[0]["user"] == "bob"
                assert "bob" not in ca.presence_state()
                await asyncio.wait_for(left.wait(), DEADLINE)
                assert leaves[0][0] == "bob" and leaves[0][1][0]["user"] == "bob"

    run(main())
