//! The conformance matrix: {MemoryStore, RedisStore, RedisStore with the
//! client cache} × {axum, actix-web}.

use std::time::Duration;

use sessionkit::{Codec, SessionConfig, SessionConfigBuilder, Transport};
use testkit::conformance::{self as c, Framework, StoreKind, Subject};

fn short_lived(base: SessionConfigBuilder) -> SessionConfig {
    base.with_idle_lifetime(Duration::from_millis(1500))
        .build()
        .expect("valid config")
}

fn small(base: SessionConfigBuilder) -> SessionConfig {
    base.with_max_size(1024).build().expect("valid config")
}

fn signed(base: SessionConfigBuilder) -> SessionConfig {
    base.with_signing_keys([b"conformance-signing-key-0123456789abcdef"])
        .build()
        .expect("valid config")
}

fn absolute(base: SessionConfigBuilder) -> SessionConfig {
    base.with_absolute_lifetime(Some(Duration::from_millis(1200)))
        .build()
        .expect("valid config")
}

/// The default settings.
fn plain() -> SessionConfigBuilder {
    SessionConfig::builder()
}

/// Values in MessagePack.
fn msgpack() -> SessionConfigBuilder {
    SessionConfig::builder().with_codec(Codec::MessagePack)
}

/// The id in `Authorization: Bearer`, no cookie.
fn bearer() -> SessionConfigBuilder {
    SessionConfig::builder().with_transport(Transport::Bearer)
}

macro_rules! matrix {
    ($store:expr, $fw:expr, $base:expr; $($name:ident $(with $config:ident)?),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                #[allow(unused_mut, unused_assignments)]
                let mut config = $base().build().expect("valid config");
                $( config = $config($base()); )?
                let subject = Subject::start_with($store, $fw, config).await;
                c::$name(&subject).await;
            }
        )*
    };
}

macro_rules! suite {
    ($store:expr, $fw:expr) => {
        suite!($store, $fw, plain);
    };
    ($store:expr, $fw:expr, $base:expr) => {
        matrix!($store, $fw, $base;
            basic_flow,
            untouched_request_costs_nothing,
            malformed_cookie_costs_nothing,
            round_trip_budget,
            forged_id_is_not_adopted,
            raw_id_absent_from_store,
            emptied_session_is_deleted,
            login_cycles_id,
            logout_destroys,
            concurrent_different_keys,
            logout_during_slow_write_does_not_resurrect,
            cookie_and_cache_headers,
            values_round_trip,
            expired_session_is_gone with short_lived,
            touch_is_throttled with short_lived,
            oversized_value_is_refused with small,
            signed_cookie_rejects_forgeries with signed,
            absolute_timeout_ends_active_session with absolute,
            vary_cookie_on_every_read_path,
            cookie_tossing_neither_shadows_nor_signs_out,
            a_non_utf8_cookie_pair_is_skipped,
            parallel_writes_store_at_most_the_limit,
            a_count_of_another_type_starts_over,
            devices_are_listed_and_ended_one_by_one,
            logout_everywhere_ends_every_device,
            a_save_in_flight_does_not_undo_a_revocation,
        );
    };
}

mod memory_axum {
    use super::*;
    suite!(StoreKind::Memory, Framework::Axum);
}

mod redis_axum {
    use super::*;
    suite!(StoreKind::Redis, Framework::Axum);
}

mod redis_cached_axum {
    use super::*;
    suite!(StoreKind::RedisCached, Framework::Axum);
}

// TLS through one framework (the transport is below the adapters).
mod redis_tls_axum {
    use super::*;
    suite!(StoreKind::RedisTls, Framework::Axum);
}

mod redis_tls_cached_axum {
    use super::*;
    suite!(StoreKind::RedisTlsCached, Framework::Axum);
}

// Sentinel through one framework, too.
mod redis_sentinel_axum {
    use super::*;
    suite!(StoreKind::RedisSentinel, Framework::Axum);
}

mod redis_sentinel_cached_axum {
    use super::*;
    suite!(StoreKind::RedisSentinelCached, Framework::Axum);
}

mod memory_actix {
    use super::*;
    suite!(StoreKind::Memory, Framework::Actix);
}

mod redis_actix {
    use super::*;
    suite!(StoreKind::Redis, Framework::Actix);
}

mod redis_cached_actix {
    use super::*;
    suite!(StoreKind::RedisCached, Framework::Actix);
}
// Cluster through one framework.
mod redis_cluster_axum {
    use super::*;
    suite!(StoreKind::RedisCluster, Framework::Axum);
}

mod redis_cluster_cached_axum {
    use super::*;
    suite!(StoreKind::RedisClusterCached, Framework::Axum);
}

// MessagePack values, on the memory store and on Redis (the codec is below
// the adapters and the same on every Redis topology).
mod memory_msgpack_axum {
    use super::*;
    suite!(StoreKind::Memory, Framework::Axum, msgpack);
}

mod redis_msgpack_axum {
    use super::*;
    suite!(StoreKind::Redis, Framework::Axum, msgpack);
}

mod redis_cached_msgpack_actix {
    use super::*;
    suite!(StoreKind::RedisCached, Framework::Actix, msgpack);
}

/// Every check that is not about cookies themselves (their attributes,
/// tossing, raw `Cookie` headers), with a header transport; the client
/// fails any check on a `Set-Cookie`.
macro_rules! header_suite {
    ($store:expr, $fw:expr, $base:expr) => {
        matrix!($store, $fw, $base;
            basic_flow,
            untouched_request_costs_nothing,
            round_trip_budget,
            forged_id_is_not_adopted,
            raw_id_absent_from_store,
            emptied_session_is_deleted,
            login_cycles_id,
            logout_destroys,
            concurrent_different_keys,
            logout_during_slow_write_does_not_resurrect,
            values_round_trip,
            expired_session_is_gone with short_lived,
            touch_is_throttled with short_lived,
            oversized_value_is_refused with small,
            signed_cookie_rejects_forgeries with signed,
            absolute_timeout_ends_active_session with absolute,
            vary_cookie_on_every_read_path,
            parallel_writes_store_at_most_the_limit,
            a_count_of_another_type_starts_over,
            devices_are_listed_and_ended_one_by_one,
            logout_everywhere_ends_every_device,
            a_save_in_flight_does_not_undo_a_revocation,
            bearer_token_is_the_only_way_in,
        );
    };
}

mod memory_bearer_axum {
    use super::*;
    header_suite!(StoreKind::Memory, Framework::Axum, bearer);
}

mod redis_cached_bearer_axum {
    use super::*;
    header_suite!(StoreKind::RedisCached, Framework::Axum, bearer);
}

mod redis_bearer_actix {
    use super::*;
    header_suite!(StoreKind::Redis, Framework::Actix, bearer);
}
