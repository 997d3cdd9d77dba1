"""Hand test of the Python mobync 0.2.0 baseline (or any server with the same
interface): prints every request/answer pair, checks the happy path, and
shows where the behaviour differs from PROTOCOL.md.

    .venv/bin/python smoke.py http://127.0.0.1:PORT   (stdlib only; loopback only)

Exit status 0 when the happy path (signup, create, a second device receiving
it, an update, clocks advancing as in PROTOCOL.md's worked example) works.
"""

import json
import sys
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlparse

BASE = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8001").rstrip("/")
assert urlparse(BASE).hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
FAILED = []


def call(path, body, raw=None, show=True):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if show:
        shown = raw.decode(errors="replace") if raw is not None else json.dumps(body)
        print("  -> POST {} {}".format(path, shown))
        print("  <- {} {}".format(status, text))
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def check(what, ok):
    print("  [{}] {}".format("ok" if ok else "FAIL", what))
    if not ok:
        FAILED.append(what)


TS = [1_700_000_000_000]


def diff(kind, model, data, clock=0, did=None, as_object=False, **extra):
    TS[0] += 1
    d = {"id": did or str(uuid.uuid1()), "owner": "placeholder", "logical_clock": clock,
         "utc_timestamp": TS[0], "type": kind, "model": model,
         "json_data": data if as_object else json.dumps(data)}
    d.update(extra)
    return d


def sync(token, cursor, diffs, show=True):
    return call("/sync", {"auth_token": token, "logical_clock": cursor, "diffs": diffs}, show=show)


def ids(answer):
    return [json.loads(d["json_data"])["id"] for d in answer.get("diffs", [])] if isinstance(answer, dict) else None


def section(title):
    print("\n== " + title)


section("health")
with urllib.request.urlopen(BASE + "/health", timeout=5) as r:
    print("  <- GET /health", r.status, r.read().decode())
    check("GET /health is 200", r.status == 200)

section("signup")
st, acct = call("/signup", {"name": "ada"})
check("signup answers auth_token and owner", st == 200 and {"auth_token", "owner"} <= set(acct))
st, acct2 = call("/signup", {"name": "ada"})
check("a new owner each call", st == 200 and acct2["owner"] != acct["owner"])
tok, other = acct["auth_token"], acct2["auth_token"]

section("PROTOCOL.md worked example: devices A and B of one owner")
st, a = sync(tok, 0, [diff("create", "task", {"id": "r1", "title": "one", "done": False})])
check("A create r1 -> clock 1, no diffs", st == 200 and a["logical_clock"] == 1 and a["diffs"] == [])
st, b = sync(tok, 0, [diff("create", "task", {"id": "r3", "title": "three", "done": False})])
check("B (cursor 0, r3) -> r1, clock 2", st == 200 and ids(b) == ["r1"] and b["logical_clock"] == 2)
st, a = sync(tok, 1, [diff("create", "project", {"id": "r2", "name": "two"}, clock=1)])
check("A (cursor 1, r2) -> r3, clock 3", st == 200 and ids(a) == ["r3"] and a["logical_clock"] == 3)
st, b = sync(tok, 2, [])
check("B (cursor 2, nothing) -> r2, clock stays 3", st == 200 and ids(b) == ["r2"] and b["logical_clock"] == 3)
check("answered json_data is a string", isinstance(b["diffs"][0]["json_data"], str))
check("answered owner is the real owner", b["diffs"][0]["owner"] == acct["owner"])
st, b = sync(tok, 3, [])
check("B (cursor 3, nothing) -> no diffs, clock 3", st == 200 and b["diffs"] == [] and b["logical_clock"] == 3)

section("update: A renames r1, B receives it")
st, a = sync(tok, 3, [diff("update", "task", {"id": "r1", "title": "one!", "done": True}, clock=3)])
check("A update -> clock 4", st == 200 and a["logical_clock"] == 4 and a["diffs"] == [])
st, b = sync(tok, 3, [])
check("B (cursor 3) -> the update, clock 4",
      st == 200 and b["logical_clock"] == 4 and [d["type"] for d in b["diffs"]] == ["update"])

section("differences from PROTOCOL.md (observed, not checked)")

print("\n-- retry of an accepted request (same cursor, same diffs)")
req = [diff("create", "task", {"id": "r5", "title": "five", "done": False}, clock=4)]
sync(tok, 4, req)
sync(tok, 4, req)

print("\n-- retry of an accepted update")
upd = [diff("update", "task", {"id": "r1", "title": "retried"}, clock=5)]
sync(tok, 5, upd)
sync(tok, 5, upd)

