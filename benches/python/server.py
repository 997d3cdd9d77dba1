"""Benchmark baseline: the Python mobync server 0.2.0 (PyPI `mobync==0.2.0`)
behind Flask, with the HTTP interface of the Rust example server
(examples/todo): POST /signup, POST /sync, GET /health, models `task` and
`project` in SQLite tables with an `owner` column.

The sync itself is mobync 0.2.0's own code path: `Mobync(synchronizer).apply(
logical_clock, diffs, owner_id)`. This file only supplies what that API asks
of an app: a `Synchronizer` over SQLite (read/create/update/delete of a row by
model and JSON data, `validate_*` returning True) and the HTTP glue around it.
See README.md for the adaptations and the differences from PROTOCOL.md.

Run with run.sh (waitress, THREADS worker threads), or directly:
    .venv/bin/python server.py --port 8001 --db bench.sqlite [--threads 4]
"""

import argparse
import hashlib
import json
import os
import secrets
import sqlite3
import threading
from typing import List

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from mobync import FilterType, Mobync, ReadFilter, Synchronizer

# ---------------------------------------------------------------------------
# Schema: the same tables as examples/todo/migrations/sqlite, plus the diff log
# that mobync 0.2.0 reads and writes through the Synchronizer under the model
# name "diffs" (Mobync(..., diffs_model_name='diffs')). mobync 0.2.0 keeps no
# clock table: it derives an owner's clock from max(logical_clock) of the log.

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT NOT NULL PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    done BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_owner ON tasks (owner);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT NOT NULL PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS projects_owner ON projects (owner);
CREATE TABLE IF NOT EXISTS diffs (
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    logical_clock INTEGER NOT NULL,
    utc_timestamp INTEGER NOT NULL,
    type TEXT NOT NULL,
    model TEXT NOT NULL,
    json_data TEXT,
    UNIQUE (owner, id)
);
CREATE INDEX IF NOT EXISTS diffs_owner_clock ON diffs (owner, logical_clock);
"""

DIFFS = "diffs"
DIFF_COLUMNS = ("id", "owner", "logical_clock", "utc_timestamp", "type", "model", "json_data")

# Wire model name -> (table, {field: python type}); `id` is implicit (str).
MODELS = {
    "task": ("tasks", {"title": str, "done": bool}),
    "project": ("projects", {"name": str}),
}

SQL_OPS = {
    FilterType.equal: "=",
    FilterType.major: ">",
    FilterType.minor: "<",
    FilterType.majorOrEqual: ">=",
    FilterType.minorOrEqual: "<=",
}


class InvalidDiff(Exception):
    """A diff the Synchronizer cannot apply (answered 422 invalid_diff)."""


# ---------------------------------------------------------------------------
# The Synchronizer mobync 0.2.0 requires. Its methods get no owner (`create(
# where, data_json)` etc.), so one instance is made per request, bound to the
# authenticated owner and to the request's connection (adaptation A1).


class SqliteSynchronizer(Synchronizer):
    def __init__(self, conn: sqlite3.Connection, owner: str):
        self.conn = conn
        self.owner = owner

    # -- reads ------------------------------------------------------------
    def read(self, where: str, filters: List[ReadFilter]) -> str:
        """JSON text of a list of dicts, as mobync expects (it json.loads it).

        mobync 0.2.0 only reads "diffs", with filters owner == X and
        logical_clock >= N (and, for its clock, owner == X alone). Rows are
        always scoped to the bound owner; diffs come back in the order they
        were accepted (clock, then insertion order).
        """
        if where == DIFFS:
            table, columns, order = DIFFS, list(DIFF_COLUMNS), "logical_clock, rowid"
        elif where in MODELS:
            table, fields = MODELS[where]
            columns, order = ["id", *fields], "id"
        else:
            raise InvalidDiff("unknown model {!r}".format(where))
        allowed = set(columns) | {"owner"}
        clauses, params = ["owner = ?"], [self.owner]
        for f in filters or []:
            if f.field_name not in allowed or f.filter_by not in SQL_OPS:
                raise InvalidDiff("unsupported filter on {!r}".format(f.field_name))
            clauses.append("{} {} ?".format(f.field_name, SQL_OPS[f.filter_by]))
            params.append(f.data)
        sql = "SELECT {} FROM {} WHERE {} ORDER BY {}".format(
            ", ".join(columns), table, " AND ".join(clauses), order)
        rows = self.conn.execute(sql, params).fetchall()
        out = [dict(zip(columns, row)) for row in rows]
        if where in MODELS:
            for name, kind in MODELS[where][1].items():
                if kind is bool:
                    for row in out:
                        row[name] = bool(row[name])
        return json.dumps(out)

    # -- writes -----------------------------------------------------------
    @staticmethod
    def _data(data_json: str) -> dict:
        try:
            data = json.loads(data_json)
        except (TypeError, ValueError):
            raise InvalidDiff("json_data is not valid JSON")
        if not isinstance(data, dict):
            raise InvalidDiff("json_data is not a JSON object")
        row_id = data.get("id")
        if not isinstance(row_id, str) or not row_id:
            raise InvalidDiff("json_data has no string id")
        return data

    @staticmethod
    def _fields(model: str, data: dict, complete: bool) -> dict:
        if model not in MODELS:
            raise InvalidDiff("unknown model {!r}".format(model))
        spec = MODELS[model][1]
        fields = {k: v for k, v in data.items() if k != "id"}
        for name, value in fields.items():
            if name not in spec:
                raise InvalidDiff("unknown field {!r} of {}".format(name, model))
            if type(value) is not spec[name]:
                raise InvalidDiff("field {!r} of {} has the wrong type".format(name, model))
        if complete:
            missing = [n for n in spec if n not in fields]
            if missing:
                raise InvalidDiff("create of {} is missing {}".format(model, ", ".join(missing)))
        return fields

    def create(self, where: str, data_json: str) -> None:
        data = self._data(data_json)
        if where == DIFFS:
            # mobync stores json.dumps(diff) of the client's diff with its
            # logical_clock restamped. The owner column is the authenticated
            # owner, never the client's placeholder (adaptation A2).
            values = [data.get(c) for c in DIFF_COLUMNS]
            values[1] = self.owner
            try:
                self.conn.execute(
                    "INSERT INTO diffs ({}) VALUES (?, ?, ?, ?, ?, ?, ?)".format(", ".join(DIFF_COLUMNS)),
                    values)
            except sqlite3.IntegrityError:
                raise InvalidDiff("diff id {!r} already stored".format(data["id"]))
            return
        fields = self._fields(where, data, complete=True)
        table = MODELS[where][0]
        names = ["id", "owner", *fields]
        try:
            self.conn.execute(
                "INSERT INTO {} ({}) VALUES ({})".format(table, ", ".join(names), ", ".join("?" * len(names))),
                [data["id"], self.owner, *fields.values()])
        except sqlite3.IntegrityError:
            raise InvalidDiff("row id {!r} of {} is already taken".format(data["id"], where))

    def update(self, where: str, data_json: str) -> None:
        data = self._data(data_json)
        fields = self._fields(where, data, complete=False)
        table = MODELS[where][0]
        if fields:
            cur = self.conn.execute(
                "UPDATE {} SET {} WHERE id = ? AND owner = ?".format(
                    table, ", ".join("{} = ?".format(n) for n in fields)),
                [*fields.values(), data["id"], self.owner])
            found = cur.rowcount > 0
        else:
            found = self.conn.execute(
                "SELECT 1 FROM {} WHERE id = ? AND owner = ?".format(table),
                (data["id"], self.owner)).fetchone() is not None
        if not found:
            raise InvalidDiff("update of an unknown {} row".format(where))

    def delete(self, where: str, data_json: str) -> None:
        data = self._data(data_json)
        if where not in MODELS:
            raise InvalidDiff("unknown model {!r}".format(where))
        cur = self.conn.execute(
            "DELETE FROM {} WHERE id = ? AND owner = ?".format(MODELS[where][0]),
            (data["id"], self.owner))
        if cur.rowcount == 0:
            raise InvalidDiff("delete of an unknown {} row".format(where))

    # -- the app's rules: none ---------------------------------------------
    def validate_create(self, owner_id: str, **kwargs) -> bool:
        return True

    def validate_update(self, owner_id: str, **kwargs) -> bool:
        return True

    def validate_delete(self, owner_id: str, **kwargs) -> bool:
        return True


# ---------------------------------------------------------------------------
# Flask app

# mobync 0.2.0 raises bare `Exception`s; these are their exact messages.
MOBYNC_BAD_DIFF = "Tried to instantiate an inconsistent Diff."
MOBYNC_REFUSED = "Unauthorized action by the business logic."
MOBYNC_BAD_CLOCK = "Received an inconsistent logical clock from client"


def error(status: int, code: str, message: str):
    resp = jsonify({"success": False, "message": message, "error": code})
    resp.status_code = status
    return resp


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_app(db_path: str) -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False
    local = threading.local()

    init = sqlite3.connect(db_path, timeout=5.0)
    init.execute("PRAGMA journal_mode = WAL")
    init.executescript(SCHEMA)
    init.close()

    def conn() -> sqlite3.Connection:
        """One connection per worker thread (waitress reuses its threads)."""
        c = getattr(local, "conn", None)
        if c is None:
            # timeout=5.0 is SQLite's busy timeout (5000 ms, as the Rust pool);
            # isolation_level=None: autocommit, transactions opened by hand.
            c = sqlite3.connect(db_path, timeout=5.0, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA busy_timeout = 5000")
            c.execute("PRAGMA synchronous = NORMAL")
            local.conn = c
        return c

    def authenticate(c: sqlite3.Connection, token) -> str:
        if not isinstance(token, str) or not token:
            return None
        row = c.execute("SELECT id FROM users WHERE token_hash = ?", (token_hash(token),)).fetchone()
        return row[0] if row else None

    @app.get("/health")
    def health():
        return "ok"

    @app.post("/signup")
    def signup():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return error(400, "malformed_request", "expected {\"name\": string}")
        owner, token = secrets.token_hex(16), secrets.token_hex(32)
        conn().execute("INSERT INTO users (id, name, token_hash) VALUES (?, ?, ?)",
                       (owner, body["name"], token_hash(token)))
        return jsonify({"auth_token": token, "owner": owner})

    @app.post("/sync")
    def sync():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return error(400, "malformed_request", "the body is not a JSON object")
        c = conn()
        owner = authenticate(c, body.get("auth_token"))
        if owner is None:
            return error(401, "unauthenticated", "unknown auth_token")
        # mobync's own example app answers 400 when any of these is missing.
        if "logical_clock" not in body or "diffs" not in body:
            return error(400, "malformed_request", "logical_clock and diffs are required")

        # Mobync keeps per-call state on the instance (server_diffs, ...), so
        # one instance per request (adaptation A1). Its Synchronizer calls are
        # not transactional; the app wraps the whole apply in one IMMEDIATE
        # transaction so a failure changes nothing and concurrent syncs of one
        # owner cannot both read the same clock (adaptation A3).
        mobync = Mobync(SqliteSynchronizer(c, owner))
        try:
            c.execute("BEGIN IMMEDIATE")
            result = mobync.apply(body["logical_clock"], body["diffs"], owner)
            c.execute("COMMIT")
        except Exception as e:  # mobync raises bare Exception; map by message
            if c.in_transaction:
                c.execute("ROLLBACK")
            return map_error(e)
        return jsonify(result)

    def map_error(e: Exception):
        msg = str(e)
        if isinstance(e, InvalidDiff):
            return error(422, "invalid_diff", msg)
        if type(e) is Exception and msg == MOBYNC_BAD_DIFF:
            return error(400, "malformed_request", msg)
        if type(e) is Exception and msg == MOBYNC_REFUSED:
            return error(403, "forbidden", msg)
        if type(e) is Exception and msg.startswith(MOBYNC_BAD_CLOCK):
            return error(409, "invalid_clock", msg)
        if isinstance(e, (TypeError, ValueError, KeyError, AttributeError)) and not isinstance(e, sqlite3.Error):
            # malformed input reaching mobync's code (e.g. int() of a
            # non-number clock, a diff that is not an object)
            return error(400, "malformed_request", "malformed request: {}".format(type(e).__name__))
        app.logger.exception("sync failed")
        return error(500, "internal", "internal error")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        resp = jsonify({"success": False, "message": "{} {}".format(e.code, e.name)})
        resp.status_code = e.code
        return resp

    return app


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "4")))
    args = p.parse_args()
    import logging
    import waitress

    # waitress warns "Task queue depth is N" whenever requests wait for a
    # thread, which under load is every request: keep stderr readable.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    app = create_app(args.db)
    print("mobync 0.2.0 (Python) on http://{}:{} db={} waitress threads={}".format(
        args.host, args.port, args.db, args.threads), flush=True)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads,
                   connection_limit=int(os.environ.get("CONNECTION_LIMIT", "1000")),
                   backlog=2048, asyncore_use_poll=True, ident="mobync-py")


if __name__ == "__main__":
    main()
