//! Where and when the Redis store's connection opens: on first use, on
//! the runtime of the call that needs it (under actix-web, a worker's),
//! not where the store was built — and not before Redis is there.

use std::time::{Duration, Instant};

use sessionkit::store::SessionStore;
use sessionkit::{RedisStore, SessionConfig, SessionId};
use testkit::conformance::{serve, Framework};
use testkit::RedisServer;
use tokio::runtime::{Builder, Handle};

/// A stand-in for an actix-web worker: a single-threaded runtime on its own
/// thread, running until stopped.
struct Worker {
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start() -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                ready_tx.send(Handle::current()).unwrap();
                let _ = stopped.await;
            });
        });
        Worker {
            handle: ready_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn resp3_clients(redis: &RedisServer) -> usize {
    let clients: String = redis.cmd(&["CLIENT", "LIST"]);
    clients.lines().filter(|l| l.contains(" resp=3")).count()
}

#[test]
fn the_connection_opens_on_the_first_runtime_that_uses_it() {
    let redis = RedisServer::start();
    let main = Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = main
        .block_on(RedisStore::connect(redis.url().as_str()))
        .unwrap();
    assert_eq!(main.metrics().num_alive_tasks(), 0, "nothing runs on main");
    assert_eq!(resp3_clients(&redis), 0, "no connection yet");
    let worker = Worker::start();
    let on_worker = store.clone();
    let id = SessionId::generate().storage_id();
    let record = crate::store::record("ann");
    let (sid, rec) = (id.clone(), record.clone());
    worker
        .handle
        .block_on(worker.handle.spawn(async move {
            assert!(on_worker.create(&sid, &rec).await.unwrap());
        }))
        .unwrap();
    // The connection's tasks (I/O, pushes, heartbeat) run on the worker.
    assert!(worker.handle.metrics().num_alive_tasks() >= 1);
    main.block_on(async {
        assert_eq!(store.load(&id).await.unwrap(), Some(record));
    });
    let started = Instant::now();
    while main.metrics().num_alive_tasks() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{} tasks on main",
            main.metrics().num_alive_tasks()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(resp3_clients(&redis), 1, "one connection, shared");
}

/// An app whose Redis is not up yet starts, answers its session routes 503
/// (its other routes normally), and serves them once Redis appears, within
/// 2 s and without a restart — on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_started_before_redis_serves_once_redis_is_up() {
    for framework in [Framework::Axum, Framework::Actix] {
        let mut redis = RedisServer::start();
        redis.kill();
        let store = RedisStore::connect(redis.url().as_str())
            .await
            .expect("a store without Redis");
        assert!(store.check().await.is_err(), "check fails fast: no Redis");
        let (addr, _server) = serve(framework, store.clone(), SessionConfig::default()).await;
        let mut user = testkit::client::Browser::new(
            format!("http://{addr}"),
            sessionkit::DEFAULT_COOKIE_NAME,
        );
        assert_eq!(user.get("/baseline").await.status, 200, "{framework:?}");
        let started = Instant::now();
        let r = user.get("/write").await;
        assert_eq!(r.status, 503, "{framework:?}: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        redis.restart();
        user.poll("/write", Duration::from_secs(2), |r| r.status == 200)
            .await;
        assert_eq!(user.get("/write").await.body, "2");
        assert!(store.check().await.is_ok());
    }
}
