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
//! - **update**: the save script, which checks the size limit in the same
//!   step as the write (`m:size` holds the record's size), refuses to
//!   recreate a record that is gone, and answers a forwarding marker with
//!   the storage id it points to. What a script writes is reported back to
//!   this connection (Redis's `NOLOOP` does not cover scripts), so an
//!   update drops the cached entry and the next load reads the record again.
//! - **delete**: `DEL`.
//! - With replica acknowledgements on, every write above is followed by
//!   `WAIT n ms` on the node holding the key: a write is confirmed only
//!   once that many replicas have it.
//! - **take** (cycle): the take script reads the hash and replaces it by a
//!   forwarding marker.
//! - The **index** of a session's user (another key, so another slot: its
//!   own step, never in one command with the record) is written first when
//!   a record with a user is created or has its expiry moved (the index
//!   script raises the entry's score to the new deadline and the index's
//!   TTL with it), and cleared after: `ZREM` once a record is deleted,
//!   taken or emptied. A crash between the two steps leaves at worst an
//!   entry whose record is gone, which listing removes; never a live
//!   session the index misses. Sessions ended past the cap are revoked.
//! - **revoke**: `HMGET` (user, forwarding) and `DEL` in one pipeline, then
//!   the index entry; a forwarding marker's target is revoked too.

use std::sync::atomic::{AtomicBool, Ordering};

use redis::{RedisError, Value};

use super::cache::Outcome;
use super::connection::Link;
use super::layout::{self, Extra, Save, Scripts};
use crate::store::{ms, now_ms, Changes, HeldValues, Record, UpdateOutcome, MOVED_GRACE};
use crate::{Error, StorageId};

/// How many forwarding markers a revocation follows (a session cycled
/// that many times within `MOVED_GRACE`).
const MAX_HOPS: usize = 8;

/// The storage id in a session key.
fn sid_of<'k>(link: &Link, key: &'k str) -> &'k str {
    key.strip_prefix(link.prefix()).unwrap_or(key)
}

/// The operations, with what the server has shown it allows.
pub(super) struct Commands {
    scripts: Scripts,
    /// Creates use `RESTORE` (until the server refuses it).
    restore: AtomicBool,
}

/// What a save answered.
enum SaveReply {
    Saved,
    /// Create refused: the key exists.
    Exists,
    /// Update refused: the record is gone.
    Gone,
    /// The update emptied the record, which was deleted.
    Deleted,
    /// The session moved to this storage id (update refused).
    Moved(StorageId),
    /// Update refused: the record would have this size, past the limit.
    TooLarge(usize),
    /// Update refused: an expected field holds something else; what each
    /// expected field holds.
    Conflict(HeldValues),
}

/// Reads the save script's reply (see `save.lua`).
fn save_reply(v: Value) -> Result<SaveReply, Error> {
    Ok(match v {
        Value::Array(items) => match items.as_slice() {
            [Value::Int(3), Value::Int(size)] => {
                SaveReply::TooLarge(usize::try_from(*size).unwrap_or(usize::MAX))
            }
            [Value::Int(4), held @ ..] => SaveReply::Conflict(conflict_reply(held)?),
            _ => return Err(Error::Corrupt("unexpected save reply".to_owned())),
        },
        Value::Int(1) => SaveReply::Saved,
        Value::Int(0) => SaveReply::Exists,
        Value::Int(2) => SaveReply::Deleted,
        Value::BulkString(to) => SaveReply::Moved(layout::moved_to(to)?),
        _ => SaveReply::Gone,
    })
}

/// The fields and values of the save script's conflict reply.
fn conflict_reply(held: &[Value]) -> Result<HeldValues, Error> {
    let bad = || Error::Corrupt("unexpected save reply".to_owned());
    held.chunks(2)
        .map(|pair| match pair {
            [Value::BulkString(f), Value::BulkString(v)] => {
                let key = std::str::from_utf8(f)
                    .ok()
                    .and_then(|f| f.strip_prefix(layout::DATA))
                    .ok_or_else(bad)?;
                Ok((key.to_owned(), layout::held_value(v).ok_or_else(bad)?))
            }
            _ => Err(bad()),
        })
        .collect()
}

