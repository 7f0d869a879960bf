"""Stored broadcasts from Python against the server backed by PostgreSQL (DATABASE_URL;
scripts/test provides one): persist from one client (socket and REST), replay on join from
another, in order, with ids; replication_ready; gap fill across an outage made by cutting a
loopback proxy. Without a database these tests are skipped."""

from __future__ import annotations

import socket
import threading
import time
from typing import List

import pytest

from supa_realtime import Broadcast, ChannelStatus, RealtimeClient, Resumed

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


class CuttableProxy:
    """A loopback TCP proxy whose network can be cut: ``cut()`` closes every connection and
    refuses new ones until ``restore()`` (what an outage looks like to the client)."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.refuse = threading.Event()
        self.stop = threading.Event()
        self.conns: List[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.refuse.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.refuse.set()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        self.refuse.clear()

    def close(self) -> None:
        self.stop.set()
        self.cut()
        self.listener.close()


def test_gap_fill_delivers_every_stored_message_once_across_an_outage(server, policies):
    async def main():
        name = unique("py-replay-gap")
        port = int(server.http_url.rsplit(":", 1)[1])
        proxy = CuttableProxy(port)
        url = f"http://127.0.0.1:{proxy.port}/realtime/v1"
        try:
            with RealtimeClient(
                url, server.anon_key, reconnect_delays=[0.1, 0.3], rejoin_delays=[0.1, 0.3]
            ) as victim, RealtimeClient(server.url, server.anon_key) as sender:
                victim.set_auth(user_token(USER))
                sender.set_auth(user_token(USER))
                ch = victim.channel(name, private=True, auto_replay=True)
                out = sender.channel(name, private=True, broadcast_ack=True)
                await out.subscribe(timeout=DEADLINE)
                async with ch.events() as events:
                    await ch.subscribe(timeout=DEADLINE)
                    for n in range(1, 4):
                        await out.send_broadcast("note", {"n": n}, persist=True)
                    got = [await next_broadcast(events) for _ in range(3)]

                    proxy.cut()
                    while True:
                        e = await events.next(DEADLINE)
                        if isinstance(e, ChannelStatus) and e.status == "CHANNEL_ERROR":
                            break
                    for n in range(4, 8):
                        await out.send_broadcast("note", {"n": n}, persist=True)
                    await out.http_send("note", {"n": 8}, persist=True)
                    proxy.restore()

                    resumed = None
                    while resumed is None:
                        e = await events.next(DEADLINE)
                        if isinstance(e, Broadcast) and e.event == "note":
                            got.append(e)
                        elif isinstance(e, Resumed):
                            resumed = e
                    assert resumed.filled
                    await out.send_broadcast("note", {"n": 9}, persist=True)
                    got.append(await next_broadcast(events))
                    assert [b.payload["n"] for b in got] == list(range(1, 10))
                    assert [b.payload["n"] for b in got if b.replayed] == list(range(4, 9))
        finally:
            proxy.close()

    run(main())
