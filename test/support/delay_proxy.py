"""A TCP proxy on 127.0.0.1 that makes a loopback remote behave like one RTT milliseconds away:
every chunk is delayed by RTT/2 in each direction, and, because the kernel completes the client's
TCP handshake locally, a new connection's first client bytes are held one RTT more, the round
trip of the SYN that a real network would charge. That RTT is counted from when those bytes were
written, not from the accept: on a real network what a client does between its connect and its
first write (loading CA certificates, say) starts only after the SYN's round trip, so it adds to
the time instead of hiding in it. Used by test/bench/realnet.py and the HTTP/2
tests; close() stops it.

Two implementations of the same model: ple-delay-proxy (test/support/delay_proxy.c, built with
the tests into build/test/), used when it is found (PLE_DELAY_PROXY, else build/test/), and
asyncio in a thread of its own otherwise. The C one adds no measurable time of its own; the
asyncio one adds a few milliseconds per exchange (0.1-0.2 RTT at 40 ms), which is why the
benchmark names the one it used."""

import asyncio
import collections
import os
import socket
import subprocess
import threading

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def c_proxy_binary():
    """The path of ple-delay-proxy, or None: PLE_DELAY_PROXY (which must then be executable),
    else build/test/ple-delay-proxy when it was built."""
    path = os.environ.get("PLE_DELAY_PROXY")
    if path:
        if not os.access(path, os.X_OK):
            raise RuntimeError("PLE_DELAY_PROXY=%s is not an executable file" % path)
        return path
    path = os.path.join(ROOT, "build", "test", "ple-delay-proxy")
    return path if os.access(path, os.X_OK) else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that delays each direction by one_way seconds (asyncio, in a thread
    of its own). Order is kept per direction: one sender per direction sends each chunk at its
    due time."""

    def __init__(self, target_port, one_way, impl=None):
        """impl: "c", "asyncio", or None for the C one when it is found."""
        self.target_port = target_port
        self.one_way = one_way
        self._proc = None
        binary = c_proxy_binary() if impl in (None, "c") else None
        if impl == "c" and not binary:
            raise RuntimeError("ple-delay-proxy is not built (cmake --build build)")
        if binary:
            self.impl = "c"
            self._proc = subprocess.Popen([binary, str(target_port), str(round(one_way * 1e6))],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            line = self._proc.stdout.readline().decode()  # bounded: it prints or exits at once
            if not line.startswith("listening "):
                self._proc.kill()
                self._proc.wait(5)
                raise RuntimeError("ple-delay-proxy did not start: %r" % line)
            self.port = int(line.split()[1])
            return
        self.impl = "asyncio"
        self.port = _free_port()
        self.connections = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the delay proxy did not start")

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _pump(self, reader, writer, first_extra):
        """Copies reader to writer, each chunk one_way after it was read (the first first_extra
        later still), in order; EOF too."""
        q = collections.deque()
        more = asyncio.Event()

        async def send():
            while True:
                while not q:
                    more.clear()
                    await more.wait()
                due, chunk = q.popleft()
                delay = due - self._loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if chunk is None:
                    try:
                        writer.write_eof()
                    except OSError:
                        pass
                    return
                writer.write(chunk)
                try:
                    await writer.drain()
                except OSError:
                    return

        sender = asyncio.ensure_future(send())
        try:
            while True:
                try:
                    chunk = await reader.read(65536)
                except OSError:
                    chunk = b""
                now = self._loop.time()
                due = now + first_extra + self.one_way  # never before the one ahead: in order
                first_extra = 0
                q.append((due, chunk or None))
                more.set()
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()

    async def _accept(self, c_reader, c_writer):
        self.connections += 1
        # The kernel answered the client's SYN at once: a real network would have made it wait one
        # RTT before its first bytes could leave. Hold them that much longer.
        syn_rtt = 2 * self.one_way
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            c_writer.close()
            return
        # No Nagle: a small chunk must leave at its due time, not wait for a delayed ACK.
        for w in (c_writer, s_writer):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(self._pump(c_reader, s_writer, syn_rtt),
                                 self._pump(s_reader, c_writer, 0))
        finally:
            for w in (c_writer, s_writer):
                try:
                    w.close()
                except OSError:
                    pass

    def close(self):
        if self._proc:
            self._proc.stdin.close()  # its end of input: it closes every connection and exits
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc.stdout.close()
            return

        async def shut():
            # Cancelled pumps are the expected end here, not errors to print.
            self._loop.set_exception_handler(lambda loop, ctx: None)
            self._server.close()
            tasks = [t for t in asyncio.all_tasks(self._loop) if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()
        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(5)
        self._loop.close()
