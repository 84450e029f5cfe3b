"""A TCP proxy in front of the chaos bench's SMTP sink, which the bench can switch off to make SMTP unreachable.

    python -m bench.chaos_proxy --port 2526 --target 2525

SIGUSR1 switches it off: it stops listening (a new connection is refused) and resets every open connection, as a
relay that goes away would. SIGUSR2 switches it back on, on the same port.
"""

import argparse
import asyncio
import contextlib
import signal


class Proxy:
    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()

    async def on(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(self._connection, "127.0.0.1", self.port, reuse_address=True)
            print("proxy on", flush=True)

    def off(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.open):
            writer.transport.abort()  # RST: the sender sees its connection drop mid-session
        self.open.clear()
        print("proxy off", flush=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.open.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self.open.discard(w)
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()


async def main(port: int, target: int) -> None:
    proxy = Proxy(port, target)
    await proxy.on()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, proxy.off)
    loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(proxy.on()))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    proxy.off()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.target))
