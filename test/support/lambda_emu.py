"""A local emulator of the AWS Lambda Extensions API, for tests and the demo.

It serves register, event/next, init/error and exit/error on 127.0.0.1, records every call with
its timestamps, hands out INVOKE and SHUTDOWN events that the test queues, and, like Lambda,
SIGKILLs the extension process when a SHUTDOWN deadline passes. Standard library only.

Telemetry API (`PUT /2022-07-01/telemetry`): the subscription is validated as AWS does
(identifier, schema, types, buffering limits, destination host sandbox.localdomain or sandbox),
and records are delivered in batches after buffering.timeoutMs as POSTs of a JSON array to
127.0.0.1:<port>/, as AWS's emulator does. invoke() emits platform.start, runs the test's
handler (the function's runtime) in a thread, then emits platform.runtimeDone (on time, late, or
never: runtime_done=) and, once the extension has polled /event/next again, platform.report.

Lambda Managed Instances (managed=True): register with INVOKE is refused with 403
Extension.InvalidEventType, no INVOKE event is ever handed out, invoke_concurrent() runs handlers
at once, and SHUTDOWN's deadline is enforced with SIGKILL as everywhere else.
"""

import http.client
import http.server
import json
import os
import signal
import threading
import time
import urllib.parse
import uuid

API = "/2020-01-01/extension"
TELEMETRY = "/2022-07-01/telemetry"
SCHEMAS = ("2022-07-01", "2022-12-13", "2025-01-29")


class Invocation:
    """What the emulator knows of one invoke: when its runtime finished, when the extension polled
    /event/next after it (the end of the invoke), and so the post-runtime time Lambda bills."""

    def __init__(self, request_id):
        self.request_id = request_id
        self.started = time.monotonic()
        self.runtime_done = None  # monotonic, when the handler returned
        self.next_polled = None   # monotonic, the extension's first /event/next after the event
        self.ended = threading.Event()

    @property
    def post_runtime_ms(self):
        if self.runtime_done is None or self.next_polled is None:
            return None
        return max(0.0, (self.next_polled - self.runtime_done) * 1000)


