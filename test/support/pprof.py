"""Builds real pprof profiles (gzipped protobuf, the format Pyroscope's Go and .NET clients send)
and the multipart/form-data body those clients upload. Standard library only: the protobuf
encoding is written out by hand for the few messages a profile needs."""

import gzip
import random
import time
import uuid


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(num, value):
    return _varint(num << 3) + _varint(value)


def _field_bytes(num, data):
    return _varint((num << 3) | 2) + _varint(len(data)) + data


def _packed(num, values):
    return _field_bytes(num, b"".join(_varint(v) for v in values))


def build_profile(stacks, sample_type=("cpu", "nanoseconds"), period=10_000_000):
    """stacks: list of (["main", "handler", "leaf"], value) with the root first.
    Returns the serialised (not gzipped) Profile message."""
    strings = [""]
    index = {"": 0}

    def s(text):
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return index[text]

    functions, locations, samples = {}, {}, []
    for frames, value in stacks:
        loc_ids = []
        for name in reversed(frames):  # pprof lists the leaf first
            if name not in functions:
                functions[name] = len(functions) + 1
                locations[name] = len(locations) + 1
            loc_ids.append(locations[name])
        samples.append((loc_ids, value))

    out = bytearray()
    out += _field_bytes(1, _field_varint(1, s(sample_type[0])) + _field_varint(2, s(sample_type[1])))
    for loc_ids, value in samples:
        out += _field_bytes(2, _packed(1, loc_ids) + _packed(2, [value]))
    for name, lid in locations.items():
        line = _field_varint(1, functions[name]) + _field_varint(2, 1)
        out += _field_bytes(4, _field_varint(1, lid) + _field_bytes(4, line))
    for name, fid in functions.items():
        out += _field_bytes(5, _field_varint(1, fid) + _field_varint(2, s(name))
                            + _field_varint(3, s(name)) + _field_varint(4, s("main.go")))
    for text in strings:
        out += _field_bytes(6, text.encode())
    out += _field_varint(9, time.time_ns())
    out += _field_varint(10, 10_000_000_000)
    out += _field_bytes(11, _field_varint(1, s(sample_type[0])) + _field_varint(2, s(sample_type[1])))
    out += _field_varint(12, period)
    return bytes(out)


def random_cpu_profile(rng=None, n_stacks=40):
    rng = rng or random.Random()
    names = ["main.main", "lambda.Start", "handler.Handle", "json.Unmarshal", "sql.Query",
             "http.Do", "crypto.Sign", "strings.Builder", "runtime.mallocgc", "sort.Slice"]
    stacks = []
    for _ in range(n_stacks):
        depth = rng.randint(2, 7)
        frames = ["main.main"] + rng.sample(names[1:], depth - 1)
        stacks.append((frames, rng.randint(1, 50) * 10_000_000))
    return gzip.compress(build_profile(stacks), mtime=0)


def multipart(parts, boundary=None):
    """parts: list of (field name, file name, bytes). Returns (content type, body)."""
    boundary = boundary or uuid.uuid4().hex
    body = bytearray()
    for name, filename, data in parts:
        body += b"--" + boundary.encode() + b"\r\n"
        body += (b'Content-Disposition: form-data; name="%s"; filename="%s"\r\n'
                 % (name.encode(), filename.encode()))
        body += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    body += b"--" + boundary.encode() + b"--\r\n"
    return "multipart/form-data; boundary=" + boundary, bytes(body)


def go_client_upload(app="demo.app", labels=None, rng=None):
    """The request pyroscope-go sends: (path with query, headers, body)."""
    labels = labels or {}
    key = app + "{" + ",".join("%s=%s" % kv for kv in sorted(labels.items())) + "}"
    now = int(time.time())
    from urllib.parse import quote
    query = "name=%s&from=%d&until=%d&spyName=gospy&sampleRate=100&units=&aggregationType=" % (
        quote(key, safe=""), now - 10, now)
    ctype, body = multipart([("profile", "profile.pprof", random_cpu_profile(rng)),
                             ("sample_type_config", "sample_type_config.json",
                              b'{"cpu":{"units":"samples","sampled":true}}')])
    return "/ingest?" + query, {"Content-Type": ctype, "User-Agent": "pyroscope-go/demo"}, body
