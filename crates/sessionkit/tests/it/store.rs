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
    let mut meta = Meta::default();
    meta.created_ms = now;
    meta.expires_ms = now + 86_400_000;
    meta.permanent = true;
    meta.lifetime_ms = Some(86_400_000);
    let data = HashMap::from([
        ("user".to_owned(), format!("\"{user}\"").into_bytes()),
        // A value past the 63-byte short-length form of the payload.
        (
            "bio".to_owned(),
            format!("\"{}\"", "x".repeat(300)).into_bytes(),
        ),
    ]);
    Record::new(data, meta)
}

/// A store that may not use RESTORE (an ACL without it).
async fn store_without_restore(redis: &RedisServer) -> RedisStore {
    let _: String = redis.cmd(&[
        "ACL", "SETUSER", "app", "on", ">secret", "~*", "+@all", "-restore",
    ]);
    let url = format!("redis://app:secret@127.0.0.1:{}/", redis.port());
    RedisStore::connect(url.as_str()).await.unwrap()
}

/// How often `redis` refused `command` (`INFO commandstats`).
fn rejected_calls(redis: &RedisServer, command: &str) -> u64 {
    let stats: String = redis.cmd(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|l| {
            l.split(',')
                .find_map(|kv| kv.strip_prefix("rejected_calls="))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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
    // The connection opens on first use (HELLO, CLIENT TRACKING): not
    // part of a create.
    store
        .load(&SessionId::generate().storage_id())
        .await
        .unwrap();
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
        ha.contains_key("m:size") && ha.contains_key("d:bio"),
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
    // A small record: Redis keeps both as a listpack, and the two
    // serialize to the same bytes.
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
    // One byte over Redis's listpack limit: a hash table, as for the
    // script's HSET.
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
    assert_eq!(
        rejected_calls(&redis, "restore"),
        1,
        "RESTORE was tried once, then no more"
    );
}

fn changes<'a>(set: &'a [(&'a str, &'a [u8])], expires_ms: Option<u64>) -> Changes<'a> {
    let mut changes = Changes::default();
    changes.set = set.to_vec();
    changes.expires_ms = expires_ms;
    changes
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

/// A record written before sizes were kept (no `m:size`) is updated, and
/// has its exact size from then on (the limit counts it).
#[tokio::test]
async fn a_record_without_a_size_is_updated_and_measured() {
    let redis = RedisServer::start();
    let store = RedisStore::builder()
        .without_client_cache()
        .connect(redis.url().as_str())
        .await
        .unwrap();
    let id = SessionId::generate().storage_id();
    let r = record("ann");
    assert!(store.create(&id, &r).await.unwrap());
    let key = format!("session:{id}");
    let size: String = redis.cmd(&["HGET", &key, "m:size"]);
    assert_eq!(size, r.size().to_string());
    let _: i64 = redis.cmd(&["HDEL", &key, "m:size"]);
    let outcome = store
        .update(&id, &changes(&[("cart", b"[1]")], None))
        .await
        .unwrap();
    assert_eq!(outcome, UpdateOutcome::Saved);
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.data["cart"], b"[1]");
    assert_eq!(loaded.data["user"], b"\"ann\"");
    let size: String = redis.cmd(&["HGET", &key, "m:size"]);
    assert_eq!(size, loaded.size().to_string());
}

/// The size limit holds in Redis, whatever runs in parallel: 40 updates of
/// different keys at once, each within the limit on its own, store at most
/// the limit, and shrinking a record over the limit is still allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_updates_never_store_more_than_the_limit() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(redis.url().as_str()).await.unwrap();
    let id = SessionId::generate().storage_id();
    assert!(store.create(&id, &record("ann")).await.unwrap());
    let limit = 100_000;
    let mut saves = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (store, id) = (store.clone(), id.clone());
        saves.spawn(async move {
            let (key, value) = (format!("k{i}"), vec![b'x'; 30_000]);
            let set = [(key.as_str(), value.as_slice())];
            let mut c = changes(&set, None);
            c.max_size = Some(limit);
            store.update(&id, &c).await
        });
    }
    let outcomes: Vec<_> = saves.join_all().await;
    let saved = outcomes.iter().filter(|o| o.is_ok()).count();
    assert!(
        outcomes
            .iter()
            .all(|o| o.as_ref().is_ok_and(|o| *o == UpdateOutcome::Saved)
                || o.as_ref().is_err_and(|e| e.is_too_large())),
        "{outcomes:?}"
    );
    let stored = store.load(&id).await.unwrap().unwrap();
    assert!(stored.size() <= limit, "{} bytes stored", stored.size());
    assert_eq!(saved, 3, "as many as fit: {}", stored.size());
    let size: String = redis.cmd(&["HGET", &format!("session:{id}"), "m:size"]);
    assert_eq!(size, stored.size().to_string());
    // Removing (or shrinking) is never refused.
    let mut shrink = changes(&[], None);
    shrink.remove = vec!["k0", "k1", "k2", "k3"];
    shrink.max_size = Some(10);
    assert_eq!(
        store.update(&id, &shrink).await.unwrap(),
        UpdateOutcome::Saved
    );
}

