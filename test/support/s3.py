"""A small S3 for the tests: PUT Object, GET Object and ListObjectsV2 (enough for the AWS CLI's
`aws s3 cp --recursive`) with path-style addressing on 127.0.0.1, every
request authenticated with AWS Signature Version 4 (Authorization header form), which this module
verifies itself. The verifier is checked against AWS's published examples in test_s3_sigv4.py.

It keeps objects in memory, records every request (headers included), and answers like S3: 200
with an ETag, or an XML <Error> with S3's codes (SignatureDoesNotMatch, InvalidAccessKeyId,
AccessDenied for a bad session token, NoSuchBucket, MissingContentSha256...)."""

import calendar
import hashlib
import hmac
import http.server
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape as xml_escape

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _uri_encode(s, keep_slash):
    safe = "-_.~" + ("/" if keep_slash else "")
    return urllib.parse.quote(s, safe=safe)


def canonical_query(query):
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    enc = sorted((_uri_encode(k, False), _uri_encode(v, False)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def canonical_request(method, path, query, headers, signed, payload_hash):
    """headers: list of (name, value) as received. S3 does not normalise the path."""
    values = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(" ".join(value.strip().split()))
    lines = "".join(f"{h}:{','.join(values.get(h, []))}\n" for h in signed)
    return "\n".join([method, path, canonical_query(query), lines, ";".join(signed), payload_hash])


def string_to_sign(amz_date, scope, creq):
    digest = hashlib.sha256(creq.encode()).hexdigest()
    return "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, digest])


def signature(secret, amz_date, region, service, creq):
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    key = signing_key(secret, amz_date[:8], region, service)
    return hmac.new(key, string_to_sign(amz_date, scope, creq).encode(), hashlib.sha256).hexdigest()


def parse_authorization(value):
    """'AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=a;b,
    Signature=hex' -> dict, or None."""
    if not value or not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    fields = {}
    for part in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        akid, date, region, service, term = fields["Credential"].split("/")
        return {"akid": akid, "date": date, "region": region, "service": service, "term": term,
                "signed": fields["SignedHeaders"].split(";"), "signature": fields["Signature"]}
    except (KeyError, ValueError):
        return None


def verify(method, raw_path, headers, body, credentials):
    """Returns (None, auth) when the request is authentic, else (error code, message).
    credentials: {akid: (secret, session token or None)}."""
    path, _, query = raw_path.partition("?")
    h = {}
    for name, value in headers:
        h.setdefault(name.lower(), value)
    auth = parse_authorization(h.get("authorization"))
    if not auth or auth["term"] != "aws4_request":
        return "AccessDenied", "missing or malformed Authorization header"
    if auth["akid"] not in credentials:
        return "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist"
    secret, token = credentials[auth["akid"]]
    for must in ("host", "x-amz-date", "x-amz-content-sha256"):
        if must not in h:
            code = "MissingContentSha256" if must == "x-amz-content-sha256" else "AccessDenied"
            return code, f"missing header {must}"
        if must not in auth["signed"]:
            return "AccessDenied", f"header {must} is not signed"
    if token is not None:
        if h.get("x-amz-security-token") != token:
            return "InvalidToken", "The provided token is malformed or otherwise invalid"
        if "x-amz-security-token" not in auth["signed"]:
            return "AccessDenied", "x-amz-security-token is not signed"
    for name in h:
        if name.startswith("x-amz-") and name not in auth["signed"]:
            return "AccessDenied", f"{name} is not signed"
    payload = h["x-amz-content-sha256"]
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return "XAmzContentSHA256Mismatch", "the body does not match x-amz-content-sha256"
    amz_date = h["x-amz-date"]
    if amz_date[:8] != auth["date"]:
        return "AccessDenied", "the credential date does not match x-amz-date"
    try:
        skew = abs(time.time() - calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return "AccessDenied", "bad x-amz-date"
    if skew > 900:
        return "RequestTimeTooSkewed", "more than 15 minutes from the server's time"
    creq = canonical_request(method, path, query, headers, auth["signed"], payload)
    want = signature(secret, amz_date, auth["region"], auth["service"], creq)
    if not hmac.compare_digest(want, auth["signature"]):
        return "SignatureDoesNotMatch", ("The request signature we calculated does not match the "
                                         "signature you provided. Check your key and signing "
                                         "method.")
    return None, auth


class S3Server:
    """S3 on 127.0.0.1:port with path-style addressing. buckets: names that exist."""

    def __init__(self, port, buckets, credentials, region="us-east-1"):
        self.port = port
        self.buckets = set(buckets)
        self.credentials = credentials
        self.region = region
        self.objects = {}  # (bucket, key) -> (body, headers dict lower-cased)
        self.requests = []  # dicts: method, path, headers, status, error
        self.status_override = []  # statuses to answer next, before verifying (e.g. 503)
        self.delay = 0.0  # seconds to wait before answering each request
        self.cond = threading.Condition()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _answer(self, status, body=b"", ctype="application/xml", extra=(), error=None):
                # Recorded before the first byte leaves: a client may act on the answer (the
                # extension's next /event/next, its exit) before this thread runs again, and a
                # test that sees it act must see the record.
                rec = self._rec
                rec["status"], rec["error"], rec["answered"] = status, error, time.monotonic()
                with server.cond:
                    server.requests.append(rec)
                    server.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status, code, message):
                xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
                       f"<Message>{message}</Message></Error>").encode()
                self._answer(status, xml, error=code)

            def _handle(self):
                if self.headers.get("Expect", "").lower() == "100-continue":
                    self.send_response_only(100)
                    self.end_headers()
                body = self._body() if self.command == "PUT" else b""
                headers = list(self.headers.items())
                self._rec = {"arrived": time.monotonic(), "method": self.command,
                             "path": self.path, "headers": {k.lower(): v for k, v in headers},
                             "body": body, "status": 0, "error": None, "answered": None}
                if server.delay:
                    time.sleep(server.delay)
                server._serve(self, self._rec, headers, body)  # answers (and records) once

            do_PUT = do_GET = do_HEAD = _handle

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _serve(self, h, rec, headers, body):
        """Answers h once, through h._answer, which records the request with its status."""
        with self.cond:
            override = self.status_override.pop(0) if self.status_override else None
        if override:
            h._error(override, "SlowDown" if override == 503 else "InternalError",
                     "injected by the test")
            return
        err, info = verify(h.command, h.path, headers, body, self.credentials)
        if err:
            status = 400 if err in ("MissingContentSha256", "XAmzContentSHA256Mismatch") else 403
            h._error(status, err, info)
            return
        if info["region"] != self.region or info["service"] != "s3":
            h._error(400, "AuthorizationHeaderMalformed", f"wrong region or service: {info}")
            return
        path = urllib.parse.unquote(h.path.partition("?")[0])
        bucket, _, key = path.lstrip("/").partition("/")
        if bucket not in self.buckets:
            h._error(404, "NoSuchBucket", "The specified bucket does not exist")
            return
        if h.command == "PUT":
            with self.cond:
                self.objects[(bucket, key)] = (body, dict(rec["headers"], __stored=time.time()))
            h._answer(200, b"", extra=[("ETag", '"' + hashlib.md5(body).hexdigest() + '"')])
            return
        if h.command == "GET" and not key:
            self._list(h, bucket, urllib.parse.parse_qs(h.path.partition("?")[2]))
            return
        obj = self.objects.get((bucket, key))
        if not obj:
            h._error(404, "NoSuchKey", "The specified key does not exist.")
            return
        h._answer(200, obj[0], ctype="application/octet-stream")

    def _list(self, h, bucket, params):
        """ListObjectsV2 (GET /bucket?list-type=2&prefix=...), what `aws s3 cp --recursive` and
        `aws s3 ls` call first. One page: the tests store far fewer than 1000 objects."""
        if params.get("list-type") != ["2"]:
            h._error(400, "InvalidArgument", "only ListObjectsV2 (list-type=2) is implemented")
            return
        prefix = params.get("prefix", [""])[0]
        url = params.get("encoding-type") == ["url"]
        enc = (lambda k: urllib.parse.quote(k, safe="/")) if url else xml_escape
        with self.cond:
            keys = sorted(k for (b, k) in self.objects if b == bucket and k.startswith(prefix))
            objs = [(k, self.objects[(bucket, k)]) for k in keys]
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n'
               '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
               f"<Name>{bucket}</Name><Prefix>{enc(prefix)}</Prefix><KeyCount>{len(objs)}</KeyCount>"
               "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"]
        if url:
            out.append("<EncodingType>url</EncodingType>")
        for key, (body, headers) in objs:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(headers["__stored"]))
            out.append(f"<Contents><Key>{enc(key)}</Key><LastModified>{stamp}</LastModified>"
                       f"<ETag>&quot;{hashlib.md5(body).hexdigest()}&quot;</ETag>"
                       f"<Size>{len(body)}</Size><StorageClass>STANDARD</StorageClass></Contents>")
        out.append("</ListBucketResult>")
        h._answer(200, "".join(out).encode())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_for(self, pred, timeout=10.0):
        """Waits until pred(requests) is true; returns the requests."""
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.requests):
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"S3 condition not met in {timeout}s: "
                                         f"{[(r['method'], r['path'], r['status']) for r in self.requests]}")
                self.cond.wait(left)
            return list(self.requests)
