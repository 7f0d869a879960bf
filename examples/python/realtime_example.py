"""Subscribe to a table, a broadcast event and presence on one channel; print what arrives.

    pip install supa_realtime-*.whl         # a released wheel (scripts/dist), or ./bindings/python
    python examples/python/realtime_example.py --url http://127.0.0.1:4000/realtime/v1 \
        --key <anon key> [--table todos] [--once]

It tracks itself in presence and broadcasts one `message`, so something always arrives.
With --table it also prints INSERT/UPDATE/DELETE on public.<table> (the server needs a
database). --once exits once its own broadcast, its presence join and a presence sync came
back (and, with --table, one change).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from supa_realtime import Broadcast, ChannelStatus, Client, PostgresChange, PresenceJoin, PresenceSync


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("REALTIME_URL", "http://127.0.0.1:4000/realtime/v1"))
    p.add_argument("--key", default=os.environ.get("ANON_KEY", ""))
    p.add_argument("--table", default=None)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--once", action="store_true")
    args = p.parse_args()

    with Client(args.url, args.key) as client:
        room = client.channel("example", broadcast_self=True, presence_key="python")
        room.on_presence(lambda e: None)  # presence on
        if args.table:
            room.on_postgres_changes(lambda c: None, table=args.table)
        async with room.events() as events:
            await room.subscribe(timeout=30)
            print("subscribed to", room.topic)
            await room.track({"user": "python"})
            await room.send("message", {"text": "hello from Python"})
            want = {"broadcast", "presence", "sync"} | ({"change"} if args.table else set())
            seen = set()
            loop = asyncio.get_running_loop()
            end = loop.time() + args.seconds
            while loop.time() < end and not (args.once and seen >= want):
                try:
                    e = await events.next(end - loop.time())
                except asyncio.TimeoutError:
                    break
                if isinstance(e, Broadcast):
                    print(f"broadcast {e.event}: {e.payload}")
                    seen.add("broadcast")
                elif isinstance(e, PresenceJoin):
                    print(f"presence join {e.key}: {e.new}")
                    seen.add("presence")
                elif isinstance(e, PresenceSync):
                    print("presence sync")
                    seen.add("sync")
                elif isinstance(e, PostgresChange):
                    print(f"{e.event_type} on {e.schema}.{e.table}: new={e.new} old={e.old}")
                    seen.add("change")
                elif isinstance(e, ChannelStatus):
                    print(f"status {e.status} {e.reason or ''}")
            if args.once and not seen >= want:
                raise SystemExit(f"missing events: {sorted(want - seen)}")


if __name__ == "__main__":
    asyncio.run(main())
