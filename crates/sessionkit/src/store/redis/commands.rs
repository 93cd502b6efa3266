//! The store's operations as Redis commands — load, create, update, delete,
//! take — and what their replies mean. Every command of one operation
//! names one key, so one Cluster slot. Each runs on the connection seam's
//! [`Link`] and tells the client cache (if any) what it did.
//!
//! - **load**: `HGETALL` (with the cache: answered in process when it may
//!   be, else the `HGETALL`, pipelined after re-enabling tracking when a new
//!   epoch needs it).
//! - **create**: one `RESTORE key <m:expires> <payload> ABSTTL` (the
//!   payload built by `layout`: a listpack for a server of 7.0 or later,
//!   whose version is asked once with `INFO server`): the hash and its
//!   expiry in one command, refused with `BUSYKEY` if the key exists. Where
//!   the server refuses `RESTORE` (an ACL without it, a renamed command),
//!   the save script creates, from then on.
//! - **update**: one `MULTI`/`EXEC` transaction: `HINCRBY m:rev 1`, `HSET`
//!   the changed fields (and `m:expires` when the expiry moves), `HDEL`
//!   the removed ones, and `PEXPIREAT` when the expiry moves, else
//!   `PEXPIRE <10 s> NX`: a no-op on a record (it has its TTL), and a
//!   bound on the hash the transaction makes when the record was deleted
//!   meanwhile — so that hash never lives without a TTL, whatever happens
//!   after. The new revision tells what the transaction hit: every record
//!   has `m:rev` ≥ 1, so ≥ 2 ⇒ saved; anything else is classified with a
//!   second round trip (`HMGET m:v m:moved`): a forwarding marker
//!   (`m:rev` far below zero) ⇒ moved, no `m:v` ⇒ the session was deleted
//!   meanwhile and those remains are deleted at once. A save that may empty
//!   the session runs the save script (the emptiness is checked in Redis,
//!   so a concurrent writer's keys keep it alive). Where the server refuses
//!   the transaction as a whole (`EXECABORT`: a Redis before 7.0 has no
//!   `PEXPIRE … NX`) but runs the script, the script updates, from then on.
//! - **delete**: `DEL`.
//! - **take** (cycle): the take script reads the hash and replaces it by a
//!   forwarding marker.

use std::sync::atomic::{AtomicBool, Ordering};

use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

use super::cache::Outcome;
use super::connection::Link;
use super::layout::{self, Save, Scripts, MARKER_REV, REMAINS_TTL_MS};
use crate::store::{ms, now_ms, Changes, Record, UpdateOutcome, MOVED_GRACE};
use crate::{Error, StorageId};

/// The operations, with what the server has shown it allows.
pub(super) struct Commands {
    scripts: Scripts,
    /// Creates use `RESTORE` (until the server refuses it).
    restore: AtomicBool,
    /// Updates use the transaction (until the server refuses it).
    transaction: AtomicBool,
}

/// What a save answered.
enum SaveReply {
    /// Saved; the record's new revision.
    Saved(u64),
    /// Create refused: the key exists.
    Exists,
    /// Update refused: the record is gone.
    Gone,
    /// The update emptied the record, which was deleted.
    Deleted,
    /// The session moved to this storage id (update refused).
    Moved(StorageId),
}

/// Reads the save script's reply (see `save.lua`).
fn save_reply(v: Value) -> Result<SaveReply, Error> {
    Ok(match v {
        Value::Array(items) => match items.as_slice() {
            [Value::Int(1), Value::Int(rev)] => SaveReply::Saved(u64::try_from(*rev).unwrap_or(0)),
            _ => return Err(Error::Corrupt("unexpected save reply".to_owned())),
        },
        Value::Int(0) => SaveReply::Exists,
        Value::Int(2) => SaveReply::Deleted,
        Value::BulkString(to) => SaveReply::Moved(layout::moved_to(to)?),
        _ => SaveReply::Gone,
    })
}

/// An error reply to a command on a session key: `WRONGTYPE` means someone
/// else's value sits at our key, corrupt data for this session rather than
/// an outage; anything else is a failed call.
fn classify<T>(link: &Link, answer: redis::RedisResult<T>) -> Result<T, Error> {
    match answer {
        Err(e) if e.code() == Some("WRONGTYPE") => {
            Err(Error::Corrupt("key holds a non-hash value".to_owned()))
        }
        answer => link.failed_on_error(answer),
    }
}

/// Whether the server refused a command as such (not permitted, unknown,
/// malformed for it: `NOPERM` or `ERR`), rather than being in a state that
/// refuses everything (`LOADING`, `READONLY`, `OOM`…).
fn is_refusal(e: &RedisError) -> bool {
    matches!(e.code(), Some("NOPERM" | "ERR"))
}

