//! Each limit stops a call with a typed error naming it; the trapped
//! instance is discarded and the host goes on serving.

use crate::util::*;
use serde_json::json;
use std::time::Duration;
use warden::{Error, ErrorKind, InstanceMode, Limit, Limits};

fn limited(
    fuel: Option<u64>,
    memory: Option<u64>,
    timeout_ms: Option<u64>,
) -> warden::PluginConfig {
    let mut p = hostile();
    p.limits = Limits {
        fuel,
        memory,
        timeout_ms,
        ..Limits::default()
    };
    p
}

fn expect_limit(r: warden::Result<serde_json::Value>, want: Limit) {
    match r {
        Err(Error::LimitExceeded {
            limit, ref detail, ..
        }) if limit == want => {
            assert!(!detail.is_empty());
        }
        other => panic!("expected the {want} limit, got {other:?}"),
    }
}

async fn still_serves(host: &warden::Host) {
    let out = host
        .call("hostile.echo", json!({"still": "alive"}))
        .await
        .expect("next call works");
    assert_eq!(out, json!({"still": "alive"}));
}

#[tokio::test]
async fn fuel_limit_stops_a_loop_and_the_next_call_works() {
    let host = host_with("hostile", limited(Some(5_000_000), None, Some(60_000))).await;
    let err = host.call("hostile.spin", json!(null)).await;
    expect_limit(err, Limit::Fuel);
    still_serves(&host).await;
}

#[tokio::test]
async fn time_limit_stops_a_loop_and_the_next_call_works() {
    let host = host_with("hostile", limited(Some(u64::MAX / 2), None, Some(200))).await;
    let started = std::time::Instant::now();
    let err = host.call("hostile.spin", json!(null)).await;
    expect_limit(err, Limit::Time);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the loop was not stopped in time"
    );
    still_serves(&host).await;
}

#[tokio::test]
async fn memory_limit_stops_a_memory_bomb_and_the_next_call_works() {
    let host = host_with("hostile", limited(None, Some(16 << 20), None)).await;
    expect_limit(
        host.call("hostile.alloc", json!({"arg": 64})).await,
        Limit::Memory,
    );
    still_serves(&host).await;
    // Within the limit, allocation works.
    let ok = host.call("hostile.alloc", json!({"arg": 4})).await.unwrap();
    assert_eq!(ok["allocated"], 4 << 20);
}

#[tokio::test]
async fn a_refused_reservation_is_an_error_the_guest_reports() {
    let host = host_with("hostile", limited(None, Some(16 << 20), None)).await;
    match host.call("hostile.try-alloc", json!({"arg": 64})).await {
        Err(Error::Capability {
            kind: ErrorKind::Unavailable,
            message,
            ..
        }) => assert!(message.contains("refused"), "{message}"),
        other => panic!("{other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn stack_overflow_and_panic_are_contained() {
    let host = host_with("hostile", hostile()).await;
    expect_limit(host.call("hostile.stack", json!(null)).await, Limit::Stack);
    still_serves(&host).await;
    match host.call("hostile.panic", json!(null)).await {
        Err(Error::Trap {
            plugin, capability, ..
        }) => {
            assert_eq!(plugin, "hostile");
            assert_eq!(capability, "hostile.panic");
        }
        other => panic!("{other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn a_trapped_instance_is_discarded() {
    let host = host_with("hostile", limited(Some(5_000_000), None, None)).await;
    assert_eq!(
        host.call("hostile.count", json!(null)).await.unwrap()["calls"],
        1
    );
    assert_eq!(
        host.call("hostile.count", json!(null)).await.unwrap()["calls"],
        2,
        "warm instance reused"
    );
    expect_limit(host.call("hostile.spin", json!(null)).await, Limit::Fuel);
    assert_eq!(
        host.call("hostile.count", json!(null)).await.unwrap()["calls"],
        1,
        "a fresh instance after the trap"
    );
}

#[tokio::test]
async fn fresh_mode_gives_every_call_a_new_instance() {
    let mut p = hostile();
    p.instances = InstanceMode::Fresh;
    let host = host_with("hostile", p).await;
    for _ in 0..3 {
        assert_eq!(
            host.call("hostile.count", json!(null)).await.unwrap()["calls"],
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_calls_are_served_while_one_runs_away() {
    let host = host_with("hostile", limited(Some(u64::MAX / 2), None, Some(1_500))).await;
    let runaway = {
        let host = host.clone();
        tokio::spawn(async move { host.call("hostile.spin", json!(null)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..20 {
        assert_eq!(host.call("hostile.echo", json!(i)).await.unwrap(), json!(i));
    }
    assert!(
        !runaway.is_finished(),
        "the runaway call should still be running"
    );
    expect_limit(runaway.await.unwrap(), Limit::Time);
}

#[tokio::test]
async fn config_reaches_init_and_a_failing_init_is_a_load_error() {
    let mut p = hostile();
    p.config = json!({"fail-init": true});
    let mut c = config(std::path::Path::new(".")).with_plugin("bad", p);
    c.host.strict_load = true;
    let err = warden::Host::new(c).await.err().expect("load fails");
    assert!(matches!(err, warden::Error::Load { .. }), "{err}");
    assert!(err.to_string().contains("configured to fail init"), "{err}");

    let mut hello = warden::PluginConfig::new(component("hello"));
    hello.config = json!({"greeting": "Ahoy"});
    let host = host_with("hello", hello).await;
    assert_eq!(
        host.call("hello.greet", json!({"name": "Ada"}))
            .await
            .unwrap()["message"],
        "Ahoy, Ada!"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_instances_makes_further_calls_wait() {
    let mut p = limited(Some(u64::MAX / 2), None, Some(800));
    p.max_instances = 1;
    let host = host_with("hostile", p).await;
    let started = std::time::Instant::now();
    let runaway = {
        let host = host.clone();
        tokio::spawn(async move { host.call("hostile.spin", json!(null)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The only instance is busy for the runaway's whole 800 ms budget: this
    // call can run only after it is stopped (without the cap it would be
    // served at once, about 100 ms in).
    assert_eq!(host.call("hostile.echo", json!(1)).await.unwrap(), json!(1));
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "a second instance ran beside the first ({:?})",
        started.elapsed()
    );
    expect_limit(runaway.await.unwrap(), Limit::Time);
}
