"""Postgres changes under RLS, and set_auth, against the server backed by PostgreSQL
(DATABASE_URL; scripts/test provides one). Without a database these tests are skipped."""

from __future__ import annotations

import time

import pytest

from supa_realtime import ChannelStatus, Client, PostgresChange, RealtimeError

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
                c = Client(server.url, server.anon_key)
                clients.append(c)
                c.set_auth(user_token(user))
                ch = c.channel(unique("db"))
                ch.on_postgres_changes(seen[user].append, event="INSERT", table=rls_table)
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
                assert [c.new["id"] for c in seen[user]] == ids  # the binding's callback too
            for s in streams.values():
                s.close()
        finally:
            for c in clients:
                c.shutdown()

    run(main())


def test_set_auth_with_expired_token_is_refused_with_the_servers_reason(server):
    async def main():
        with Client(server.url, server.anon_key) as c:
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
