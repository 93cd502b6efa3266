//! What an operator tool needs to see what is in Redis (`sessionctl`):
//! every key under the prefix, by `SCAN` on every primary (never `KEYS`),
//! what each one is, and the repair of users' indexes. Each call is one
//! key's (one slot's) or one node's.

use super::layout;
use super::RedisStore;
use crate::store::now_ms;
use crate::{Error, SessionHandle, StorageId};

/// A walk over every key under a store's prefix ([`RedisStore::scan`]).
#[derive(Debug)]
pub struct KeyScan {
    store: RedisStore,
    /// Nodes still to scan, with their cursors (`None`: one server).
    nodes: Vec<(Option<(String, u16)>, u64)>,
    count: usize,
}

impl KeyScan {
    /// The next batch of keys (about `count`, possibly none), or `None`
    /// once every node is done. A key may come twice (`SCAN`'s
    /// guarantee is that every key present throughout comes at least
    /// once).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if a node cannot be reached.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<String>>, Error> {
        let Some((node, cursor)) = self.nodes.last().cloned() else {
            return Ok(None);
        };
        let link = self.store.inner.connection.link().await?;
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", glob_escape(self.store.prefix())))
            .arg("COUNT")
            .arg(self.count);
        let (next, keys): (u64, Vec<String>) = link.run_on(node.as_ref(), &scan).await?;
        if next == 0 {
            self.nodes.pop();
        } else if let Some(last) = self.nodes.last_mut() {
            last.1 = next;
        }
        Ok(Some(keys))
    }
}

/// `s` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One key under the prefix, as [`RedisStore::inspect`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredKey {
    /// A session.
    Session(StoredSession),
    /// A forwarding marker a cycled session left (`ttl_ms`: its remaining
    /// time; `None`: it has no expiry, which no save leaves).
    Marker {
        /// Remaining time to live, in ms.
        ttl_ms: Option<u64>,
    },
    /// A user's index: how many sessions it lists.
    Index {
        /// Its entries.
        entries: u64,
    },
    /// Gone meanwhile, or not a key of this store.
    Other,
}

/// A session as an operator sees it: never its id, only its public
/// handle and storage id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredSession {
    /// The storage id.
    pub id: StorageId,
    /// The public handle.
    pub handle: SessionHandle,
    /// The user it is attached to.
    pub user: Option<String>,
    /// Unix ms.
    pub created_ms: u64,
    /// Unix ms (0: never recorded).
    pub seen_ms: u64,
    /// Unix ms.
    pub expires_ms: u64,
    /// The bytes of its keys and values (what the size limit counts).
    pub size: u64,
    /// Remaining time to live in ms (`None`: no expiry, which no save
    /// leaves).
    pub ttl_ms: Option<u64>,
}