class TelemetryAPI:
    """One subscription and its batched delivery to 127.0.0.1:<port>/."""

    def __init__(self, emu):
        self.emu = emu
        self.status = None        # when set, every subscription is answered with it (failure)
        self.unanswered = threading.Event()  # set: subscriptions get no answer (up to 10 s)
        self.release = threading.Event()     # ends the holding of unanswered subscriptions
        self.subscriptions = []   # the accepted subscription bodies
        self.port = None
        self.timeout_ms = None
        self.max_items = 1000
        self.deliveries = []      # (monotonic, [records], status or exception text)
        self._pending = []
        self._timer = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()

    def validate(self, call):
        """(status, body) as AWS answers a subscription."""
        if call.header("Lambda-Extension-Identifier") != self.emu.extension_id:
            return 403, {"errorType": "Extension.Forbidden",
                         "errorMessage": "missing or unknown Lambda-Extension-Identifier"}
        if self.status is not None:
            return self.status, {"errorType": "Telemetry.Failure", "errorMessage": "test says no"}
        try:
            sub = json.loads(call.body)
        except ValueError:
            return 400, {"errorType": "ValidationError", "errorMessage": "body is not JSON"}
        err = self._invalid(sub)
        if err:
            return 400, {"errorType": "ValidationError", "errorMessage": err}
        uri = urllib.parse.urlsplit(sub["destination"]["URI"])
        with self._lock:
            self.port = uri.port
            buf = sub.get("buffering") or {}
            self.timeout_ms = buf.get("timeoutMs", 1000)
            self.max_items = buf.get("maxItems", 10000)
            self.subscriptions.append(sub)
        return 200, "OK"

    def _invalid(self, sub):
        if not isinstance(sub, dict):
            return "not an object"
        schemas = ("2025-01-29",) if self.emu.managed else SCHEMAS
        if sub.get("schemaVersion") not in schemas:
            return "schemaVersion must be one of %s" % (schemas,)
        types = sub.get("types")
        if (not isinstance(types, list) or not types
                or any(t not in ("platform", "function", "extension") for t in types)):
            return "types must be a non-empty subset of platform, function, extension"
        buf = sub.get("buffering") or {}
        for key, lo, hi in (("timeoutMs", 25, 30000), ("maxItems", 1000, 10000),
                            ("maxBytes", 262144, 1048576)):
            if key in buf and not (isinstance(buf[key], int) and lo <= buf[key] <= hi):
                return "buffering.%s must be in %d..%d" % (key, lo, hi)
        dest = sub.get("destination") or {}
        if dest.get("protocol") != "HTTP":
            return "destination.protocol must be HTTP"
        try:
            uri = urllib.parse.urlsplit(dest.get("URI") or "")
            port = uri.port
        except ValueError:
            return "destination.URI does not parse"
        if uri.scheme != "http" or uri.hostname not in ("sandbox.localdomain", "sandbox"):
            return "destination.URI must be http://sandbox.localdomain:PORT/"
        if not port or port == 9001:
            return "destination.URI needs a port other than 9001"
        return None

    @property
    def subscribed(self):
        return self.port is not None

    def emit(self, type_, record):
        """Buffers one record; it is delivered timeoutMs later, with whatever came meanwhile."""
        if not self.subscribed:
            return
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z",
               "type": type_, "record": record}
        with self._lock:
            self._pending.append(rec)
            if len(self._pending) >= self.max_items:
                threading.Thread(target=self.flush, daemon=True).start()
            elif self._timer is None:
                self._timer = threading.Timer(self.timeout_ms / 1000.0, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self):
        with self._send_lock:  # batches leave in order, one at a time
            with self._lock:
                batch, self._pending = self._pending, []
                self._timer = None
                port = self.port
            if not batch or self.emu._stopping:
                return
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/", body=json.dumps(batch).encode(),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                conn.close()
                outcome = resp.status
            except OSError as e:
                outcome = "%s: %s" % (type(e).__name__, e)
            with self.emu.cond:
                self.deliveries.append((time.monotonic(), batch, outcome))
                self.emu.cond.notify_all()

    def stop(self):
        with self._lock:
            if self._timer:
                self._timer.cancel()
            self._timer = None


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

    def __init__(self, function_name="demo-function", account_id="123456789012", managed=False):
        self.managed = managed  # Lambda Managed Instances
        self.refuse_invoke = managed  # answer register with INVOKE 403 InvalidEventType
        self.telemetry = TelemetryAPI(self)
        self.invocations = []  # Invocation, in order
        self._awaiting_next = []  # invocations handed out whose /event/next has not come yet
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

            def do_PUT(self):
                call = self._record()
                if self.path != TELEMETRY:
                    self._reply(404)
                    return
                if emu.telemetry.unanswered.is_set():  # hold it, bounded: the test's end frees it
                    emu.telemetry.release.wait(10)
                    self.close_connection = True
                    return
                status, body = emu.telemetry.validate(call)
                self._reply(status, json.dumps(body).encode(),
                            [("Content-Type", "application/json")])

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
                emu._invoke_ended(call)
                event = emu._take_event()
                if event is None:  # emulator stopping
                    self.close_connection = True
                    return
                emu._handed_out(event)
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
        self.telemetry.release.set()  # a held subscription must not keep the server busy
        self.telemetry.stop()
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
        events = (call.json() or {}).get("events") or []
        if self.refuse_invoke and "INVOKE" in events:
            handler._reply(403, json.dumps({
                "errorType": "Extension.InvalidEventType",
                "errorMessage": "INVOKE is not a supported event type here"}).encode(),
                [("Content-Type", "application/json")])
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

    def _handed_out(self, event):
        with self.cond:
            for inv in self.invocations:
                if event.get("requestId") == inv.request_id and not inv.ended.is_set():
                    self._awaiting_next.append(inv)

    def _invoke_ended(self, call):
        """An /event/next after an INVOKE ends that invoke (for the extension's part): Lambda then
        emits its platform.report."""
        with self.cond:
            ended, self._awaiting_next = self._awaiting_next, []
        for inv in ended:
            inv.next_polled = call.mono
            inv.ended.set()
            self._report(inv)

    def _report(self, inv):
        end = inv.next_polled or time.monotonic()
        self.telemetry.emit("platform.report", {
            "requestId": inv.request_id, "status": "success",
            "metrics": {"durationMs": round((end - inv.started) * 1000, 3)}})

    def _run_runtime(self, inv, handler, runtime_ms, runtime_done, late_ms):
        if handler:
            handler()
        if runtime_ms:
            time.sleep(runtime_ms / 1000.0)  # the simulated runtime's own work
        inv.runtime_done = time.monotonic()
        with self.cond:
            self.cond.notify_all()
        if runtime_done == "missing":
            return
        if runtime_done == "late":
            time.sleep(late_ms / 1000.0)
        self.telemetry.emit("platform.runtimeDone", {
            "requestId": inv.request_id, "status": "success",
            "metrics": {"durationMs": round((inv.runtime_done - inv.started) * 1000, 3),
                        "producedBytes": 0}})

    # -- what the test does --
    def invoke(self, request_id=None, trace_root=None, timeout_ms=3000, tracing=None,
               handler=None, runtime_ms=0, runtime_done="on-time", late_ms=2000, start=True):
        """tracing: the tracing.value verbatim (malformed ones too); "" leaves tracing out.
        handler: the function's code, run in a thread as the runtime would (then runtime_ms more).
        runtime_done: "on-time", "late" (late_ms after the runtime finished) or "missing".
        start: whether platform.start is emitted."""
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
        inv = Invocation(request_id)
        event["invocation"] = inv
        with self.cond:
            self.invocations.append(inv)
        if start:
            self.telemetry.emit("platform.start", {"requestId": request_id, "version": "$LATEST"})
        public = {k: v for k, v in event.items() if k != "invocation"}
        with self.cond:
            self.events.append(public)
            self.cond.notify_all()
        threading.Thread(target=self._run_runtime, daemon=True,
                         args=(inv, handler, runtime_ms, runtime_done, late_ms)).start()
        return event

    def invoke_concurrent(self, handlers):
        """Managed Instances: runs every handler at once, as concurrent invokes of one
        environment; the extension sees no INVOKE event, only telemetry (start and report, no
        runtimeDone, as in AWS's emulator). Returns once every handler has returned."""
        threads = []
        for h in handlers:
            rid = str(uuid.uuid4())
            self.telemetry.emit("platform.start", {"requestId": rid, "version": "$LATEST"})

            def run(h=h, rid=rid, t0=time.monotonic()):
                h()
                self.telemetry.emit("platform.report", {
                    "requestId": rid, "status": "success",
                    "metrics": {"durationMs": round((time.monotonic() - t0) * 1000, 3)}})
            t = threading.Thread(target=run, daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(30)

    def env(self):
        """The variables Lambda gives the extension about the API and the execution model."""
        e = {"AWS_LAMBDA_RUNTIME_API": self.address}
        if self.managed:
            e["AWS_LAMBDA_INITIALIZATION_TYPE"] = "lambda-managed-instances"
        return e

    def wait_telemetry(self, count, timeout=5.0):
        """Waits until `count` telemetry batches were delivered; returns them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.telemetry.deliveries) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("waited %.1fs for %d telemetry deliveries; got %r"
                                         % (timeout, count, self.telemetry.deliveries))
                self.cond.wait(left)
            return list(self.telemetry.deliveries)

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
