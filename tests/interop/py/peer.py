"""A vsn 1.0.0 peer driven over stdin/stdout: the official Python `realtime` client.

Usage: peer.py HTTP_URL APIKEY CHANNEL_NAME
Prints one JSON object per line (events); reads one JSON command per line.
Commands: {"cmd": "send", "event": E, "payload": P}, {"cmd": "track", "payload": P},
{"cmd": "untrack"}, {"cmd": "state"}, {"cmd": "quit"}.
"""

import asyncio
import json
import sys

from realtime import AsyncRealtimeClient


def emit(**event):
    print(json.dumps(event), flush=True)


async def main(url: str, key: str, name: str) -> None:
    client = AsyncRealtimeClient(f"{url}/realtime/v1", token=key, auto_reconnect=False)
    await client.connect()
    channel = client.channel(
        name,
        {
            "config": {
                "broadcast": {"self": False, "ack": True},
                "presence": {"key": "py", "enabled": True},
                "private": False,
            }
        },
    )
    channel.on_broadcast("to_py", lambda msg: emit(kind="broadcast", msg=msg))
    channel.on_presence_sync(lambda: emit(kind="sync", state=channel.presence_state()))

    def on_status(status, err):
        emit(kind="status", status=str(getattr(status, "value", status)), error=str(err) if err else None)

    await channel.subscribe(on_status)
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "send":
            await channel.send_broadcast(cmd["event"], cmd["payload"])
            emit(kind="sent", event=cmd["event"])
        elif cmd["cmd"] == "track":
            await channel.track(cmd["payload"])
            emit(kind="tracked")
        elif cmd["cmd"] == "untrack":
            await channel.untrack()
            emit(kind="untracked")
        elif cmd["cmd"] == "quit":
            break
    await client.close()
    emit(kind="bye")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