print("\n-- concurrent field updates: A newer (ts high) syncs first, B older syncs last")
TS[0] += 1000
newer = diff("update", "task", {"id": "r3", "title": "A newer"}, clock=6)
TS[0] -= 500
older = diff("update", "task", {"id": "r3", "title": "B older"}, clock=6)
TS[0] += 1000
sync(tok, 6, [newer])
sync(tok, 6, [older])
sync(tok, 0, [], show=False)
print("  (server row r3 now:)", end=" ")
st, c = sync(tok, 0, [], show=False)
print([json.loads(d["json_data"]) for d in c["diffs"] if json.loads(d["json_data"])["id"] == "r3"][-1])

print("\n-- delete in S vs update in L: A deletes r2, B (stale) updates r2")
st, a = sync(tok, 8, [diff("delete", "project", {"id": "r2"}, clock=8)])
sync(tok, 8, [diff("update", "project", {"id": "r2", "name": "stale"}, clock=8)])

print("\n-- a row created and deleted offline in one request")
sync(tok, 9, [diff("create", "task", {"id": "r9", "title": "nine", "done": False}, clock=9),
              diff("delete", "task", {"id": "r9"}, clock=9)])
print("  (what another device at cursor 9 receives:)")
sync(tok, 9, [])

print("\n-- two local updates of one field in one request (older one last)")
TS[0] += 100
second = diff("update", "task", {"id": "r1", "title": "newest"}, clock=10)
TS[0] -= 50
first = diff("update", "task", {"id": "r1", "title": "older"}, clock=10)
TS[0] += 100
sync(tok, 10, [second, first])

print("\n-- own diffs echoed: cursor older than the device's own accepted diffs")
sync(tok, 10, [])

print("\n-- cursor ahead of the owner's clock")
sync(tok, 999, [])
print("\n-- negative cursor")
sync(tok, -1, [])
print("\n-- cursor as a string / float / bool")
sync(tok, "3", [], show=True)
sync(tok, 3.9, [], show=True)
sync(tok, True, [], show=True)

print("\n-- json_data as an object")
sync(tok, 11, [diff("create", "task", {"id": "o1", "title": "obj", "done": False}, clock=11, as_object=True)])
print("\n-- diff without owner / with empty owner")
d = diff("create", "task", {"id": "o2", "title": "x", "done": False}, clock=11)
del d["owner"]
sync(tok, 11, [d])
sync(tok, 11, [diff("create", "task", {"id": "o3", "title": "x", "done": False}, clock=11, owner="")])
print("\n-- delete without json_data")
d = diff("delete", "task", {"id": "r1"}, clock=11)
del d["json_data"]
sync(tok, 11, [d])
print("\n-- unknown type / negative timestamp")
sync(tok, 11, [diff("upsert", "task", {"id": "x"}, clock=11)])
sync(tok, 11, [diff("create", "task", {"id": "x", "title": "x", "done": False}, clock=11, utc_timestamp=-5)])
print("\n-- unknown model / unknown field / wrong type / missing field / update of id-less")
sync(tok, 11, [diff("create", "note", {"id": "n1"}, clock=11)])
sync(tok, 11, [diff("create", "task", {"id": "n2", "title": "x", "done": False, "color": "red"}, clock=11)])
sync(tok, 11, [diff("create", "task", {"id": "n3", "title": "x", "done": "no"}, clock=11)])
sync(tok, 11, [diff("create", "task", {"id": "n4", "title": "x"}, clock=11)])
print("\n-- the same diff id twice in one request")
dup = diff("create", "task", {"id": "n5", "title": "x", "done": False}, clock=11)
dup2 = dict(dup, json_data=json.dumps({"id": "n6", "title": "y", "done": False}))
sync(tok, 11, [dup, dup2])
print("\n-- another owner updates this owner's row / creates a taken row id")
sync(other, 0, [diff("update", "task", {"id": "r1", "title": "mine now"})])
sync(other, 0, [diff("create", "task", {"id": "r1", "title": "mine now", "done": False})])
print("\n-- empty title (the Rust example's rule answers 403)")
sync(tok, 11, [diff("create", "task", {"id": "e1", "title": " ", "done": False}, clock=11)])
print("\n-- fault order: bad diff and negative cursor in one request")
sync(tok, -1, [diff("upsert", "task", {"id": "x"})])
print("\n-- bad token / missing token / not JSON / missing diffs / diffs not a list")
sync("nope", 0, [])
call("/sync", {"logical_clock": 0, "diffs": []})
call("/sync", None, raw=b"{not json")
call("/sync", {"auth_token": tok, "logical_clock": 0})
call("/sync", {"auth_token": tok, "logical_clock": 0, "diffs": {"a": 1}})
call("/sync", {"auth_token": tok, "logical_clock": 0, "diffs": ["x"]})
print("\n-- unknown route")
call("/nope", {})

print()
if FAILED:
    print("happy path FAILED:", FAILED)
    sys.exit(1)
print("happy path ok")
