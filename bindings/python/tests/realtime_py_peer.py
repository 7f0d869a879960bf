"""The official Python client (``realtime`` from PyPI) as the other party of the Python tests.

Usage: python realtime_py_peer.py <http url> <anon key> <channel name> <command> [n]

Joins the channel and prints ``ready`` once SUBSCRIBED, then runs the command:
  burst N   sends N broadcasts ``e`` {"i": 0..N-1} back to back and prints ``sent``
  echo      answers each ``ping`` broadcast {n} with a ``pong`` {n: n + 1, from: "py"},
            printing ``got <n>``
and stays until stdin closes (never longer than 60 s).
"""

import asyncio
import sys
import threading

from realtime import AsyncRealtimeClient, RealtimeSubscribeStates


async def main(url: str, key: str, name: str, command: str, n: int) -> None:
    client = AsyncRealtimeClient(url, token=key, auto_reconnect=False)
    channel = client.channel(name)
    loop = asyncio.get_running_loop()
    joined = loop.create_future()

    def on_ping(msg):
        k = msg["payload"]["n"]
        print(f"got {k}", flush=True)
        loop.create_task(channel.send_broadcast("pong", {"n": k + 1, "from": "py"}))

    if command == "echo":
        channel.on_broadcast("ping", on_ping)

    def on_status(status, err):
        if status == RealtimeSubscribeStates.SUBSCRIBED and not joined.done():
            joined.set_result(None)
        elif status != RealtimeSubscribeStates.SUBSCRIBED:
            print(f"status {status} {err}", flush=True)

    await channel.subscribe(on_status)
    await asyncio.wait_for(joined, 10)
    print("ready", flush=True)
    if command == "burst":
        for i in range(n):
            await channel.send_broadcast("e", {"i": i})
        print("sent", flush=True)
    # Until the parent closes stdin (a daemon thread: never holds up the exit).
    closed = asyncio.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(closed.set)

    threading.Thread(target=wait_stdin, daemon=True).start()
    try:
        await asyncio.wait_for(closed.wait(), 60)
    except asyncio.TimeoutError:
        pass
    await client.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], a[3], int(a[4]) if len(a) > 4 else 0))