/// The hand-built `RESTORE` payloads against Redis itself, over random
/// records: every test server runs with `sanitize-dump-payload yes` (a
/// malformed payload is refused, not loaded), and the hash a `RESTORE`
/// made must be the one the save script's `HSET`s make of the same record
/// — the same fields and values, the same encoding, the same expiry, and,
/// where Redis keeps it as a listpack, the same `DUMP` bytes. Both
/// layouts: a store that knows the server is 7.0 sends small records as
/// listpacks, one that may not ask the version (`INFO` denied) sends the
/// plain hash layout, as it would to an older Redis.
#[test]
fn restore_payloads_make_what_hset_makes() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let redis = RedisServer::start();
    let sanitize: Vec<String> = redis.cmd(&["CONFIG", "GET", "sanitize-dump-payload"]);
    assert_eq!(sanitize[1], "yes");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (restoring, plain, scripting) = rt.block_on(async {
        let restoring = RedisStore::builder()
            .without_client_cache()
            .connect(redis.url().as_str())
            .await
            .unwrap();
        let plain = store_denied(&redis, "noinfo", &["info"]).await;
        (restoring, plain, store_without_restore(&redis).await)
    });
    // Each integer encoding of a listpack, on both sides of its bounds.
    let edges: Vec<i64> = [0, 127, 4095, 32_767, 8_388_607, 2_147_483_647]
        .into_iter()
        .flat_map(|m: i64| [m, m + 1, -m - 1, -m - 2])
        .chain([i64::MAX, i64::MIN])
        .collect();
    let number = prop_oneof![
        proptest::sample::select(edges.clone()),
        -100_000i64..100_000,
        any::<i64>(),
    ];
    // Values a listpack keeps (at most 64 bytes): bytes, numbers (which
    // Redis stores as integers in a listpack), number-like strings (which
    // it does not), lengths at the bound.
    let small = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..=64),
        number.prop_map(|n| n.to_string().into_bytes()),
        (0u32..100_000).prop_map(|n| format!("{n:07}").into_bytes()),
        (60usize..=64).prop_map(|n| vec![b'v'; n]),
    ];
    let large = proptest::collection::vec(any::<u8>(), 65..400);
    let any_size = prop_oneof![3 => small.clone(), 1 => large];
    let data = prop_oneof![
        // Most records fit a listpack: the layout built byte for byte.
        4 => proptest::collection::hash_map("\\PC{0,12}", small.clone(), 0..30),
        1 => proptest::collection::hash_map("\\PC{0,12}", any_size, 1..20),
        // More fields than a listpack holds (128).
        1 => proptest::collection::hash_map("[a-z0-9]{1,8}", small, 125..140),
    ];
    let meta = (
        any::<bool>(),
        proptest::option::of(1u64..u64::from(u32::MAX)),
        proptest::option::of(1u64..u64::MAX),
    );
    let mut runner = TestRunner::new(Config {
        cases: 160,
        ..Config::default()
    });
    let check = |r: Record| -> Result<(), TestCaseError> {
        let (a, b, c) = (
            SessionId::generate(),
            SessionId::generate(),
            SessionId::generate(),
        );
        rt.block_on(async {
            assert!(restoring.create(&a.storage_id(), &r).await.unwrap());
            assert!(scripting.create(&b.storage_id(), &r).await.unwrap());
            assert!(plain.create(&c.storage_id(), &r).await.unwrap());
        });
        let key = |id: &SessionId| format!("session:{}", id.storage_id());
        let kb = key(&b);
        let hash = |k: &str| -> HashMap<Vec<u8>, Vec<u8>> { redis.cmd(&["HGETALL", k]) };
        let encoding = |k: &str| -> String { redis.cmd(&["OBJECT", "ENCODING", k]) };
        let expiry = |k: &str| -> i64 { redis.cmd(&["PEXPIRETIME", k]) };
        let dump = |k: &str| -> Vec<u8> { redis.cmd(&["DUMP", k]) };
        for restored in [key(&a), key(&c)] {
            prop_assert_eq!(hash(&restored), hash(&kb));
            prop_assert_eq!(encoding(&restored), encoding(&kb));
            prop_assert_eq!(expiry(&restored), expiry(&kb));
            if encoding(&kb) == "listpack" {
                prop_assert_eq!(dump(&restored), dump(&kb));
            }
        }
        let loaded = rt.block_on(restoring.load(&a.storage_id())).unwrap();
        prop_assert_eq!(loaded, Some(r));
        Ok(())
    };
    // Every edge at once, then random records.
    let mut edge_record = record("x");
    edge_record.data = edges
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("e{i}"), n.to_string().into_bytes()))
        .chain((60..=64).map(|n| (format!("l{n}"), vec![b'v'; n])))
        .collect();
    check(edge_record).unwrap();
    runner
        .run(&(data, meta), |(data, (permanent, lifetime, absolute))| {
            let mut r = record("x");
            r.data = data;
            r.meta.permanent = permanent;
            r.meta.lifetime_ms = lifetime;
            r.meta.absolute_ms = absolute;
            check(r)
        })
        .unwrap();
}

/// A store as an ACL user of `redis` that may not run `commands`.
async fn store_denied(redis: &RedisServer, user: &str, commands: &[&str]) -> RedisStore {
    let mut rules = vec!["ACL", "SETUSER", user, "on", ">secret", "~*", "+@all"];
    let denied: Vec<String> = commands.iter().map(|c| format!("-{c}")).collect();
    rules.extend(denied.iter().map(String::as_str));
    let _: String = redis.cmd(&rules);
    let url = format!("redis://{user}:secret@127.0.0.1:{}/", redis.port());
    RedisStore::builder()
        .without_client_cache()
        .connect(url.as_str())
        .await
        .unwrap()
}
