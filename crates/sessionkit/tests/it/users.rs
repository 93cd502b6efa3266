//! A user's sessions across app instances, on every topology: "log out
//! everywhere" through the admin API ends every device's session on both
//! instances (each with the client cache) within the cache's coherence
//! bound; the cap per user; expiry empties the index.

use std::time::Duration;

use sessionkit::admin::UserSessions;
use sessionkit::{MemoryStore, RedisStore, SessionConfig, SessionStore};
use testkit::client::Browser;
use testkit::topology::Topology;

/// How soon another instance must see a revocation (the client cache's
/// tested coherence bound, as in `cache.rs`).
const BOUND: Duration = Duration::from_millis(100);

/// The contract app on `store`: its base URL.
async fn serve(store: impl SessionStore, config: SessionConfig) -> String {
    testkit::serve_axum(testkit::contract::axum_router(store, config)).await
}

/// Three devices of ann and one of bob, signed in on instance A, each
/// also used (so cached) on instance B; then every session of ann is
/// revoked through `admin`: each of her devices is signed out at once on
/// A and within the bound on B, on both instances; bob's is not.
async fn revoke_user_on_two_instances(a: RedisStore, b: RedisStore) {
    let admin = UserSessions::new(a.clone());
    let config = SessionConfig::default;
    let (on_a, on_b) = (
        serve(a.clone(), config()).await,
        serve(b.clone(), config()).await,
    );
    let mut devices: Vec<(Browser, Browser)> = Vec::new();
    for user in ["ann", "ann", "ann", "bob"] {
        let mut here = Browser::new(on_a.clone(), sessionkit::DEFAULT_COOKIE_NAME);
        assert_eq!(here.get(&format!("/login?user={user}")).await.status, 200);
        let mut there = Browser::new(on_b.clone(), sessionkit::DEFAULT_COOKIE_NAME)
            .with_cookie(here.cookie.as_deref());
        for browser in [&mut here, &mut there] {
            for _ in 0..2 {
                assert_eq!(browser.get("/whoami").await.body, user);
            }
        }
        devices.push((here, there));
    }
    let listed = admin.list("ann").await.expect("list");
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|s| s.user == "ann" && !s.current));
    let hits = b.client_cache_stats().map_or(0, |s| s.hits);
    assert!(
        hits >= 4,
        "B served each device's second read from its cache: {hits}"
    );

    assert_eq!(admin.revoke_all("ann").await.expect("revoke"), 3);
    for (i, (here, there)) in devices.iter_mut().take(3).enumerate() {
        assert_eq!(here.get("/whoami").await.status, 401, "device {i} on A");
        let took = there.poll("/whoami", BOUND, |r| r.status == 401).await;
        assert!(took < BOUND, "device {i} on B after {took:?}");
        assert_eq!(
            here.get("/whoami").await.status,
            401,
            "device {i} on A, again"
        );
    }
    let (bob_a, bob_b) = &mut devices[3];
    assert_eq!(bob_a.get("/whoami").await.body, "bob");
    assert_eq!(bob_b.get("/whoami").await.body, "bob");
    assert!(admin.list("ann").await.expect("list").is_empty());
    assert_eq!(admin.list("bob").await.expect("list").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_user_signs_out_every_device_on_both_instances() {
    let redis = testkit::RedisServer::start();
    let store = || RedisStore::connect(redis.url());
    revoke_user_on_two_instances(store().await.expect("a"), store().await.expect("b")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_user_on_cluster() {
    let cluster = testkit::cluster::ClusterSetup::start();
    let store = || RedisStore::builder().cluster(cluster.urls());
    revoke_user_on_two_instances(store().await.expect("a"), store().await.expect("b")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_user_on_sentinel() {
    let setup = testkit::sentinel::SentinelSetup::start();
    let store =
        || RedisStore::builder().sentinel(setup.sentinel_urls(), testkit::sentinel::SERVICE);
    revoke_user_on_two_instances(store().await.expect("a"), store().await.expect("b")).await;
}

/// Signs `n` devices in as `user` on `base`.
async fn sign_in(base: &str, user: &str, n: usize) -> Vec<Browser> {
    let mut list = Vec::new();
    for _ in 0..n {
        let mut b = Browser::new(base.to_owned(), sessionkit::DEFAULT_COOKIE_NAME);
        assert_eq!(b.get(&format!("/login?user={user}")).await.status, 200);
        list.push(b);
    }
    list
}

/// Past the cap, the session closest to expiring (the earliest sign-in
/// here) ends; the index never holds more than the cap. On each topology,
/// and on the memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_ends_the_session_closest_to_expiring() {
    let memory: std::sync::Arc<dyn SessionStore> =
        std::sync::Arc::new(MemoryStore::new().with_max_sessions_per_user(2));
    cap_holds("memory", memory).await;
    for start in Topology::all() {
        let topology = start();
        let store = topology
            .store(RedisStore::builder().with_max_sessions_per_user(2))
            .await;
        cap_holds(topology.name(), std::sync::Arc::new(store)).await;
        assert_eq!(
            topology.indexes(),
            [2],
            "{}: the index holds the cap",
            topology.name()
        );
    }
}

async fn cap_holds(name: &str, store: std::sync::Arc<dyn SessionStore>) {
    let base = serve(store.clone(), SessionConfig::default()).await;
    let mut devices = sign_in(&base, "ann", 2).await;
    for n in 0..3 {
        // Each sign-in ends the oldest one still signed in.
        devices.extend(sign_in(&base, "ann", 1).await);
        assert_eq!(
            devices[n].get("/whoami").await.status,
            401,
            "{name}: device {n}"
        );
        assert_eq!(devices[n + 1].get("/whoami").await.body, "ann", "{name}");
        assert_eq!(devices[n + 2].get("/whoami").await.body, "ann", "{name}");
        let listed = store.sessions_of("ann").await.expect("list");
        assert_eq!(listed.len(), 2, "{name}: {listed:?}");
    }
}

/// A session that expires leaves its user's list; the index key expires
/// with the last of its sessions. On each topology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_leaves_the_list() {
    for start in Topology::all() {
        let topology = start();
        let name = topology.name();
        let store = topology.store(RedisStore::builder()).await;
        let short = SessionConfig::builder()
            .with_permanent_lifetime(Duration::from_millis(700))
            .build()
            .expect("config");
        let long = serve(store.clone(), SessionConfig::default()).await;
        let brief = serve(store.clone(), short).await;
        let mut stays = sign_in(&long, "ann", 1).await;
        sign_in(&brief, "ann", 1).await;
        let admin = UserSessions::new(store.clone());
        assert_eq!(admin.list("ann").await.expect("list").len(), 2, "{name}");
        tokio::time::sleep(Duration::from_millis(900)).await;
        let listed = admin.list("ann").await.expect("list");
        assert_eq!(listed.len(), 1, "{name}: {listed:?}");
        assert_eq!(stays[0].get("/whoami").await.body, "ann", "{name}");
        assert_eq!(
            topology.indexes(),
            [1],
            "{name}: the expired entry was removed"
        );

        // Alone, a brief session's index goes with it.
        sign_in(&brief, "bob", 1).await;
        assert_eq!(admin.list("bob").await.expect("list").len(), 1, "{name}");
        assert_eq!(topology.indexes().len(), 2, "{name}");
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(topology.indexes(), [1], "{name}: bob's index expired");
    }
}

/// The listener hears a session's story — created, cycled and attached at
/// login, revoked from another device, destroyed at logout — by handles
/// only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_hears_each_event_by_handle() {
    use sessionkit::events::SessionEvent;
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&heard);
    let config = SessionConfig::builder()
        .with_listener(move |e: &SessionEvent| log.lock().unwrap().push(e.clone()))
        .build()
        .expect("config");
    let redis = testkit::RedisServer::start();
    let store = RedisStore::connect(redis.url()).await.expect("store");
    let base = serve(store, config).await;
    let take = || std::mem::take(&mut *heard.lock().unwrap());
    let handle_of = |b: &Browser| {
        let id: sessionkit::SessionId = b.cookie.as_deref().expect("cookie").parse().expect("id");
        id.storage_id().handle()
    };

    let mut first = Browser::new(base.clone(), sessionkit::DEFAULT_COOKIE_NAME);
    first.get("/new").await;
    let h1 = handle_of(&first);
    assert_eq!(
        take(),
        [SessionEvent::Created {
            handle: h1.clone(),
            user: None
        }]
    );
    first.get("/login?user=ann").await;
    let h2 = handle_of(&first);
    let ann = Some("ann".to_owned());
    assert_eq!(
        take(),
        [
            SessionEvent::IdCycled {
                from: h1,
                to: h2.clone(),
                user: ann.clone()
            },
            SessionEvent::UserAttached {
                handle: h2.clone(),
                user: "ann".to_owned()
            },
        ]
    );
    let mut second = sign_in(&base, "ann", 1).await.remove(0);
    let h3 = handle_of(&second);
    assert_eq!(
        take(),
        [
            SessionEvent::Created {
                handle: h3.clone(),
                user: ann.clone()
            },
            SessionEvent::UserAttached {
                handle: h3.clone(),
                user: "ann".to_owned()
            },
        ]
    );
    assert_eq!(
        second.get(&format!("/revoke?handle={h2}")).await.status,
        200
    );
    assert_eq!(
        take(),
        [SessionEvent::Revoked {
            handle: h2,
            user: "ann".to_owned()
        }]
    );
    second.get("/logout").await;
    // The contract's logout does not read the session: its user is not
    // known to the request.
    let events = take();
    assert_eq!(
        events,
        [SessionEvent::Destroyed {
            handle: h3,
            user: None
        }]
    );
    let mut third = sign_in(&base, "ann", 1).await.remove(0);
    let h4 = handle_of(&third);
    take();
    third.get("/clear").await;
    assert_eq!(
        take(),
        [SessionEvent::Destroyed {
            handle: h4,
            user: ann
        }]
    );
    let shown = format!("{events:?}");
    for c in [&first.cookie, &second.cookie].into_iter().flatten() {
        assert!(!shown.contains(c.as_str()), "an event shows a cookie id");
    }
}

/// Notes the application keeps about a device (here its user agent) come
/// back with the device list, on both stores; a note too long is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_notes_come_with_the_list() {
    use axum::extract::Query;
    use axum::routing::get;
    use sessionkit::{Session, SessionLayer};
    use std::collections::HashMap;

    let redis = testkit::RedisServer::start();
    let stores: Vec<std::sync::Arc<dyn SessionStore>> = vec![
        std::sync::Arc::new(MemoryStore::new()),
        std::sync::Arc::new(RedisStore::connect(redis.url()).await.expect("store")),
    ];
    for store in stores {
        let router = axum::Router::new()
            .route(
                "/in",
                get(
                    |s: Session, Query(q): Query<HashMap<String, String>>| async move {
                        s.insert("n", &1).await?;
                        s.set_user("ann").await?;
                        s.set_info("agent", q.get("agent").map_or("", String::as_str))
                            .await?;
                        Ok::<_, sessionkit::Error>("ok")
                    },
                ),
            )
            .route(
                "/anon",
                get(|s: Session| async move {
                    s.insert("cart", "apple").await?;
                    Ok::<_, sessionkit::Error>("ok")
                }),
            )
            .route(
                "/devices",
                get(|s: Session| async move {
                    let list = s.devices().await?;
                    let rows: Vec<String> = list
                        .iter()
                        .map(|d| {
                            let agent = d.info.get("agent").map_or("-", String::as_str);
                            format!("{agent}{}", if d.current { " (this one)" } else { "" })
                        })
                        .collect();
                    Ok::<_, sessionkit::Error>(rows.join(", "))
                }),
            )
            .layer(SessionLayer::new(store, SessionConfig::default()));
        let base = testkit::serve_axum(router).await;
        let mut laptop = Browser::new(base.clone(), sessionkit::DEFAULT_COOKIE_NAME);
        let mut phone = Browser::new(base, sessionkit::DEFAULT_COOKIE_NAME);
        // The laptop's session exists before it is attached (an update
        // attaches it); the phone's is attached as it is created.
        assert_eq!(laptop.get("/anon").await.status, 200);
        assert_eq!(
            laptop.get("/in?agent=Firefox%20on%20Linux").await.status,
            200
        );
        assert_eq!(phone.get("/in?agent=Safari%20on%20iOS").await.status, 200);
        let seen = laptop.get("/devices").await.body;
        assert!(
            seen == "Firefox on Linux (this one), Safari on iOS"
                || seen == "Safari on iOS, Firefox on Linux (this one)",
            "{seen}"
        );
        let long = "x".repeat(300);
        assert_eq!(laptop.get(&format!("/in?agent={long}")).await.status, 413);
        assert!(laptop
            .get("/devices")
            .await
            .body
            .contains("Firefox on Linux (this one)"));
    }
}