impl Commands {
    pub(super) fn new() -> Self {
        Commands {
            scripts: Scripts::new(),
            restore: AtomicBool::new(true),
            transaction: AtomicBool::new(true),
        }
    }

    pub(super) async fn load(&self, link: &Link, key: &str) -> Result<Option<Record>, Error> {
        let Some(cache) = link.cache() else {
            let (reply, _) = link.fetch(key, false).await?;
            return layout::decode_record(layout::hash_reply(classify(link, reply)?)?);
        };
        if let Some(record) = cache.get(key) {
            return Ok(Some(record));
        }
        let op = cache.begin(key);
        let track = !cache.tracking(&op);
        let (reply, tracking) = link.fetch(key, track).await?;
        if tracking {
            op.confirm_tracking();
        }
        let found = layout::decode_revision(layout::hash_reply(classify(link, reply)?)?)?;
        op.finish(Outcome::Loaded(found.as_ref().map(|(r, rev)| (r, *rev))));
        Ok(found.map(|(record, _)| record))
    }

    pub(super) async fn create(
        &self,
        link: &Link,
        key: &str,
        record: &Record,
    ) -> Result<bool, Error> {
        // The cache is not involved: no entry can exist for an id nobody
        // has seen, and a new session is cached by its first load
        // (broadcast tracking needs no read to cover the key). Caching
        // every new session made `new` slower (ARCHITECTURE.md).
        if self.restore.load(Ordering::Relaxed) {
            let listpack = layout::reads_listpack(link.server_version().await?);
            let mut cmd = redis::cmd("RESTORE");
            cmd.arg(key)
                .arg(record.meta.expires_ms)
                .arg(layout::dump_record(record, listpack))
                .arg("ABSTTL");
            match link.run_raw::<Value>(&cmd).await? {
                Ok(_) => return Ok(true),
                Err(e) if e.code() == Some("BUSYKEY") => return Ok(false),
                Err(e) if is_refusal(&e) => {
                    self.restore.store(false, Ordering::Relaxed);
                    tracing::warn!(
                        error = %e,
                        "Redis refused RESTORE; sessions are created with the save script from now on"
                    );
                }
                Err(e) => return Err(Error::unavailable(e)),
            }
        }
        let save = Save {
            create: true,
            expires: Some(record.meta.expires_ms),
            delete_if_empty: false,
            meta: Some(&record.meta),
            set: record.data.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            remove: &[],
        };
        let reply = self.save(link, key, save).await?;
        Ok(matches!(reply, SaveReply::Saved(_)))
    }

