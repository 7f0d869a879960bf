"""Stored broadcasts from Python against the server backed by PostgreSQL (DATABASE_URL;
scripts/test provides one): persist from one client (socket and REST), replay on join from
another, in order, with ids; replication_ready. Without a database these tests are skipped."""

from __future__ import annotations

import time

import pytest

from supa_realtime import Broadcast, RealtimeClient

from conftest import DEADLINE, psql, run, unique, user_token

USER = "33333333-3333-4333-8333-333333333333"


@pytest.fixture
def policies(server):
    if not server.database_url:
        pytest.skip("no DATABASE_URL")
    psql(
        server.database_url,
        """
        drop policy if exists py_replay_read on realtime.messages;
        drop policy if exists py_replay_write on realtime.messages;
        create policy py_replay_read on realtime.messages for select to authenticated
          using (realtime.topic() like 'py-replay-%');
        create policy py_replay_write on realtime.messages for insert to authenticated
          with check (realtime.topic() like 'py-replay-%');
        """,
    )


async def next_broadcast(events) -> Broadcast:
    while True:
        e = await events.next(DEADLINE)
        if isinstance(e, Broadcast) and e.event == "note":
            return e


def test_persisted_messages_replay_on_join_with_ids_in_order(server, policies):
    async def main():
        name = unique("py-replay")
        since = int(time.time() * 1000) - 60_000
        with RealtimeClient(server.url, server.anon_key) as sender, RealtimeClient(
            server.url, server.anon_key
        ) as late:
            sender.set_auth(user_token(USER))
            late.set_auth(user_token(USER))
            out = sender.channel(name, private=True, broadcast_ack=True)
            await out.subscribe(timeout=DEADLINE)
            await out.send_broadcast("note", {"n": 1}, persist=True)
            await out.send_broadcast("note", {"n": 2}, persist=3600)
            await out.http_send("note", {"n": 3}, persist=True)

            ch = late.channel(
                name,
                {"config": {"private": True, "broadcast": {"replay": {"since": since, "limit": 10}}}},
                replication_ready=True,
            )
            async with ch.events() as events:
                await ch.subscribe(timeout=DEADLINE)
                await ch.replication_ready()
                got = [await next_broadcast(events) for _ in range(3)]
                assert [b.payload["n"] for b in got] == [1, 2, 3]
                assert all(b.replayed for b in got)
                assert all(b.id and len(b.id) == 36 for b in got)
                assert len({b.id for b in got}) == 3

                await out.send_broadcast("note", {"n": 4}, persist=True)
                live = await next_broadcast(events)
                assert live.payload == {"n": 4}
                assert live.id and not live.replayed

            public = sender.channel(unique("py-replay-public"))
            await public.subscribe(timeout=DEADLINE)
            with pytest.raises(Exception, match="private channels"):
                await public.send_broadcast("note", {}, persist=True)
            with pytest.raises(ValueError):
                await out.send_broadcast("note", {}, persist=-5)

    run(main())
