//! The SQLite side: schema, pragmas, loading at open, and writing one batch per transaction.

use crate::index::{Entry, Index};
use crate::{Key, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Storage(e.to_string())
    }
}

/// Schema: one row per current object and one meta row with the global revision. The object
/// column holds the JSON text exactly as served (with `metadata.resourceVersion`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    prefix    TEXT    NOT NULL,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    revision  INTEGER NOT NULL,
    object    TEXT    NOT NULL,
    PRIMARY KEY (prefix, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    id       INTEGER PRIMARY KEY CHECK (id = 0),
    revision INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, revision) VALUES (0, 0);
";

/// Sets the durability pragmas: WAL with a full sync on every commit, so an acknowledged
/// write survives `kill -9` and power loss.
/// `busy_timeout` bounds how long a write waits for a lock held by another connection.
pub(crate) fn configure(
    conn: &Connection,
    in_memory: bool,
    busy_timeout: Duration,
) -> Result<(), StoreError> {
    if !in_memory {
        // 16 KiB pages (for a new database; an existing one keeps its own): an object of a
        // few KiB, a pod say, then fits in its B-tree page with no overflow page, so a
        // commit writes about half the WAL frames. A 100-replica rollout used about 7 % less
        // CPU than with 4 KiB pages (`slipway-bench controllers --only rollouts`).
        conn.pragma_update(None, "page_size", 16384)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Storage(format!(
                "could not enable WAL mode (got {mode})"
            )));
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.busy_timeout(busy_timeout)?;
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

fn to_sql_revision(revision: u64) -> Result<i64, StoreError> {
    i64::try_from(revision)
        .map_err(|_| StoreError::Storage(format!("revision {revision} exceeds the SQLite range")))
}

fn from_sql_revision(revision: i64) -> Result<u64, StoreError> {
    u64::try_from(revision)
        .map_err(|_| StoreError::Storage(format!("negative revision {revision} in database")))
}

/// Reads every object and the revision counter into a fresh index.
pub(crate) fn load(conn: &Connection, text_only: &[String]) -> Result<Index, StoreError> {
    let mut index = Index::default();
    let meta_revision: Option<i64> = conn
        .query_row("SELECT revision FROM meta WHERE id = 0", [], |r| r.get(0))
        .optional()?;
    let mut max_object_revision = 0;
    let mut stmt = conn.prepare("SELECT prefix, namespace, name, revision, object FROM objects")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let key = Key {
            prefix: row.get(0)?,
            namespace: row.get(1)?,
            name: row.get(2)?,
        };
        let revision = from_sql_revision(row.get(3)?)?;
        let text: String = row.get(4)?;
        // Parsed under text-only prefixes too: a corrupt row is found at open, not later.
        let mut object: Value = serde_json::from_str(&text).map_err(|e| {
            StoreError::Storage(format!(
                "corrupt object {}/{}/{}: {e}",
                key.prefix, key.namespace, key.name
            ))
        })?;
        crate::make_lean(&mut object);
        max_object_revision = max_object_revision.max(revision);
        index.put(
            &key,
            Entry {
                revision,
                object: (!text_only.contains(&key.prefix)).then(|| Arc::new(object)),
                json: Arc::from(text),
            },
        );
    }
    // The meta row is authoritative (it also counts deletes); objects can never be newer,
    // but take the maximum so a damaged meta row cannot make revisions go backwards.
    index.revision = from_sql_revision(meta_revision.unwrap_or(0))?.max(max_object_revision);
    Ok(index)
}

/// One row change in a batch.
pub(crate) enum RowChange<'a> {
    /// Insert or replace the row with this object.
    Put {
        key: &'a Key,
        revision: u64,
        text: &'a str,
    },
    /// Remove the row.
    Delete { key: &'a Key },
}

/// Applies `changes` and sets the revision counter to `revision`, all in one transaction with
/// one fsync. On error nothing is changed.
pub(crate) fn write_batch(
    conn: &mut Connection,
    changes: &[RowChange<'_>],
    revision: u64,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut put = tx.prepare_cached(
            "INSERT INTO objects (prefix, namespace, name, revision, object)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (prefix, namespace, name)
             DO UPDATE SET revision = excluded.revision, object = excluded.object",
        )?;
        let mut delete = tx.prepare_cached(
            "DELETE FROM objects WHERE prefix = ?1 AND namespace = ?2 AND name = ?3",
        )?;
        for change in changes {
            match change {
                RowChange::Put {
                    key,
                    revision,
                    text,
                } => {
                    put.execute(params![
                        key.prefix,
                        key.namespace,
                        key.name,
                        to_sql_revision(*revision)?,
                        text
                    ])?;
                }
                RowChange::Delete { key } => {
                    delete.execute(params![key.prefix, key.namespace, key.name])?;
                }
            }
        }
        tx.prepare_cached("UPDATE meta SET revision = ?1 WHERE id = 0")?
            .execute(params![to_sql_revision(revision)?])?;
    }
    tx.commit()?;
    Ok(())
}