/// An error reply to a command on a session key: `WRONGTYPE` means someone
/// else's value sits at our key, corrupt data for this session rather than
/// an outage; anything else is a failed call.
pub(super) fn classify<T>(link: &Link, answer: redis::RedisResult<T>) -> Result<T, Error> {
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
        let mut op = cache.begin(key);
        let track = !cache.tracking(&op);
        let (reply, tracking) = link.fetch(key, track).await?;
        if tracking {
            op.confirm_tracking();
        }
        let found = layout::decode_record(layout::hash_reply(classify(link, reply)?)?)?;
        op.finish(Outcome::Loaded(found.as_ref()));
        Ok(found)
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
        let evicted = match &record.user {
            Some(user) => {
                self.index(link, user, sid_of(link, key), record.meta.expires_ms)
                    .await?
            }
            None => Vec::new(),
        };
        let created = self.create_record(link, key, record).await?;
        self.end_evicted(link, evicted).await;
        Ok(created)
    }

    async fn create_record(&self, link: &Link, key: &str, record: &Record) -> Result<bool, Error> {
        if self.restore.load(Ordering::Relaxed) {
            let listpack = layout::reads_listpack(link.server_version().await?);
            let mut cmd = redis::cmd("RESTORE");
            cmd.arg(key)
                .arg(record.meta.expires_ms)
                .arg(layout::dump_record(record, listpack))
                .arg("ABSTTL");
            match link.run_raw::<Value>(&cmd).await? {
                Ok(_) => {
                    link.replicated(key).await?;
                    return Ok(true);
                }
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
        let info = layout::info_pairs(record);
        let save = Save {
            create: true,
            expires: Some(record.meta.expires_ms),
            delete_if_empty: false,
            meta: Some(&record.meta),
            limit: None,
            set: record.data.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            remove: &[],
            extra: layout::extra_of(record, &info),
            increments: &[],
            expect: &[],
        };
        let reply = self.save(link, key, save).await?;
        let created = matches!(reply, SaveReply::Saved);
        if created {
            link.replicated(key).await?;
        }
        Ok(created)
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
        let evicted = match changes.user {
            Some(user) if changes.attach || changes.expires_ms.is_some() => {
                let deadline = changes.expires_ms.unwrap_or(changes.stored_expires_ms);
                self.index(link, user, sid_of(link, key), deadline).await?
            }
            _ => Vec::new(),
        };
        // Ends with the call, whatever it answered: the entry goes.
        let op = link.cache().map(|c| c.begin(key));
        let save = Save {
            create: false,
            expires: changes.expires_ms,
            delete_if_empty: changes.delete_if_empty,
            meta: changes.flags.as_ref(),
            limit: changes.max_size,
            set: changes.set.iter().copied(),
            remove: &changes.remove,
            extra: Extra {
                user: changes.attach.then(|| changes.user.unwrap_or("")),
                seen_ms: changes.seen_ms,
                info: &changes.info,
            },
            increments: &changes.increments,
            expect: &changes.expect,
        };
        let reply = self.save(link, key, save).await?;
        drop(op);
        if matches!(reply, SaveReply::Saved | SaveReply::Deleted) {
            link.replicated(key).await?;
        }
        if let (SaveReply::Deleted, Some(user)) = (&reply, changes.user) {
            self.unindex(link, user, sid_of(link, key)).await?;
        }
        self.end_evicted(link, evicted).await;
        Ok(match reply {
            SaveReply::Saved => UpdateOutcome::Saved,
            SaveReply::Deleted => UpdateOutcome::Deleted,
            SaveReply::Moved(to) => UpdateOutcome::Moved(to),
            SaveReply::Gone | SaveReply::Exists => UpdateOutcome::Gone,
            SaveReply::Conflict(held) => UpdateOutcome::Conflict(held),
            SaveReply::TooLarge(size) => {
                return Err(Error::TooLarge {
                    size,
                    limit: changes.max_size.unwrap_or(0),
                })
            }
        })
    }

    pub(super) async fn delete(&self, link: &Link, key: &str) -> Result<(), Error> {
        self.end(link, key).await.map(|_| ())
    }

    /// Deletes the record at `key` and its index entry; whether there was
    /// one, and where it had moved (a forwarding marker).
    async fn end(&self, link: &Link, key: &str) -> Result<(bool, Option<String>), Error> {
        let op = link.cache().map(|c| c.begin(key));
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(key)
            .arg(layout::USER)
            .arg(layout::MOVED);
        pipe.cmd("DEL").arg(key);
        let answer = link
            .pipe_raw::<((Option<String>, Option<String>), i64)>(&pipe)
            .await?;
        let ((user, moved), deleted) = classify(link, answer)?;
        drop(op); // the entry goes
        link.replicated(key).await?;
        if let Some(user) = user.filter(|u| !u.is_empty()) {
            self.unindex(link, &user, sid_of(link, key)).await?;
        }
        Ok((deleted > 0, moved))
    }

    /// Ends the session `sid` and, if it had moved, the session it moved
    /// to: whether there was anything to end.
    pub(super) async fn revoke(&self, link: &Link, sid: &str) -> Result<bool, Error> {
        let mut next = Some(sid.to_owned());
        let mut ended = false;
        for _ in 0..MAX_HOPS {
            let Some(sid) = next.take() else { break };
            let (deleted, moved) = self.end(link, &format!("{}{sid}", link.prefix())).await?;
            ended |= deleted;
            next = moved;
        }
        Ok(ended)
    }

    /// Lists `sid` in `user`'s index until `deadline` (before its record
    /// is written); the storage ids the cap pushed out.
    async fn index(
        &self,
        link: &Link,
        user: &str,
        sid: &str,
        deadline: u64,
    ) -> Result<Vec<String>, Error> {
        let key = layout::index_key(link.prefix(), user);
        let answer = link
            .eval(&self.scripts.index, &key, |cmd| {
                cmd.arg(sid)
                    .arg(deadline)
                    .arg(now_ms())
                    .arg(link.max_per_user());
            })
            .await?;
        let evicted: Vec<String> = redis::from_redis_value(link.failed_on_error(answer)?)
            .map_err(|e| Error::Corrupt(format!("unexpected index reply: {e}")))?;
        link.replicated(&key).await?;
        Ok(evicted)
    }

    /// Takes `sid` out of `user`'s index.
    async fn unindex(&self, link: &Link, user: &str, sid: &str) -> Result<(), Error> {
        let key = layout::index_key(link.prefix(), user);
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(&key).arg(sid);
        link.run::<i64>(&zrem).await?;
        Ok(())
    }

    /// Ends the sessions the cap pushed out of an index. A failure is
    /// logged: the session that pushed them out is saved all the same.
    async fn end_evicted(&self, link: &Link, evicted: Vec<String>) {
        for sid in evicted {
            if let Err(e) = self.revoke(link, &sid).await {
                tracing::warn!(
                    error = %crate::error::Chain(&e),
                    "could not end a session past its user's cap"
                );
            }
        }
    }

    /// The live sessions attached to `user`; entries of others are removed
    /// from the index.
    pub(super) async fn sessions_of(
        &self,
        link: &Link,
        user: &str,
    ) -> Result<Vec<(StorageId, Record)>, Error> {
        let key = layout::index_key(link.prefix(), user);
        let now = now_ms();
        // Entries scored below now are of expired sessions (an entry's
        // score is never below its session's deadline): dropped here.
        let mut pipe = redis::pipe();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({now}"))
            .ignore();
        pipe.cmd("ZRANGEBYSCORE").arg(&key).arg(now).arg("+inf");
        let (sids,): (Vec<String>,) = link.pipe(&pipe).await?;
        let mut live = Vec::with_capacity(sids.len());
        for sid in sids {
            let record = self.load(link, &format!("{}{sid}", link.prefix())).await?;
            match (StorageId::parse(sid.clone()), record) {
                (Some(id), Some(r)) if r.user.as_deref() == Some(user) => live.push((id, r)),
                _ => self.unindex(link, user, &sid).await?,
            }
        }
        Ok(live)
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
                cmd.arg(moved_to.as_str()).arg(ms(MOVED_GRACE));
            })
            .await?;
        let reply = classify(link, answer)?;
        drop(op); // the entry goes: the key now holds a forwarding marker
        link.replicated(key).await?;
        let record = layout::decode_record(layout::hash_reply(reply)?)?;
        if let Some(user) = record.as_ref().and_then(|r| r.user.as_deref()) {
            self.unindex(link, user, sid_of(link, key)).await?;
        }
        Ok(record)
    }
}
