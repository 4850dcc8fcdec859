#!/usr/bin/env python3
"""/exec (JSON) and /exp (CSV) as curl and tools use them: plain GETs.

usage: sql_http.py PORT

Writes rows of every QuestDB type (SQL through /exec itself, and a
DataFrame through the official client), then checks, value by value
against text computed here from the values written: /exec's JSON shape
(query, columns with QuestDB type names, the designated timestamp's
index, dataset, count, timings), limit=n
and limit=lo,hi, count=true, errors as HTTP 400 with error and position,
DDL and INSERT answers; /exp's CSV (header, quoting, NULLs) read with the
csv module; a 3,000,000-row export streamed (chunked) to the end, one
abandoned after its first bytes, and the server still answering. Exits
non-zero on any difference; prints "ok" at the end.
"""
import csv
import datetime as dt
import io
import ipaddress
import json
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pandas as pd
import questdb

port = int(sys.argv[1])
base = f"http://127.0.0.1:{port}"
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


def get(path, **params):
    """(status, content type, body bytes) of GET path?params."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


def exec_json(query, **params):
    status, ctype, body = get("/exec", query=query, **params)
    if not ctype.startswith("application/json"):
        failures.append(f"{query!r}: content type {ctype!r}")
    return status, json.loads(body)


def iso(seconds, fraction, digits):
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:0{digits}d}Z"


# DDL and INSERT through /exec.
status, body = exec_json(
    "CREATE TABLE h (b BOOLEAN, by BYTE, c CHAR, i INT, l LONG, f FLOAT, d DOUBLE, dt DATE, "
    "sym SYMBOL, v VARCHAR, u UUID, ip IPV4, l256 LONG256, g GEOHASH(2c), gb GEOHASH(3b), "
    "dec DECIMAL(12, 3), arr DOUBLE[][], la LONG[], bin BINARY, tsn TIMESTAMP_NS, ts TIMESTAMP) "
    "TIMESTAMP(ts) PARTITION BY DAY")
check("CREATE TABLE answer", (status, body), (200, {"ddl": "OK"}))
U = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
status, body = exec_json(
    "INSERT INTO h VALUES (true, -3, 'Ω', 42, -9000000000, 0.5, 2.0, '1999-12-31T23:59:59.999Z', "
    f"'sym,\"q\"', 'line\nbreak', '{U}', '10.0.0.255', '0xabc', 'dr', 'dr', -1.5, "
    "make_array(make_array(1.5, -2.0)), make_array(3, 4), 'bytes', 1000000001, "
    "'2024-01-02T03:04:05.000006Z'), "
    "(false, 0, 'a', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, '2024-01-03T00:00:00Z')")
check("INSERT answer", (status, body), (200, {"dml": "OK"}))
status, body = exec_json("CREATE TABLE gone (x INT)")
status, body = exec_json("DROP TABLE gone")
check("DROP TABLE answer", (status, body), (200, {"ddl": "OK"}))
status, body = exec_json("SELECT * FROM gone")
check("a dropped table is gone", status, 400)

b32 = "0123456789bcdefghjkmnpqrstuvwxyz"
geo10 = b32.index("d") * 32 + b32.index("r")
want_row0 = [
    True, -3, "Ω", 42, -9000000000, 0.5, 2.0, iso(946684799, 999, 3), 'sym,"q"', "line\nbreak",
    str(uuid.UUID(U)), str(ipaddress.IPv4Address("10.0.0.255")), hex(0xABC), "dr",
    format(geo10 >> 7, "03b"), -1.5, [[1.5, -2.0]], [3, 4], "0x" + b"bytes".hex(),
    iso(1, 1, 9), iso(1704164645, 6, 6),
]
want_row1 = [False, 0, "a"] + [None] * 17 + [iso(1704240000, 0, 6)]
want_types = ["BOOLEAN", "BYTE", "CHAR", "INT", "LONG", "FLOAT", "DOUBLE", "DATE", "SYMBOL",
              "VARCHAR", "UUID", "IPv4", "LONG256", "GEOHASH(2c)", "GEOHASH(3b)",
              "DECIMAL(18,3)", "DOUBLE[]", "LONG[]", "BINARY", "TIMESTAMP_NS", "TIMESTAMP"]
names = ["b", "by", "c", "i", "l", "f", "d", "dt", "sym", "v", "u", "ip", "l256", "g", "gb",
         "dec", "arr", "la", "bin", "tsn", "ts"]

status, body = exec_json("SELECT * FROM h")
check("SELECT status", status, 200)
check("query echo", body.get("query"), "SELECT * FROM h")
check("columns", body.get("columns"), [{"name": n, "type": t} for n, t in zip(names, want_types)])
check("timestamp (index of ts)", body.get("timestamp"), names.index("ts"))
check("count", body.get("count"), 2)
dataset = body.get("dataset", [])
check("row 0", dataset[0] if dataset else None, want_row0)
check("row 1", dataset[1] if len(dataset) > 1 else None, want_row1)

# limit, count and timings over long_sequence.
status, body = exec_json("SELECT x FROM long_sequence(100)", limit="5")
check("limit=5", (body["dataset"], body["count"]), ([[i] for i in range(1, 6)], 5))
check("no designated timestamp", body["timestamp"], -1)
status, body = exec_json("SELECT i, ts AS t2 FROM h")
check("designated timestamp under an alias", body["timestamp"], 1)
# Columns of the same name from a join are told apart as QuestDB does.
status, body = exec_json("SELECT * FROM h a JOIN h b ON a.i = b.i")
check("join status", status, 200)
check("join column names", [c["name"] for c in body.get("columns", [])],
      names + [n + "1" for n in names])
# SAMPLE BY's buckets are the result's designated timestamp, as in QuestDB.
status, body = exec_json("SELECT count(), ts FROM h SAMPLE BY 1d FILL(NULL)")
check("SAMPLE BY status", status, 200)
check("SAMPLE BY designated timestamp", body.get("timestamp"), 1)
status, body = exec_json("SELECT x FROM long_sequence(100)", limit="10,13", count="true")
check("limit=10,13 count=true", (body["dataset"], body["count"]), ([[11], [12], [13]], 100))
status, body = exec_json("SELECT x * 2 AS y FROM long_sequence(3)", timings="true")
t = body.get("timings", {})
check("timings keys", sorted(t), ["authentication", "compiler", "count", "execute"])
check("timings are numbers", all(isinstance(v, int) and v >= 0 for v in t.values()), True)

# Errors: 400 with the query, the message and a position.
for query, fragment in [("SELEC 1", "selec"), ("SELECT * FROM nowhere", "nowhere"),
                        ("SELECT nope FROM h", "nope"), ("ALTER TABLE h DETACH PARTITION LIST '2024-01-01'", "DETACH PARTITION"),
                        # Fails computing its first rows, not planning.
                        ("SELECT 'nope'::ipv4", "not an IPv4 address")]:
    status, body = exec_json(query)
    check(f"{query!r} status", status, 400)
    check(f"{query!r} shape", sorted(body), ["error", "position", "query"])
    if fragment.lower() not in str(body.get("error", "")).lower():
        failures.append(f"{query!r}: error {body.get('error')!r} lacks {fragment!r}")
status, body = exec_json("SELECT 1\nFROM t t2 t3")
check("position of a parse error", (status, body.get("position")), (400, 19))
status, body = exec_json("SELECT 1 FROM")
check("position of an unfinished statement", (status, body.get("position")), (400, 13))
status, ctype, body = get("/exec")
check("no query parameter", (status, "error" in json.loads(body)), (400, True))
status, ctype, body = get("/exec", query="SELECT 1", limit="x")
check("bad limit", status, 400)

# A DataFrame through the official client, read back through /exec.
with questdb.connect(f"ws::addr=127.0.0.1:{port};") as db:
    db.dataframe(pd.DataFrame({"name": ["a", "b,c", None], "px": [1.25, None, -3.0],
                               "ts": pd.to_datetime([1, 2, 3], unit="s", utc=True)}),
                 table_name="df", at="ts")
status, body = exec_json("SELECT name, px, timestamp FROM df")
check("DataFrame via /exec", body["dataset"],
      [["a", 1.25, iso(1, 0, 6)], ["b,c", None, iso(2, 0, 6)], [None, -3.0, iso(3, 0, 6)]])

# /exp: CSV with a quoted header, RFC 4180 quoting, NULL as empty.
status, ctype, body = get("/exp", query="SELECT i, sym, v, d, ts FROM h")
check("/exp status and type", (status, ctype.split(";")[0]), (200, "text/csv"))
rows = list(csv.reader(io.StringIO(body.decode())))
check("/exp header", rows[0], ["i", "sym", "v", "d", "ts"])
check("/exp row 0", rows[1], ["42", 'sym,"q"', "line\nbreak", "2.0", iso(1704164645, 6, 6)])
check("/exp row 1", rows[2], ["", "", "", "", iso(1704240000, 0, 6)])
status, ctype, body = get("/exp", query="SELECT x FROM long_sequence(10)", limit="2,4")
check("/exp limit", body.decode().split("\n"), ['"x"', "3", "4", ""])

# A large export streams to the end.
N = 3_000_000
url = f"{base}/exp?" + urllib.parse.urlencode({"query": f"SELECT x, x * 0.5 AS h FROM long_sequence({N})"})
with urllib.request.urlopen(url, timeout=300) as r:
    check("large export is chunked", r.headers.get("transfer-encoding"), "chunked")
    lines, last = 0, b""
    for line in r:
        lines += 1
        last = line
check("large export lines", lines, N + 1)
check("large export last line", last, f"{N},{N * 0.5}\n".encode())

# A client that goes away mid-export; the server goes on serving.
s = socket.create_connection(("127.0.0.1", port))
q = urllib.parse.quote(f"SELECT x FROM long_sequence(1000000000)")
s.sendall(f"GET /exp?query={q} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
first = s.recv(65536)
check("abandoned export started", first.startswith(b"HTTP/1.1 200"), True)
s.close()
status, body = exec_json("SELECT count(*) AS n FROM h")
check("after an abandoned export", body.get("dataset"), [[2]])

if failures:
    for f in failures:
        print("MISMATCH", f[:2000])
    sys.exit(1)
print("ok")
