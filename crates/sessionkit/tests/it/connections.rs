//! Where the Redis store's connections run: on the worker runtimes that
//! registered (`SessionStore::worker_started`, which the actix-web adapter
//! calls on each worker), not on the runtime that built the store.

use std::time::{Duration, Instant};

use sessionkit::store::SessionStore;
use sessionkit::{RedisStore, SessionId};
use testkit::RedisServer;
use tokio::runtime::{Builder, Handle};

/// A stand-in for an actix-web worker: a single-threaded runtime on its own
/// thread, registered with the store from that thread, running until
/// stopped.
struct Worker {
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(store: RedisStore) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                store.worker_started();
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

#[test]
fn connections_open_on_the_registered_workers() {
    let redis = RedisServer::start();
    let main = Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = main
        .block_on(
            RedisStore::builder()
                .with_connections(2)
                .connect(redis.url().as_str()),
        )
        .unwrap();
    // `connect` made a connection (and its heartbeat) on `main`.
    assert!(main.metrics().num_alive_tasks() >= 1);
    let workers = [Worker::start(store.clone()), Worker::start(store.clone())];
    for w in &workers {
        assert_eq!(w.handle.metrics().num_alive_tasks(), 0);
    }
    // Sessions in both shards (20 random ids: both shards get some, but for
    // a 2^-19 chance), each written and read back from `main`.
    main.block_on(async {
        for _ in 0..20 {
            let id = SessionId::generate().storage_id();
            let record = crate::store::record("ann");
            assert!(store.create(&id, &record).await.unwrap());
            assert_eq!(store.load(&id).await.unwrap(), Some(record));
        }
    });
    // Each worker now runs one connection's tasks; the connection made on
    // `main` was replaced and has stopped.
    for w in &workers {
        assert!(w.handle.metrics().num_alive_tasks() >= 1);
    }
    let started = Instant::now();
    while main.metrics().num_alive_tasks() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{} tasks left on main",
            main.metrics().num_alive_tasks()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let clients: String = redis.cmd(&["CLIENT", "LIST"]);
    assert_eq!(clients.lines().filter(|l| l.contains(" resp=3")).count(), 2);
}
