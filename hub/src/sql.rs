//! The hub's tables, on any connection mobync keeps its log on: every
//! statement is written once, with `?` placeholders (numbered for
//! PostgreSQL).

use crate::model::{ChangeRow, Count, MessageRow, NetworkRow, NodeRow, One, RecordRow, State};
use crate::HubError;
use mobync::__private_0_1::{AnyRow, Bind};
use mobync::db::{Dialect, LogConnection};
use mobync::observe::{names, Report};

/// `sql` with its `?` placeholders as the dialect writes them.
fn sql(d: Dialect, text: &str) -> String {
    if d != Dialect::Postgres {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    for c in text.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

fn load<C: LogConnection, R: AnyRow>(conn: &mut C, text: &str, binds: &[Bind<'_>]) -> Result<Vec<R>, HubError> {
    let d = conn.dialect();
    conn.load(&sql(d, text), binds).map_err(HubError::database)
}

fn first<C: LogConnection, R: AnyRow>(conn: &mut C, text: &str, binds: &[Bind<'_>]) -> Result<Option<R>, HubError> {
    Ok(load(conn, text, binds)?.into_iter().next())
}

fn execute<C: LogConnection>(conn: &mut C, text: &str, binds: &[Bind<'_>]) -> Result<usize, HubError> {
    let d = conn.dialect();
    conn.execute(&sql(d, text), binds).map_err(HubError::database)
}

const NETWORK: &str = "SELECT id, name, json_schema, fetch_before_send, owner, model FROM hub_networks";
const NODE: &str =
    "SELECT id, network_id, name, can_create, can_read, can_update, can_delete, token_hash FROM hub_nodes";
const MESSAGE: &str = "SELECT seq, id, network_id, origin_id, destination_id, parent_id, method, payload, record_id, \
                       remote_id, state, created_at, lease_until FROM hub_messages";

/// The network `id`.
pub fn network<C: LogConnection>(conn: &mut C, id: &str) -> Result<Option<NetworkRow>, HubError> {
    first(conn, &format!("{NETWORK} WHERE id = ?"), &[Bind::Text(id)])
}

/// The network of `owner`'s `model`, if there is one.
pub fn network_of<C: LogConnection>(conn: &mut C, owner: &str, model: &str) -> Result<Option<NetworkRow>, HubError> {
    first(conn, &format!("{NETWORK} WHERE owner = ? AND model = ?"), &[Bind::Text(owner), Bind::Text(model)])
}

/// Stores a new network.
pub fn insert_network<C: LogConnection>(conn: &mut C, network: &NetworkRow, now: i64) -> Result<(), HubError> {
    let text = "INSERT INTO hub_networks (id, name, json_schema, fetch_before_send, owner, model, created_at) \
                VALUES (?, ?, ?, ?, ?, ?, ?)";
    execute(
        conn,
        text,
        &[
            Bind::Text(&network.id),
            Bind::Text(&network.name),
            Bind::Text(&network.json_schema),
            Bind::Bool(network.fetch_before_send),
            Bind::Text(&network.owner),
            Bind::Text(&network.model),
            Bind::BigInt(now),
        ],
    )
    .map(|_| ())
}

/// Stores a network's name, schema and `fetch_before_send`.
pub fn update_network<C: LogConnection>(conn: &mut C, network: &NetworkRow) -> Result<(), HubError> {
    let text = "UPDATE hub_networks SET name = ?, json_schema = ?, fetch_before_send = ? WHERE id = ?";
    let binds =
        [Bind::Text(&network.name), Bind::Text(&network.json_schema), Bind::Bool(network.fetch_before_send), Bind::Text(&network.id)];
    execute(conn, text, &binds).map(|_| ())
}

/// The nodes of a network, oldest first.
pub fn nodes<C: LogConnection>(conn: &mut C, network_id: &str) -> Result<Vec<NodeRow>, HubError> {
    load(conn, &format!("{NODE} WHERE network_id = ? ORDER BY created_at, id"), &[Bind::Text(network_id)])
}

/// The node `id` of a network.
pub fn node<C: LogConnection>(conn: &mut C, network_id: &str, id: &str) -> Result<Option<NodeRow>, HubError> {
    first(conn, &format!("{NODE} WHERE network_id = ? AND id = ?"), &[Bind::Text(network_id), Bind::Text(id)])
}

/// The node whose token has the SHA-256 `hash` (hex), if any.
pub fn node_by_token<C: LogConnection>(conn: &mut C, hash: &str) -> Result<Option<NodeRow>, HubError> {
    first(conn, &format!("{NODE} WHERE token_hash = ?"), &[Bind::Text(hash)])
}

/// Stores a new node.
pub fn insert_node<C: LogConnection>(conn: &mut C, node: &NodeRow, now: i64) -> Result<(), HubError> {
    let text = "INSERT INTO hub_nodes (id, network_id, name, can_create, can_read, can_update, can_delete, token_hash, \
                created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let binds = [
        Bind::Text(&node.id),
        Bind::Text(&node.network_id),
        Bind::Text(&node.name),
        Bind::Bool(node.can_create),
        Bind::Bool(node.can_read),
        Bind::Bool(node.can_update),
        Bind::Bool(node.can_delete),
        Bind::OptText(node.token_hash.as_deref()),
        Bind::BigInt(now),
    ];
    execute(conn, text, &binds).map(|_| ())
}

/// Stores a node's name, flags and token.
pub fn update_node<C: LogConnection>(conn: &mut C, node: &NodeRow) -> Result<(), HubError> {
    let text = "UPDATE hub_nodes SET name = ?, can_create = ?, can_read = ?, can_update = ?, can_delete = ?, \
                token_hash = ? WHERE network_id = ? AND id = ?";
    let binds = [
        Bind::Text(&node.name),
        Bind::Bool(node.can_create),
        Bind::Bool(node.can_read),
        Bind::Bool(node.can_update),
        Bind::Bool(node.can_delete),
        Bind::OptText(node.token_hash.as_deref()),
        Bind::Text(&node.network_id),
        Bind::Text(&node.id),
    ];
    execute(conn, text, &binds).map(|_| ())
}

/// The record `id` of `model`, whoever owns it, deleted or not.
pub fn record<C: LogConnection>(conn: &mut C, model: &str, id: &str) -> Result<Option<RecordRow>, HubError> {
    let text = "SELECT id, owner, data, deleted FROM hub_records WHERE model = ? AND id = ?";
    first(conn, text, &[Bind::Text(model), Bind::Text(id)])
}

/// Stores a new record; `false` if its id is taken.
pub fn insert_record<C: LogConnection>(conn: &mut C, model: &str, id: &str, owner: &str, data: &str) -> Result<bool, HubError> {
    let text = "INSERT INTO hub_records (model, id, owner, data, deleted) VALUES (?, ?, ?, ?, ?)";
    let binds = [Bind::Text(model), Bind::Text(id), Bind::Text(owner), Bind::Text(data), Bind::Bool(false)];
    match conn.execute(&sql(conn.dialect(), text), &binds) {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(err) => Err(HubError::database(err)),
    }
}

/// Sets a live record's fields, or deletes it (`None`); `false` if
/// `owner` has no such live record.
pub fn write_record<C: LogConnection>(
    conn: &mut C,
    model: &str,
    id: &str,
    owner: &str,
    data: Option<&str>,
) -> Result<bool, HubError> {
    let text = "UPDATE hub_records SET data = ?, deleted = ? WHERE model = ? AND id = ? AND owner = ? AND deleted = ?";
    let binds =
        [Bind::OptText(data), Bind::Bool(data.is_none()), Bind::Text(model), Bind::Text(id), Bind::Text(owner), Bind::Bool(false)];
    Ok(execute(conn, text, &binds)? == 1)
}

/// The position of `owner`'s last record of `model` (0 if none).
pub fn last_record<C: LogConnection>(conn: &mut C, owner: &str, model: &str) -> Result<i64, HubError> {
    let text = "SELECT COALESCE(MAX(seq), 0) AS n FROM hub_records WHERE owner = ? AND model = ?";
    Ok(first::<C, Count>(conn, text, &[Bind::Text(owner), Bind::Text(model)])?.map_or(0, |c| c.n))
}

/// Up to `limit` live records of `owner`'s `model` after position `after`
/// and up to `last`, in the order they were created: (position, record).
pub fn live_records<C: LogConnection>(
    conn: &mut C,
    owner: &str,
    model: &str,
    after: i64,
    last: i64,
    limit: i64,
) -> Result<Vec<(i64, RecordRow)>, HubError> {
    use diesel::QueryableByName;
    #[derive(QueryableByName)]
    struct Positioned {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
        #[diesel(embed)]
        record: RecordRow,
    }
    let text = "SELECT seq, id, owner, data, deleted FROM hub_records \
                WHERE owner = ? AND model = ? AND deleted = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?";
    let binds =
        [Bind::Text(owner), Bind::Text(model), Bind::Bool(false), Bind::BigInt(after), Bind::BigInt(last), Bind::BigInt(limit)];
    Ok(load::<C, Positioned>(conn, text, &binds)?.into_iter().map(|p| (p.seq, p.record)).collect())
}

/// The node's own id of a record, if it gave one.
pub fn remote_of<C: LogConnection>(conn: &mut C, node_id: &str, record_id: &str) -> Result<Option<String>, HubError> {
    let text = "SELECT remote_id AS value FROM hub_remotes WHERE node_id = ? AND record_id = ? ORDER BY remote_id";
    Ok(first::<C, One>(conn, text, &[Bind::Text(node_id), Bind::Text(record_id)])?.map(|one| one.value))
}

/// The record a node's own id stands for.
pub fn record_of<C: LogConnection>(conn: &mut C, node_id: &str, remote_id: &str) -> Result<Option<String>, HubError> {
    let text = "SELECT record_id AS value FROM hub_remotes WHERE node_id = ? AND remote_id = ?";
    Ok(first::<C, One>(conn, text, &[Bind::Text(node_id), Bind::Text(remote_id)])?.map(|one| one.value))
}

/// Maps a node's own id to a record: fine if it already is, an error if
/// it stands for another record.
pub fn map_remote<C: LogConnection>(conn: &mut C, node_id: &str, remote_id: &str, record_id: &str) -> Result<(), HubError> {
    match record_of(conn, node_id, remote_id)? {
        Some(mapped) if mapped == record_id => Ok(()),
        Some(_) => Err(HubError::bad_request(format!("remote_id already in use: {remote_id}"))),
        None => {
            let text = "INSERT INTO hub_remotes (node_id, remote_id, record_id) VALUES (?, ?, ?)";
            execute(conn, text, &[Bind::Text(node_id), Bind::Text(remote_id), Bind::Text(record_id)]).map(|_| ())
        }
    }
}

/// Stores a new message (its `seq` is the database's).
pub fn insert_message<C: LogConnection>(conn: &mut C, m: &MessageRow) -> Result<(), HubError> {
    let text = "INSERT INTO hub_messages (id, network_id, origin_id, destination_id, parent_id, method, payload, \
                record_id, remote_id, state, created_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    execute(conn, text, &message_binds(m)).map(|_| ())
}

/// A message's 12 binds, in the column order of the INSERTs above and below.
fn message_binds(m: &MessageRow) -> [Bind<'_>; 12] {
    [
        Bind::Text(&m.id),
        Bind::Text(&m.network_id),
        Bind::OptText(m.origin_id.as_deref()),
        Bind::OptText(m.destination_id.as_deref()),
        Bind::OptText(m.parent_id.as_deref()),
        Bind::Text(&m.method),
        Bind::Text(&m.payload),
        Bind::Text(&m.record_id),
        Bind::OptText(m.remote_id.as_deref()),
        Bind::Text(&m.state),
        Bind::BigInt(m.created_at),
        Bind::OptBigInt(m.lease_until),
    ]
}

/// Rows per multi-row INSERT: far below every backend's bind limit.
const CHUNK: usize = 200;

/// Stores new messages, with a first state change each (`state` at `now`,
/// `note`), a few multi-row INSERTs in all.
/// Each is tallied in `noted`, counted once the transaction committed.
pub fn insert_messages<C: LogConnection>(
    conn: &mut C,
    messages: &[MessageRow],
    state: State,
    now: i64,
    note: &str,
    noted: &mut Report,
) -> Result<(), HubError> {
    for chunk in messages.chunks(CHUNK) {
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let text = format!(
            "INSERT INTO hub_messages (id, network_id, origin_id, destination_id, parent_id, method, payload, \
             record_id, remote_id, state, created_at, lease_until) VALUES {rows}"
        );
        let mut binds = Vec::with_capacity(chunk.len() * 12);
        for m in chunk {
            binds.extend(message_binds(m));
        }
        execute(conn, &text, &binds)?;
        let rows = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
        let text = format!("INSERT INTO hub_changes (message_id, state, at, note) VALUES {rows}");
        let mut binds = Vec::with_capacity(chunk.len() * 4);
        for m in chunk {
            binds.extend([Bind::Text(&m.id), Bind::Text(state.as_str()), Bind::BigInt(now), Bind::Text(note)]);
        }
        execute(conn, &text, &binds)?;
    }
    noted.tally(names::HUB_MESSAGES, "state", state.as_str(), messages.len() as u64);
    Ok(())
}

/// The message `id`.
pub fn message<C: LogConnection>(conn: &mut C, id: &str) -> Result<Option<MessageRow>, HubError> {
    first(conn, &format!("{MESSAGE} WHERE id = ?"), &[Bind::Text(id)])
}

/// What a node may be handed: pending, or fetched and not answered within
/// its lease.
const DELIVERABLE: &str = "destination_id = ? AND (state = 'pending' OR (state = 'processing' AND lease_until < ?))";

/// No earlier message of the same record is unanswered by the node: a
/// record's changes go to a node one at a time, in order.
const FIRST_OF_ITS_RECORD: &str = "NOT EXISTS (SELECT 1 FROM hub_messages earlier \
                                   WHERE earlier.destination_id = hub_messages.destination_id \
                                   AND earlier.record_id = hub_messages.record_id AND earlier.seq < hub_messages.seq \
                                   AND earlier.state IN ('pending', 'processing'))";

/// The node's next deliverable message, in the order the changes were
/// accepted, and only if no earlier message of its record is still
/// unanswered (in flight under a lease, or waiting itself); locked for
/// this transaction. Callers hold the node's lock ([`lock_node`]), so two
/// fetchers of one node take turns.
pub fn next_message<C: LogConnection>(conn: &mut C, node_id: &str, now: i64) -> Result<Option<MessageRow>, HubError> {
    let lock = if conn.dialect() == Dialect::Sqlite { "" } else { " FOR UPDATE" };
    let text = format!("{MESSAGE} WHERE {DELIVERABLE} AND {FIRST_OF_ITS_RECORD} ORDER BY seq LIMIT 1{lock}");
    first(conn, &text, &[Bind::Text(node_id), Bind::BigInt(now)])
}

/// Locks the node's row until the transaction ends (SQLite: its one writer
/// is lock enough).
pub fn lock_node<C: LogConnection>(conn: &mut C, node_id: &str) -> Result<(), HubError> {
    if conn.dialect() != Dialect::Sqlite {
        load::<C, One>(conn, "SELECT id AS value FROM hub_nodes WHERE id = ? FOR UPDATE", &[Bind::Text(node_id)])?;
    }
    Ok(())
}

/// The message `id`, locked until the transaction ends: two answers to it
/// take turns, and the second sees what the first did.
pub fn message_locked<C: LogConnection>(conn: &mut C, id: &str) -> Result<Option<MessageRow>, HubError> {
    let lock = if conn.dialect() == Dialect::Sqlite { "" } else { " FOR UPDATE" };
    first(conn, &format!("{MESSAGE} WHERE id = ?{lock}"), &[Bind::Text(id)])
}

/// How many messages a node may be handed now.
pub fn deliverable<C: LogConnection>(conn: &mut C, node_id: &str, now: i64) -> Result<i64, HubError> {
    let text = format!("SELECT COUNT(*) AS n FROM hub_messages WHERE {DELIVERABLE}");
    Ok(first::<C, Count>(conn, &text, &[Bind::Text(node_id), Bind::BigInt(now)])?.map_or(0, |c| c.n))
}

/// Sets a message's state (and lease), and records the change.
pub fn set_state<C: LogConnection>(
    conn: &mut C,
    id: &str,
    state: State,
    lease_until: Option<i64>,
    now: i64,
    note: &str,
    noted: &mut Report,
) -> Result<(), HubError> {
    let done = matches!(state, State::Acknowledged | State::Failed | State::Superseded).then_some(now);
    let text = "UPDATE hub_messages SET state = ?, lease_until = ?, done_at = ? WHERE id = ?";
    execute(conn, text, &[Bind::Text(state.as_str()), Bind::OptBigInt(lease_until), Bind::OptBigInt(done), Bind::Text(id)])?;
    record_change(conn, id, state, now, note, noted)
}

/// Records a state change of a message, tallied in `noted` (counted once
/// the transaction committed).
pub fn record_change<C: LogConnection>(conn: &mut C, id: &str, state: State, now: i64, note: &str, noted: &mut Report) -> Result<(), HubError> {
    let text = "INSERT INTO hub_changes (message_id, state, at, note) VALUES (?, ?, ?, ?)";
    execute(conn, text, &[Bind::Text(id), Bind::Text(state.as_str()), Bind::BigInt(now), Bind::Text(note)])?;
    noted.tally(names::HUB_MESSAGES, "state", state.as_str(), 1);
    Ok(())
}

/// A network's messages, in order, after position `after`, at most
/// `limit`: those in `state`, or all.
pub fn messages<C: LogConnection>(
    conn: &mut C,
    network_id: &str,
    state: Option<State>,
    after: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, HubError> {
    let filter = if state.is_some() { " AND state = ?" } else { "" };
    let text = format!("{MESSAGE} WHERE network_id = ? AND seq > ?{filter} ORDER BY seq LIMIT ?");
    let mut binds = vec![Bind::Text(network_id), Bind::BigInt(after)];
    if let Some(state) = state {
        binds.push(Bind::Text(state.as_str()));
    }
    binds.push(Bind::BigInt(limit));
    load(conn, &text, &binds)
}

/// The state changes of `ids`, oldest first.
pub fn changes<C: LogConnection>(conn: &mut C, ids: &[&str]) -> Result<Vec<ChangeRow>, HubError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let text = format!("SELECT message_id, state, at, note FROM hub_changes WHERE message_id IN ({marks}) ORDER BY seq");
    let binds: Vec<Bind> = ids.iter().map(|id| Bind::Text(id)).collect();
    load(conn, &text, &binds)
}

/// The message that answered a node's send with `key`, if at or after
/// `since`; an older entry is forgotten (deleted) here.
pub fn idempotent<C: LogConnection>(conn: &mut C, node_id: &str, key: &str, since: i64) -> Result<Option<String>, HubError> {
    #[derive(diesel::QueryableByName)]
    struct Entry {
        #[diesel(sql_type = diesel::sql_types::Text)]
        message_id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        created_at: i64,
    }
    let text = "SELECT message_id, created_at FROM hub_idempotency WHERE node_id = ? AND idempotency_key = ?";
    let Some(entry) = first::<C, Entry>(conn, text, &[Bind::Text(node_id), Bind::Text(key)])? else { return Ok(None) };
    if entry.created_at >= since {
        return Ok(Some(entry.message_id));
    }
    execute(conn, "DELETE FROM hub_idempotency WHERE node_id = ? AND idempotency_key = ?", &[Bind::Text(node_id), Bind::Text(key)])?;
    Ok(None)
}

/// Forgets a node's `key`.
pub fn forget_key<C: LogConnection>(conn: &mut C, node_id: &str, key: &str) -> Result<(), HubError> {
    execute(conn, "DELETE FROM hub_idempotency WHERE node_id = ? AND idempotency_key = ?", &[Bind::Text(node_id), Bind::Text(key)])
        .map(|_| ())
}

/// Remembers that a node's send with `key` was answered by `message_id`.
pub fn remember_idempotent<C: LogConnection>(conn: &mut C, node_id: &str, key: &str, message_id: &str, now: i64) -> Result<(), HubError> {
    let text = "INSERT INTO hub_idempotency (node_id, idempotency_key, message_id, created_at) VALUES (?, ?, ?, ?)";
    execute(conn, text, &[Bind::Text(node_id), Bind::Text(key), Bind::Text(message_id), Bind::BigInt(now)]).map(|_| ())
}

/// Supersedes what a node holds unanswered (pending, or fetched and not
/// answered), with a state change each (tallied in `noted`): how many.
pub fn supersede<C: LogConnection>(conn: &mut C, node_id: &str, now: i64, noted: &mut Report) -> Result<usize, HubError> {
    let open = "destination_id = ? AND state IN ('pending', 'processing')";
    let text = format!(
        "INSERT INTO hub_changes (message_id, state, at, note) \
         SELECT id, 'superseded', ?, 'superseded by a re-sync' FROM hub_messages WHERE {open}"
    );
    execute(conn, &text, &[Bind::BigInt(now), Bind::Text(node_id)])?;
    let text = format!("UPDATE hub_messages SET state = 'superseded', lease_until = NULL, done_at = ? WHERE {open}");
    let n = execute(conn, &text, &[Bind::BigInt(now), Bind::Text(node_id)])?;
    noted.tally(names::HUB_MESSAGES, "state", "superseded", n as u64);
    Ok(n)
}

/// Up to `limit` ids of messages answered (acknowledged, failed,
/// superseded) before `before`, oldest first.
pub fn answered_before<C: LogConnection>(conn: &mut C, before: i64, limit: i64) -> Result<Vec<String>, HubError> {
    let text = "SELECT id AS value FROM hub_messages WHERE state IN ('acknowledged', 'failed', 'superseded') \
                AND done_at < ? ORDER BY done_at LIMIT ?";
    Ok(load::<C, One>(conn, text, &[Bind::BigInt(before), Bind::BigInt(limit)])?.into_iter().map(|one| one.value).collect())
}

/// Deletes the messages `ids` and their state changes: (messages, changes).
/// Messages first, then changes by their primary key, the order a send
/// writes them in, and with no range lock on an index (on MariaDB a range
/// delete of `hub_changes` by `message_id` would lock the gaps a send's
/// new rows go into).
pub fn delete_messages<C: LogConnection>(conn: &mut C, ids: &[String]) -> Result<(usize, usize), HubError> {
    #[derive(diesel::QueryableByName)]
    struct Seq {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
    }
    let (mut messages, mut changes) = (0, 0);
    for chunk in ids.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let binds: Vec<Bind> = chunk.iter().map(|id| Bind::Text(id)).collect();
        messages += execute(conn, &format!("DELETE FROM hub_messages WHERE id IN ({marks})"), &binds)?;
        let seqs: Vec<Seq> = load(conn, &format!("SELECT seq FROM hub_changes WHERE message_id IN ({marks})"), &binds)?;
        for seqs in seqs.chunks(CHUNK) {
            let marks = vec!["?"; seqs.len()].join(", ");
            let binds: Vec<Bind> = seqs.iter().map(|s| Bind::BigInt(s.seq)).collect();
            changes += execute(conn, &format!("DELETE FROM hub_changes WHERE seq IN ({marks})"), &binds)?;
        }
    }
    Ok((messages, changes))
}

/// Forgets `Idempotency-Key`s remembered before `before`: how many.
pub fn forget_keys<C: LogConnection>(conn: &mut C, before: i64) -> Result<usize, HubError> {
    execute(conn, "DELETE FROM hub_idempotency WHERE created_at < ?", &[Bind::BigInt(before)])
}

/// How many messages wait in each unanswered state: (pending, processing).
pub fn waiting<C: LogConnection>(conn: &mut C) -> Result<(i64, i64), HubError> {
    let count = |conn: &mut C, state: &str| -> Result<i64, HubError> {
        let text = "SELECT COUNT(*) AS n FROM hub_messages WHERE state = ?";
        Ok(first::<C, Count>(conn, text, &[Bind::Text(state)])?.map_or(0, |c| c.n))
    };
    Ok((count(conn, "pending")?, count(conn, "processing")?))
}
