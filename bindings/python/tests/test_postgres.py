"""Postgres changes under RLS, and set_auth, against the server backed by PostgreSQL
(DATABASE_URL; scripts/test provides one). Without a database these tests are skipped."""

from __future__ import annotations

import time

import pytest

from supa_realtime import ChannelStatus, PostgresChange, RealtimeClient, RealtimeError

from conftest import DEADLINE, psql, run, sign_token, unique, user_token

ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"


@pytest.fixture
def rls_table(server):
    if not server.database_url:
        pytest.skip("no DATABASE_URL")
    table = unique("py_notes").replace("-", "_")
    psql(
        server.database_url,
        f"""
        create table {table} (id int primary key, owner uuid, body text, secret text);
        alter table {table} enable row level security;
        create policy own on {table} for select to authenticated using (owner = auth.uid());
        revoke select on {table} from authenticated;
        grant select (id, owner, body) on {table} to authenticated;
        alter publication supabase_realtime add table {table};
        """,
    )
    yield table
    psql(server.database_url, f"drop table if exists {table}")


async def next_change(events):
    while True:
        e = await events.next(DEADLINE)
        if isinstance(e, PostgresChange):
            return e


def test_changes_follow_rls_per_user(server, rls_table):
    async def main():
        clients = []
        try:
            streams = {}
            seen = {ALICE: [], BOB: []}
            for user in (ALICE, BOB):
                c = RealtimeClient(server.url, server.anon_key)
                clients.append(c)
                c.set_auth(user_token(user))
                ch = c.channel(unique("db"))
                ch.on_postgres_changes("INSERT", seen[user].append, table=rls_table)
                streams[user] = ch.events()
                await ch.subscribe(timeout=DEADLINE)  # SUBSCRIBED once changes flow
            psql(
                server.database_url,
                f"insert into {rls_table} values (1, '{ALICE}', 'for alice', 's1'),"
                f" (2, '{BOB}', 'for bob', 's2'), (3, '{ALICE}', 'alice again', 's3')",
            )
            for user, ids in ((ALICE, [1, 3]), (BOB, [2])):
                got = [await next_change(streams[user]) for _ in ids]
                assert [c.new["id"] for c in got] == ids
                for c in got:
                    assert c.event_type == "INSERT"
                    assert c.table == rls_table and c.schema == "public"
                    assert c.new["owner"] == user
                    assert "secret" not in c.new  # column privileges apply
                    assert c.errors is None
                # The binding's callback got realtime's payload.
                assert [c["data"]["record"]["id"] for c in seen[user]] == ids
                assert all(c["data"]["type"] == "INSERT" and c["ids"] == [0] for c in seen[user])
            for s in streams.values():
                s.close()
        finally:
            for c in clients:
                c.shutdown()

    run(main())


def test_set_auth_with_expired_token_is_refused_with_the_servers_reason(server):
    async def main():
        with RealtimeClient(server.url, server.anon_key) as c:
            expired = sign_token(
                {"role": "authenticated", "sub": ALICE, "exp": int(time.time()) - 120}
            )
            c.set_auth(expired)
            ch = c.channel(unique("auth"))
            async with ch.events() as events:
                with pytest.raises(RealtimeError.ChannelError) as err:
                    await ch.subscribe(timeout=DEADLINE)
                assert err.value.reason.startswith("InvalidJWTToken: Token has expired")
                assert err.value.recoverable is False
                while True:
                    e = await events.next(DEADLINE)
                    if isinstance(e, ChannelStatus) and e.status == "CHANNEL_ERROR":
                        break
                assert e.reason == err.value.reason
                assert e.error_kind == "TERMINAL" and e.token_rejected

            c.set_auth(user_token(ALICE))  # a fresh channel joins with the new token
            await c.channel(unique("auth")).subscribe(timeout=DEADLINE)

    run(main())


def test_changes_reach_the_binding_they_matched(server):
    """Two bindings on one channel: each callback gets the changes of its own binding, in
    realtime's shape (``data.type``, ``data.record``, ``data.old_record``)."""
    if not server.database_url:
        pytest.skip("no DATABASE_URL")
    table = unique("py_items").replace("-", "_")
    psql(
        server.database_url,
        f"""
        create table {table} (id int primary key, body text);
        alter table {table} replica identity full;
        alter publication supabase_realtime add table {table};
        """,
    )

    async def main():
        inserts, second = [], []
        with RealtimeClient(server.url, server.anon_key) as c:
            ch = (c.channel(unique("db"))
                  .on_postgres_changes("INSERT", inserts.append, table=table)
                  .on_postgres_changes("*", second.append, table=table, schema="public",
                                       filter="id=eq.2"))
            async with ch.events() as events:
                await ch.subscribe(timeout=DEADLINE)
                psql(server.database_url,
                     f"insert into {table} values (1, 'one'), (2, 'two');"
                     f" update {table} set body = 'zwei' where id = 2;")
                changes = [await next_change(events) for _ in range(3)]
            assert [(x.event_type, x.new["id"]) for x in changes] == [
                ("INSERT", 1), ("INSERT", 2), ("UPDATE", 2)]
            assert [x["data"]["record"]["id"] for x in inserts] == [1, 2]
            assert [x["data"]["type"] for x in second] == ["INSERT", "UPDATE"]
            update = second[1]["data"]
            assert update["record"] == {"id": 2, "body": "zwei"}
            assert update["old_record"] == {"id": 2, "body": "two"}
            assert update["table"] == table and update["schema"] == "public"

    try:
        run(main())
    finally:
        psql(server.database_url, f"drop table if exists {table}")
