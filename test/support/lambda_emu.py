"""A local emulator of the AWS Lambda Extensions API, for tests and the demo.

It serves register, event/next, init/error and exit/error on 127.0.0.1, records every call with
its timestamps, hands out INVOKE and SHUTDOWN events that the test queues, and, like Lambda,
SIGKILLs the extension process when a SHUTDOWN deadline passes. Standard library only.
"""

import http.server
import json
import os
import signal
import threading
import time
import uuid

API = "/2020-01-01/extension"


class Call:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers  # list of (name, value)
        self.body = body
        self.mono = time.monotonic()
        self.wall_ms = int(time.time() * 1000)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return f"<{self.method} {self.path}>"


class LambdaEmulator:
    """with LambdaEmulator() as emu: env AWS_LAMBDA_RUNTIME_API=emu.address."""

    def __init__(self, function_name="demo-function", account_id="123456789012"):
        self.function_name = function_name
        self.account_id = account_id
        self.extension_id = str(uuid.uuid4())
        self.register_status = 200
        self.next_status = 200  # set to 500 to make event/next fail
        self.next_garbage = 0  # answer this many event/next calls with a body that is not JSON
        self.next_close = 0  # close this many event/next calls without an answer
        self.calls = []
        self.events = []  # queued, not yet handed out
        self.cond = threading.Condition()
        self.process = None  # the extension, for SIGKILL at the shutdown deadline
        self.on_register = None  # called with the register Call before it is answered
        self.killed = False
        self._stopping = False
        self._kill_timer = None
        emu = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                call = Call(self.command, self.path, list(self.headers.items()), body)
                with emu.cond:
                    emu.calls.append(call)
                    emu.cond.notify_all()
                return call

            def do_POST(self):
                call = self._record()
                if self.path == API + "/register":
                    emu._register(self, call)
                elif self.path in (API + "/init/error", API + "/exit/error"):
                    self._reply(202, b'{"status":"OK"}')
                else:
                    self._reply(404)

            def do_GET(self):
                call = self._record()
                if self.path != API + "/event/next":
                    self._reply(404)
                    return
                if call.header("Lambda-Extension-Identifier") != emu.extension_id:
                    self._reply(403, b'{"errorType":"Extension.Forbidden"}')
                    return
                if emu.next_status != 200:
                    self._reply(emu.next_status, b'{"errorType":"Extension.Unknown"}')
                    return
                if emu.next_garbage > 0:
                    emu.next_garbage -= 1
                    self._reply(200, b'{"eventType": INVOKE, garbage')
                    return
                if emu.next_close > 0:
                    emu.next_close -= 1
                    self.close_connection = True
                    return
                event = emu._take_event()
                if event is None:  # emulator stopping
                    self.close_connection = True
                    return
                body = json.dumps(event).encode()
                self._reply(200, body, [("Content-Type", "application/json"),
                                        ("Lambda-Extension-Event-Identifier", str(uuid.uuid4()))])
                if event["eventType"] == "SHUTDOWN":
                    emu._arm_kill(event["deadlineMs"])

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle of the emulator itself --
    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
        if self._kill_timer:
            self._kill_timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    # -- what the extension sees --
    def _register(self, handler, call):
        if self.on_register:
            self.on_register(call)
        if self.register_status != 200:
            handler._reply(self.register_status, b'{"errorType":"Extension.InitError"}')
            return
        body = {"functionName": self.function_name, "functionVersion": "$LATEST",
                "handler": "index.handler"}
        if (call.header("Lambda-Extension-Accept-Feature") or "").lower() == "accountid":
            body["accountId"] = self.account_id
        handler._reply(200, json.dumps(body).encode(),
                       [("Lambda-Extension-Identifier", self.extension_id),
                        ("Content-Type", "application/json")])

    def _take_event(self):
        with self.cond:
            while not self.events and not self._stopping:
                self.cond.wait(0.5)
            if self._stopping and not self.events:
                return None
            return self.events.pop(0)

    def _arm_kill(self, deadline_ms):
        delay = max(0.0, deadline_ms / 1000.0 - time.time())

        def kill():
            proc = self.process
            if proc is not None and proc.poll() is None:
                self.killed = True
                os.kill(proc.pid, signal.SIGKILL)

        self._kill_timer = threading.Timer(delay, kill)
        self._kill_timer.daemon = True
        self._kill_timer.start()

    # -- what the test does --
    def invoke(self, request_id=None, trace_root=None, timeout_ms=3000, tracing=None):
        """tracing: the tracing.value verbatim (malformed ones too); "" leaves tracing out."""
        request_id = request_id or str(uuid.uuid4())
        trace_root = trace_root or "1-%08x-%s" % (int(time.time()), uuid.uuid4().hex[:24])
        event = {
            "eventType": "INVOKE",
            "deadlineMs": int(time.time() * 1000) + timeout_ms,
            "requestId": request_id,
            "invokedFunctionArn": "arn:aws:lambda:us-east-1:%s:function:%s"
                                  % (self.account_id, self.function_name),
            "tracing": {"type": "X-Amzn-Trace-Id",
                        "value": "Root=%s;Parent=%s;Sampled=1" % (trace_root, uuid.uuid4().hex[:16])},
        }
        if tracing == "":
            del event["tracing"]
        elif tracing is not None:
            event["tracing"]["value"] = tracing
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()
        return event

    def shutdown(self, reason="spindown", deadline_in_ms=2000):
        event = {"eventType": "SHUTDOWN", "shutdownReason": reason,
                 "deadlineMs": int(time.time() * 1000) + deadline_in_ms}
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()
        return event

    # -- SnapStart (kept apart: the Telemetry API and Managed Instances live elsewhere) --
    SNAPSTART_ENV = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}

    def snapshot_and_restore(self, frozen_s=0.3, timeout=5.0):
        """SnapStart as an extension sees it: init ends once it polls /event/next; Lambda then
        snapshots the sandbox (here: SIGSTOP) and each new environment resumes from the snapshot
        (here: SIGCONT) with that poll still pending, to be answered by the first INVOKE (queue
        it after this returns). No RESTORE event exists. Start the extension with SNAPSTART_ENV."""
        self.wait_calls("/event/next", 1, timeout)
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            time.sleep(frozen_s)  # the snapshot's life on the shelf; nothing runs meanwhile
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def calls_to(self, suffix):
        with self.cond:
            return [c for c in self.calls if c.path.endswith(suffix)]

    def wait_calls(self, suffix, count, timeout=5.0):
        """Waits until `count` calls whose path ends with `suffix` were received."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [c for c in self.calls if c.path.endswith(suffix)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("waited %.1fs for %d %s calls; got %r"
                                         % (timeout, count, suffix, self.calls))
                self.cond.wait(left)
