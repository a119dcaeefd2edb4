"""An HTTPS remote made of nginx, for what the Python remote cannot speak: HTTP/2 (ALPN h2 and
http/1.1), TLS 1.2 and 1.3 with session tickets and a session cache, and a short keep-alive.
One nginx process on 127.0.0.1, no daemon; it logs every request as one line with its arrival
time, TLS version, whether the TLS session was resumed, the HTTP version and nginx's connection
number, which is how tests and the benchmark count uploads and connections.

It reads each body whole before answering 200, as a Pyroscope server does (proxy_pass to a
second server in the same nginx that answers 200): with a bare "return 200", nginx answers an
HTTP/2 upload at its headers and resets the stream, which curl 7.88 reports as a stream error.
The two servers talk over a unix socket: over loopback TCP, nginx's upstream writes (headers, then
body) meet Nagle and a delayed ACK, and some requests were logged 40 ms late."""

import os
import shutil
import signal
import subprocess
import time


def nginx_path():
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NginxTlsSink:
    FIELDS = ("msec", "uri", "tls", "reused", "proto", "conn", "status")

    def __init__(self, work, cert_dir, keepalive_s=2, spawn=subprocess.Popen,
                 keepalive_requests=1000, protocols="TLSv1.2 TLSv1.3"):
        """cert_dir holds srv.pem and srv.key (test/support/tlsca.py). keepalive_requests: how
        many requests a connection serves before nginx ends it (over HTTP/2 with a GOAWAY, as
        load balancers do; nginx's default is 1000). protocols: nginx's ssl_protocols. keepalive_s
        may be a fraction (nginx is given milliseconds)."""
        self.dir = os.path.join(work, "nginx-tls")
        os.makedirs(self.dir, exist_ok=True)
        self.port = _free_port()
        self.log = os.path.join(self.dir, "access.log")
        d = self.dir
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off; master_process off; worker_processes 1;
error_log %(d)s/error.log; pid %(d)s/nginx.pid;
events { worker_connections 1024; }
http {
  log_format up "$msec $request_uri $ssl_protocol $ssl_session_reused $server_protocol $connection $status";
  access_log %(d)s/access.log up;
  client_body_temp_path %(d)s/body; proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi; uwsgi_temp_path %(d)s/uwsgi; scgi_temp_path %(d)s/scgi;
  client_max_body_size 64m; keepalive_timeout %(ka)dms; keepalive_requests %(kr)d;
  ssl_protocols %(protocols)s; ssl_session_tickets on;
  ssl_session_cache shared:ple:1m; ssl_session_timeout 10m;
  upstream back { server unix:%(d)s/back.sock; keepalive 16; }
  server {
    listen 127.0.0.1:%(port)d ssl http2;
    ssl_certificate %(c)s/srv.pem; ssl_certificate_key %(c)s/srv.key;
    location / { proxy_pass http://back; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server { listen unix:%(d)s/back.sock; access_log off; keepalive_timeout 300s;
           keepalive_requests 1000000;
           location / { return 200; } }
}
""" % {"d": d, "port": self.port, "c": cert_dir, "ka": keepalive_s * 1000,
       "kr": keepalive_requests, "protocols": protocols})
        open(self.log, "w").close()
        self.proc = spawn([nginx_path(), "-e", os.path.join(d, "error.log"), "-p", d, "-c", conf],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        self.url = "https://localhost:%d" % self.port
        self._offset = 0
        self.records = []
        self._wait_listening(5.0)

    def _wait_listening(self, timeout):
        import socket
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited with %s: %s" % (self.proc.returncode, self.errors()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("nginx is not listening on %d after %.0f s" % (self.port, timeout))

    def errors(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def read(self):
        """Every request logged so far: dicts of FIELDS, msec as float, seq (the query's seq=N)."""
        with open(self.log, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].decode().splitlines():
            r = dict(zip(self.FIELDS, line.split(" ")))
            r["msec"] = float(r["msec"])
            q = r["uri"].partition("?")[2]
            r["seq"] = next((int(kv[4:]) for kv in q.split("&") if kv.startswith("seq=")), None)
            self.records.append(r)
        return self.records

    def wait_seqs(self, seqs, timeout=20.0):
        """The records of these sequence numbers, in the order given, once all have arrived."""
        want = set(seqs)
        deadline = time.monotonic() + timeout
        while True:
            got = {r["seq"]: r for r in self.read() if r["seq"] in want}
            if len(got) == len(want):
                return [got[s] for s in seqs]
            if time.monotonic() > deadline:
                raise AssertionError("the sink did not receive uploads %s within %.0f s"
                                     % (sorted(want - set(got)), timeout))
            time.sleep(0.002)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
