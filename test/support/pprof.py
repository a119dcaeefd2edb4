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


# ---- reading: enough of a pprof reader to prove that a stored object is the profile ----

def _read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def _fields(buf):
    """Yields (field number, wire type, value) of a protobuf message: an int for varints, bytes
    for length-delimited fields. Raises ValueError on anything malformed or unexpected."""
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0 at offset %d" % i)
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            n, i = _read_varint(buf, i)
            if i + n > len(buf):
                raise ValueError("length-delimited field %d runs past the end" % num)
            value, i = buf[i:i + n], i + n
        else:
            raise ValueError("wire type %d of field %d is not used by pprof" % (wire, num))
        yield num, wire, value


def field_numbers(buf):
    """The field numbers of a protobuf message, in order. Raises ValueError when malformed."""
    return [num for num, _, _ in _fields(buf)]


def _ints(wire, value):
    """A repeated integer field: packed (wire 2) or one varint (wire 0)."""
    if wire == 0:
        return [value]
    out, i = [], 0
    while i < len(value):
        v, i = _read_varint(value, i)
        out.append(v)
    return out


def read_profile(data):
    """Decodes a pprof Profile (gzipped or not). Returns {"sample_types": [(type, unit)],
    "stacks": [([frames, root first], [values])], "period": n}."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    strings, sample_types, samples, locations, functions = [], [], [], {}, {}
    period = 0
    for num, wire, value in _fields(data):
        if num == 1:  # ValueType sample_type
            vt = {n: v for n, _, v in _fields(value)}
            sample_types.append((vt.get(1, 0), vt.get(2, 0)))
        elif num == 2:  # Sample
            locs, vals = [], []
            for n, w, v in _fields(value):
                if n == 1:
                    locs += _ints(w, v)
                elif n == 2:
                    vals += _ints(w, v)
            samples.append((locs, vals))
        elif num == 4:  # Location: id, lines (function ids)
            lid, funcs = 0, []
            for n, w, v in _fields(value):
                if n == 1:
                    lid = v
                elif n == 4:
                    funcs += [fv for fn, _, fv in _fields(v) if fn == 1]
            locations[lid] = funcs
        elif num == 5:  # Function: id, name (string index)
            f = {n: v for n, _, v in _fields(value)}
            functions[f.get(1, 0)] = f.get(2, 0)
        elif num == 6:
            strings.append(value.decode())
        elif num == 12:
            period = value

    def name(fid):
        return strings[functions[fid]]

    stacks = []
    for locs, vals in samples:
        frames = [name(fid) for lid in locs for fid in reversed(locations[lid])]
        stacks.append((list(reversed(frames)), vals))  # pprof lists the leaf first
    return {"sample_types": [(strings[t], strings[u]) for t, u in sample_types],
            "stacks": stacks, "period": period}