    /// Runs the save script.
    async fn save<'a, I>(
        &self,
        link: &Link,
        key: &str,
        save: Save<'a, I>,
    ) -> Result<SaveReply, Error>
    where
        I: ExactSizeIterator<Item = (&'a str, &'a [u8])> + Clone,
    {
        let answer = link
            .eval(&self.scripts.save, key, |cmd| {
                Save {
                    set: save.set.clone(),
                    ..save
                }
                .args(cmd);
            })
            .await?;
        save_reply(classify(link, answer)?)
    }

    pub(super) async fn update(
        &self,
        link: &Link,
        key: &str,
        changes: &Changes<'_>,
    ) -> Result<UpdateOutcome, Error> {
        let op = link.cache().map(|c| c.begin(key));
        let use_transaction = !changes.delete_if_empty && self.transaction.load(Ordering::Relaxed);
        let transacted = if use_transaction {
            self.transact(link, key, changes).await?
        } else {
            None
        };
        let by_transaction = transacted.is_some();
        let reply = match transacted {
            Some(reply) => reply,
            None => {
                self.update_by_script(link, key, changes, use_transaction)
                    .await?
            }
        };
        if let Some(op) = op {
            op.finish(match reply {
                // What the script writes is reported back to this
                // connection: only a transaction's write updates the entry.
                SaveReply::Saved(rev) if by_transaction => Outcome::Updated(changes, rev),
                _ => Outcome::Dropped,
            });
        }
        Ok(match reply {
            SaveReply::Saved(_) => UpdateOutcome::Saved,
            SaveReply::Deleted => UpdateOutcome::Deleted,
            SaveReply::Moved(to) => UpdateOutcome::Moved(to),
            SaveReply::Gone | SaveReply::Exists => UpdateOutcome::Gone,
        })
    }

    /// An update by the save script. `instead` says the transaction was
    /// just refused: if the script works, updates use it from now on.
    async fn update_by_script(
        &self,
        link: &Link,
        key: &str,
        changes: &Changes<'_>,
        instead: bool,
    ) -> Result<SaveReply, Error> {
        let save = Save {
            create: false,
            expires: changes.expires_ms,
            delete_if_empty: changes.delete_if_empty,
            meta: changes.flags.as_ref(),
            set: changes.set.iter().copied(),
            remove: &changes.remove,
        };
        let reply = self.save(link, key, save).await?;
        if instead && self.transaction.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "Redis refused the update transaction (PEXPIRE NX needs Redis 7.0); sessions are updated with the save script from now on"
            );
        }
        Ok(reply)
    }

    /// An update as one `MULTI`/`EXEC` transaction (see the module doc);
    /// `None` when the server refused it as a whole (nothing was written).
    async fn transact(
        &self,
        link: &Link,
        key: &str,
        changes: &Changes<'_>,
    ) -> Result<Option<SaveReply>, Error> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HINCRBY").arg(key).arg(layout::REVISION).arg(1);
        let meta = changes.flags.as_ref();
        let fields = changes.set.len() + layout::meta_count(meta, false, changes.expires_ms);
        if fields > 0 {
            let mut hset = redis::cmd("HSET");
            hset.arg(key);
            for (k, v) in &changes.set {
                layout::data_arg(&mut hset, k);
                hset.arg(*v);
            }
            layout::meta_fields(meta, false, changes.expires_ms, |f, v| {
                hset.arg(f).arg(v);
            });
            pipe.add_command(hset).ignore();
        }
        if !changes.remove.is_empty() {
            let mut hdel = redis::cmd("HDEL");
            hdel.arg(key);
            for k in &changes.remove {
                layout::data_arg(&mut hdel, k);
            }
            pipe.add_command(hdel).ignore();
        }
        match changes.expires_ms {
            Some(ms) => pipe.cmd("PEXPIREAT").arg(key).arg(ms).ignore(),
            None => pipe
                .cmd("PEXPIRE")
                .arg(key)
                .arg(REMAINS_TTL_MS)
                .arg("NX")
                .ignore(),
        };
        let rev = match link.pipe_raw::<(i64,)>(&pipe).await? {
            Ok((rev,)) => rev,
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::ExecAbort) => return Ok(None),
            answer => classify(link, answer)?.0,
        };
        if let Ok(rev @ 2..) = u64::try_from(rev) {
            return Ok(Some(SaveReply::Saved(rev)));
        }
        let mut marks = redis::cmd("HMGET");
        marks.arg(key).arg(layout::VERSION).arg(layout::MOVED);
        let (version, moved): (Option<Vec<u8>>, Option<Vec<u8>>) =
            classify(link, link.run_raw(&marks).await?)?;
        if let Some(to) = moved {
            if changes.expires_ms.is_some() {
                // The transaction moved the marker's expiry: it gets its
                // short life back.
                let mut grace = redis::cmd("PEXPIREAT");
                grace.arg(key).arg(now_ms().saturating_add(ms(MOVED_GRACE)));
                link.run::<i64>(&grace).await?;
            }
            return Ok(Some(SaveReply::Moved(layout::moved_to(to)?)));
        }
        if version.is_none() {
            let mut del = redis::cmd("DEL");
            del.arg(key);
            if let Err(e) = link.run::<i64>(&del).await {
                tracing::warn!(error = %crate::error::Chain(&e), "could not delete the remains of a late save (they expire by themselves)");
            }
            return Ok(Some(SaveReply::Gone));
        }
        // A record from before revisions: it has one now.
        Ok(Some(SaveReply::Saved(1)))
    }

    pub(super) async fn delete(&self, link: &Link, key: &str) -> Result<(), Error> {
        let op = link.cache().map(|c| c.begin(key));
        let mut del = redis::cmd("DEL");
        del.arg(key);
        link.run::<i64>(&del).await?;
        drop(op); // the entry goes
        Ok(())
    }

    pub(super) async fn take(
        &self,
        link: &Link,
        key: &str,
        moved_to: &StorageId,
    ) -> Result<Option<Record>, Error> {
        let op = link.cache().map(|c| c.begin(key));
        let answer = link
            .eval(&self.scripts.take, key, |cmd| {
                cmd.arg(moved_to.as_str())
                    .arg(ms(MOVED_GRACE))
                    .arg(MARKER_REV);
            })
            .await?;
        let reply = classify(link, answer)?;
        drop(op); // the entry goes: the key now holds a forwarding marker
        layout::decode_record(layout::hash_reply(reply)?)
    }
}
