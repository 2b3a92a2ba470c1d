"""A TCP proxy that caps every connection's download speed, as a CDN edge does: the capped link of the benchmarks.

    python bench/throttle.py --upstream 127.0.0.1:8000 --rate 40000000 [--stats FILE]

Listens on 127.0.0.1 (a free port, printed as ``http://127.0.0.1:PORT`` on the first line of
stdout), relays each connection to ``--upstream``, and sends what the upstream answers at no more
than ``--rate`` bytes per second *per connection* (a token bucket refilled continuously, so one
connection gets the rate and N connections get N times it). What the client sends goes through
uncapped. With ``--stats``, the bytes sent to clients so far are written to FILE every 50 ms (and at
exit), so a benchmark can count what a download fetched. Runs until killed. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time

CHUNK = 64 * 1024
SENT = [0]


async def _pump_capped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float) -> None:
    start = time.monotonic()
    sent = 0
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
        sent += len(data)
        SENT[0] += len(data)
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            await asyncio.sleep(ahead)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        await writer.wait_closed()


async def _serve(upstream: tuple[str, int], rate: float, stats: str | None) -> None:
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection(*upstream)
        except OSError:
            await _close(c_writer)
            return
        up = asyncio.ensure_future(_pump(c_reader, u_writer))
        down = asyncio.ensure_future(_pump_capped(u_reader, c_writer, rate))
        with contextlib.suppress(Exception):
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        await _close(u_writer)
        await _close(c_writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=CHUNK)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    if stats:
        while True:
            _write_stats(stats)
            await asyncio.sleep(0.05)
    async with server:
        await server.serve_forever()


def _write_stats(path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fp:
        fp.write(str(SENT[0]))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to relay to")
    parser.add_argument("--rate", type=float, required=True, help="bytes per second per connection")
    parser.add_argument("--stats", help="file to write the bytes sent to clients into")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve((host, int(port)), args.rate, args.stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
