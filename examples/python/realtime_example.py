"""Subscribe to a table, a broadcast event and presence on one channel; print what arrives.

    pip install supa_realtime-*.whl         # a released wheel (scripts/dist), or ./bindings/python
    python examples/python/realtime_example.py --url http://127.0.0.1:4000/realtime/v1 \
        --key <anon key> [--table todos] [--once]

It tracks itself in presence and broadcasts one `message`, so something always arrives.
With --table it also prints INSERT/UPDATE/DELETE on public.<table> (the server needs a
database). --once exits once its own broadcast, its presence join and a presence sync came
back (and, with --table, one change).

The callbacks are written as for the official `realtime` package (supabase-py); they run on
the client's dispatch thread, so they hand what they see to the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from supa_realtime import RealtimeClient


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("REALTIME_URL", "http://127.0.0.1:4000/realtime/v1"))
    p.add_argument("--key", default=os.environ.get("ANON_KEY", ""))
    p.add_argument("--table", default=None)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--once", action="store_true")
    args = p.parse_args()

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def say(kind: str, text: str) -> None:  # from the dispatch thread to the loop
        loop.call_soon_threadsafe(lines.put_nowait, (kind, text))

    with RealtimeClient(args.url, args.key) as client:
        room = client.channel("example", {"config": {"broadcast": {"self": True},
                                                      "presence": {"key": "python"}}})
        room.on_broadcast("message", lambda m: say("broadcast", f"broadcast {m['event']}: {m['payload']}"))
        room.on_presence_join(lambda key, current, new: say("presence", f"presence join {key}: {new}"))
        room.on_presence_sync(lambda: say("sync", "presence sync"))
        if args.table:
            room.on_postgres_changes(
                "*",
                lambda c: say("change", f"{c['data']['type']} on {c['data']['schema']}.{c['data']['table']}:"
                                        f" record={c['data']['record']} old={c['data']['old_record']}"),
                table=args.table,
            )

        await room.subscribe(lambda status, err: say("status", f"status {status.value} {err or ''}"),
                             timeout=30)
        print("subscribed to", room.topic)
        await room.track({"user": "python"})
        await room.send_broadcast("message", {"text": "hello from Python"})

        want = {"broadcast", "presence", "sync"} | ({"change"} if args.table else set())
        seen = set()
        end = loop.time() + args.seconds
        while loop.time() < end and not (args.once and seen >= want):
            try:
                kind, text = await asyncio.wait_for(lines.get(), end - loop.time())
            except asyncio.TimeoutError:
                break
            print(text)
            seen.add(kind)
        if args.once and not seen >= want:
            raise SystemExit(f"missing events: {sorted(want - seen)}")


if __name__ == "__main__":
    asyncio.run(main())
