//! The Redis store's create path, called directly: one `RESTORE` that
//! never overwrites, the same layout as the save script, and the script as
//! the fallback where `RESTORE` is not allowed.

use std::collections::HashMap;

use sessionkit::store::{Changes, Meta, Record, SessionStore, UpdateOutcome};
use sessionkit::{RedisStore, SessionId};
use testkit::RedisServer;

/// A record of `user`, created now and expiring in a day.
pub(crate) fn record(user: &str) -> Record {
    let now = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    Record {
        data: HashMap::from([
            ("user".to_owned(), format!("\"{user}\"").into_bytes()),
            // A value past the 63-byte short-length form of the payload.
            (
                "bio".to_owned(),
                format!("\"{}\"", "x".repeat(300)).into_bytes(),
            ),
        ]),
        meta: Meta {
            created_ms: now,
            expires_ms: now + 86_400_000,
            permanent: true,
            lifetime_ms: Some(86_400_000),
            absolute_ms: None,
        },
    }
}

/// A store that may not use RESTORE (an ACL without it).
async fn store_without_restore(redis: &RedisServer) -> RedisStore {
    let _: String = redis.cmd(&[
        "ACL", "SETUSER", "app", "on", ">secret", "~*", "+@all", "-restore",
    ]);
    let url = format!("redis://app:secret@127.0.0.1:{}/", redis.port());
    RedisStore::connect(url.as_str()).await.unwrap()
}

fn hash(redis: &RedisServer, id: &SessionId) -> HashMap<String, String> {
    redis.cmd(&["HGETALL", &format!("session:{}", id.storage_id())])
}

#[tokio::test]
async fn create_is_one_restore_and_never_overwrites() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(redis.url().as_str()).await.unwrap();
    let id = SessionId::generate();
    let first = record("ann");
    redis.reset_stats();
    assert!(store.create(&id.storage_id(), &first).await.unwrap());
    assert_eq!(
        redis.command_counts(),
        HashMap::from([("restore".to_owned(), 1)])
    );
    assert!(
        !store
            .create(&id.storage_id(), &record("eve"))
            .await
            .unwrap(),
        "a second create under the same id is refused"
    );
    let loaded = store.load(&id.storage_id()).await.unwrap().unwrap();
    assert_eq!(loaded.data, first.data, "the first record is intact");
    assert_eq!(loaded.meta, first.meta);
    let key = format!("session:{}", id.storage_id());
    let expire_at: i64 = redis.cmd(&["PEXPIRETIME", &key]);
    assert_eq!(expire_at, i64::try_from(first.meta.expires_ms).unwrap());
}

#[tokio::test]
async fn restored_and_scripted_records_are_identical() {
    let redis = RedisServer::start();
    let restoring = RedisStore::connect(redis.url().as_str()).await.unwrap();
    let scripting = store_without_restore(&redis).await;
    let r = record("ann");
    let (a, b) = (SessionId::generate(), SessionId::generate());
    assert!(restoring.create(&a.storage_id(), &r).await.unwrap());
    assert!(scripting.create(&b.storage_id(), &r).await.unwrap());
    let (ha, hb) = (hash(&redis, &a), hash(&redis, &b));
    assert!(
        ha.contains_key("m:rev") && ha.contains_key("d:bio"),
        "{ha:?}"
    );
    assert_eq!(ha, hb, "same fields, same values");
    let encoding = |id: &SessionId| -> String {
        redis.cmd(&[
            "OBJECT",
            "ENCODING",
            &format!("session:{}", id.storage_id()),
        ])
    };
    assert_eq!(encoding(&a), encoding(&b), "same encoding");
    // A small record is sent as the listpack Redis itself would build: the
    // two hashes serialize to the same bytes.
    let mut small = r.clone();
    small.data.remove("bio");
    small.data.insert("n".to_owned(), b"42".to_vec());
    small.data.insert("neg".to_owned(), b"-70000".to_vec());
    small.data.insert("zero".to_owned(), b"007".to_vec());
    small
        .data
        .insert("max".to_owned(), "m".repeat(64).into_bytes());
    let (c, d) = (SessionId::generate(), SessionId::generate());
    assert!(restoring.create(&c.storage_id(), &small).await.unwrap());
    assert!(scripting.create(&d.storage_id(), &small).await.unwrap());
    assert_eq!(encoding(&c), "listpack");
    let dump = |id: &SessionId| -> Vec<u8> {
        redis.cmd(&["DUMP", &format!("session:{}", id.storage_id())])
    };
    assert_eq!(dump(&c), dump(&d), "byte for byte what the script builds");
    assert_eq!(hash(&redis, &c)["d:zero"], "007");
    let loaded = restoring.load(&c.storage_id()).await.unwrap().unwrap();
    assert_eq!(loaded.data, small.data);
    // One byte over the listpack limit: the plain layout, which Redis
    // re-encodes as a hash table, as it does the script's HSET.
    let mut over = small.clone();
    over.data
        .insert("max".to_owned(), "m".repeat(65).into_bytes());
    let (e, f) = (SessionId::generate(), SessionId::generate());
    assert!(restoring.create(&e.storage_id(), &over).await.unwrap());
    assert!(scripting.create(&f.storage_id(), &over).await.unwrap());
    assert_eq!(encoding(&e), "hashtable");
    assert_eq!(encoding(&f), "hashtable");
    assert_eq!(hash(&redis, &e), hash(&redis, &f));
    assert_eq!(
        encoding(&a),
        "hashtable",
        "a 300-byte value is not listpack-sized"
    );
}