impl RedisStore {
    /// A walk over every key under the prefix (`SCAN … MATCH <prefix>*` on
    /// every primary), `count` keys per step.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn scan(&self, count: usize) -> Result<KeyScan, Error> {
        let link = self.inner.connection.link().await?;
        let nodes = link.data_nodes().await?;
        Ok(KeyScan {
            store: self.clone(),
            nodes: nodes.into_iter().map(|n| (n, 0)).collect(),
            count: count.max(1),
        })
    }

    /// How many keys the primaries hold (`DBSIZE`, summed): every key, not
    /// only this store's — a scale for a progress bar.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn key_count_hint(&self) -> Result<u64, Error> {
        let link = self.inner.connection.link().await?;
        let mut total = 0;
        for node in link.data_nodes().await? {
            let n: u64 = link.run_on(node.as_ref(), &redis::cmd("DBSIZE")).await?;
            total += n;
        }
        Ok(total)
    }

    /// What `key` (from [`scan`](Self::scan)) is.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn inspect(&self, key: &str) -> Result<StoredKey, Error> {
        let Some(rest) = key.strip_prefix(self.prefix()) else {
            return Ok(StoredKey::Other);
        };
        let link = self.inner.connection.link().await?;
        let mut pipe = redis::pipe();
        pipe.cmd("TYPE").arg(key);
        pipe.cmd("PTTL").arg(key);
        let (kind, ttl): (String, i64) = link.pipe(&pipe).await?;
        let ttl_ms = u64::try_from(ttl).ok();
        match kind.as_str() {
            "zset" if rest.starts_with("user:") => {
                let mut card = redis::cmd("ZCARD");
                card.arg(key);
                Ok(StoredKey::Index {
                    entries: link.run(&card).await?,
                })
            }
            "hash" => {
                let Some(id) = StorageId::parse(rest.to_owned()) else {
                    return Ok(StoredKey::Other);
                };
                let mut get = redis::cmd("HMGET");
                get.arg(key).arg(&[
                    layout::VERSION,
                    layout::MOVED,
                    layout::USER,
                    layout::CREATED,
                    layout::SEEN,
                    layout::EXPIRES,
                    layout::SIZE,
                ]);
                let fields: Vec<Option<String>> = link.run(&get).await?;
                let field = |i: usize| fields.get(i).cloned().flatten();
                let num = |i: usize| field(i).and_then(|v| v.parse().ok()).unwrap_or(0);
                if field(0).is_none() {
                    return Ok(StoredKey::Other);
                }
                if field(1).is_some() {
                    return Ok(StoredKey::Marker { ttl_ms });
                }
                Ok(StoredKey::Session(StoredSession {
                    handle: id.handle(),
                    id,
                    user: field(2).filter(|u| !u.is_empty()),
                    created_ms: num(3),
                    seen_ms: num(4),
                    expires_ms: num(5),
                    size: num(6),
                    ttl_ms,
                }))
            }
            _ => Ok(StoredKey::Other),
        }
    }

    /// Repairs the key `key` (from [`scan`](Self::scan)): a user's index
    /// loses the entries of sessions that ended (expired, deleted, moved,
    /// attached to another user since) and gets an expiry if it lacks
    /// one; a marker or a session without an expiry gets one (a marker
    /// expires now, a session at its recorded deadline). How many entries
    /// or keys it removed or fixed.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn purge(&self, key: &str) -> Result<u64, Error> {
        let link = self.inner.connection.link().await?;
        match self.inspect(key).await? {
            StoredKey::Index { .. } => {
                let mut range = redis::cmd("ZRANGE");
                range.arg(key).arg(0).arg(-1).arg("WITHSCORES");
                let entries: Vec<(String, f64)> = link.run(&range).await?;
                let now = now_ms();
                let mut removed = 0;
                let mut latest = 0.0_f64;
                for (sid, score) in entries {
                    let record_key = format!("{}{sid}", self.prefix());
                    let live = match self.inspect(&record_key).await? {
                        StoredKey::Session(s) => s
                            .user
                            .is_some_and(|u| layout::index_key(self.prefix(), &u) == key),
                        _ => false,
                    };
                    if live && score >= now as f64 {
                        latest = latest.max(score);
                        continue;
                    }
                    let mut zrem = redis::cmd("ZREM");
                    zrem.arg(key).arg(&sid);
                    removed += link.run::<u64>(&zrem).await?;
                }
                let mut ttl = redis::cmd("PTTL");
                ttl.arg(key);
                if link.run::<i64>(&ttl).await? == -1 && latest > 0.0 {
                    let mut expire = redis::cmd("PEXPIREAT");
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    expire.arg(key).arg(latest as u64);
                    link.run::<i64>(&expire).await?;
                    removed += 1;
                }
                Ok(removed)
            }
            StoredKey::Marker { ttl_ms: None } => {
                let mut del = redis::cmd("DEL");
                del.arg(key);
                link.run::<u64>(&del).await
            }
            StoredKey::Session(s) if s.ttl_ms.is_none() => {
                let mut expire = redis::cmd("PEXPIREAT");
                expire.arg(key).arg(s.expires_ms.max(1));
                link.run::<i64>(&expire).await?;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(super::glob_escape("session:"), "session:");
        assert_eq!(super::glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