#[tokio::test]
async fn where_restore_is_denied_the_script_creates() {
    let redis = RedisServer::start();
    let store = store_without_restore(&redis).await;
    for user in ["ann", "bob", "cy"] {
        let id = SessionId::generate();
        assert!(store.create(&id.storage_id(), &record(user)).await.unwrap());
        let loaded = store.load(&id.storage_id()).await.unwrap().unwrap();
        assert_eq!(loaded.data, record(user).data);
        let again = store
            .create(&id.storage_id(), &record("eve"))
            .await
            .unwrap();
        assert!(!again, "the script refuses to overwrite too");
    }
    let stats: String = redis.cmd(&["INFO", "commandstats"]);
    let restore = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_restore:"))
        .unwrap_or_default();
    assert!(
        restore.contains("rejected_calls=1,"),
        "RESTORE was tried once, then no more: {restore}"
    );
}

fn changes<'a>(set: &'a [(&'a str, &'a [u8])], expires_ms: Option<u64>) -> Changes<'a> {
    Changes {
        set: set.to_vec(),
        remove: Vec::new(),
        flags: None,
        expires_ms,
        delete_if_empty: false,
    }
}

/// A save that arrives after the session was deleted finds it gone and
/// leaves nothing behind: no key, not even a hash without metadata.
#[tokio::test]
async fn a_late_update_of_a_deleted_session_leaves_nothing() {
    let redis = RedisServer::start();
    for store in [
        RedisStore::connect(redis.url().as_str()).await.unwrap(),
        RedisStore::builder()
            .without_client_cache()
            .connect(redis.url().as_str())
            .await
            .unwrap(),
    ] {
        let id = SessionId::generate().storage_id();
        assert!(store.create(&id, &record("ann")).await.unwrap());
        store.load(&id).await.unwrap().unwrap();
        let _: i64 = redis.cmd(&["DEL", &format!("session:{id}")]);
        for expires in [None, Some(4_000_000_000_000)] {
            let outcome = store
                .update(&id, &changes(&[("cart", b"[1]")], expires))
                .await
                .unwrap();
            assert_eq!(outcome, UpdateOutcome::Gone);
            let keys: Vec<String> = redis.cmd(&["KEYS", "*"]);
            assert!(keys.is_empty(), "nothing left: {keys:?}");
        }
        assert!(store.load(&id).await.unwrap().is_none());
    }
}

/// A save that arrives after the session moved (cycle_id) is answered with
/// the new id, and the forwarding marker keeps its short life.
#[tokio::test]
async fn an_update_of_a_moved_session_points_to_the_new_one() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(redis.url().as_str()).await.unwrap();
    let (old, new) = (
        SessionId::generate().storage_id(),
        SessionId::generate().storage_id(),
    );
    assert!(store.create(&old, &record("ann")).await.unwrap());
    store.load(&old).await.unwrap().unwrap();
    assert!(store.take(&old, &new).await.unwrap().is_some());
    // Every late update is told, not only the first (each bumps the
    // marker's revision, which stays far below any record's).
    for _ in 0..3 {
        let outcome = store
            .update(&old, &changes(&[("cart", b"[1]")], Some(4_000_000_000_000)))
            .await
            .unwrap();
        assert_eq!(outcome, UpdateOutcome::Moved(new.clone()));
    }
    let ttl: i64 = redis.cmd(&["PTTL", &format!("session:{old}")]);
    assert!(
        (0..=10_000).contains(&ttl),
        "the marker still expires in the grace: {ttl}"
    );
    assert!(
        store.load(&old).await.unwrap().is_none(),
        "the marker is no session"
    );
}

/// A record written before revisions existed (no `m:rev`) is updated, not
/// taken for a deleted session, and has a revision from then on.
#[tokio::test]
async fn a_record_without_a_revision_is_updated() {
    let redis = RedisServer::start();
    let store = RedisStore::builder()
        .without_client_cache()
        .connect(redis.url().as_str())
        .await
        .unwrap();
    let id = SessionId::generate().storage_id();
    assert!(store.create(&id, &record("ann")).await.unwrap());
    let key = format!("session:{id}");
    let _: i64 = redis.cmd(&["HDEL", &key, "m:rev"]);
    for _ in 0..2 {
        let outcome = store
            .update(&id, &changes(&[("cart", b"[1]")], None))
            .await
            .unwrap();
        assert_eq!(outcome, UpdateOutcome::Saved);
    }
    let rev: String = redis.cmd(&["HGET", &key, "m:rev"]);
    assert_eq!(rev, "2");
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.data["cart"], b"[1]");
    assert_eq!(loaded.data["user"], b"\"ann\"");
}
