//! Plugins' progress reports (`host.progress`) reach the listener of the
//! call that caused them, and no other; paced, one line each.

use crate::util::{host_with, hostile, progress_listener as listener};
use serde_json::json;
use warden::{CallContext, Progress};

#[tokio::test]
async fn a_plugins_progress_reaches_the_callers_listener_paced() {
    let host = host_with("hostile", hostile()).await;
    let (sink, heard) = listener();
    let ctx = CallContext {
        progress: Some(&sink),
        ..Default::default()
    };
    host.call_with("hostile.progress", json!({"arg": 10}), &ctx)
        .await
        .unwrap();
    let heard = heard.lock().unwrap().clone();
    assert_eq!(
        heard.last(),
        Some(&Progress {
            capability: "hostile.progress".into(),
            done: 10,
            total: Some(10),
            message: "step 10".into(),
        }),
        "the last report always goes"
    );
    // Ten reports 20 ms apart: the first, about one each 100 ms, the last.
    assert!((2..=5).contains(&heard.len()), "{heard:?}");
    assert!(heard.windows(2).all(|w| w[0].done < w[1].done), "{heard:?}");
}

#[tokio::test]
async fn a_flood_is_paced_and_its_messages_stay_one_line() {
    let host = host_with("hostile", hostile()).await;
    let (sink, heard) = listener();
    let ctx = CallContext {
        progress: Some(&sink),
        ..Default::default()
    };
    host.call_with("hostile.progress-flood", json!({"arg": 50_000}), &ctx)
        .await
        .unwrap();
    let heard = heard.lock().unwrap().clone();
    assert!(
        (1..=5).contains(&heard.len()),
        "{} reports passed",
        heard.len()
    );
    assert!(heard.iter().all(|p| !p.message.contains('\n')), "{heard:?}");
}

#[tokio::test]
async fn a_call_hears_its_own_reports_only() {
    let host = host_with("hostile", hostile()).await;
    let (sink, heard) = listener();
    let ctx = CallContext {
        progress: Some(&sink),
        ..Default::default()
    };
    // Another caller's call runs beside it, with nobody listening.
    let (mine, other) = tokio::join!(
        host.call_with("hostile.progress", json!({"arg": 5}), &ctx),
        host.call("hostile.progress-flood", json!({"arg": 1000})),
    );
    mine.unwrap();
    other.unwrap();
    let heard = heard.lock().unwrap().clone();
    assert!(!heard.is_empty());
    assert!(
        heard.iter().all(|p| p.capability == "hostile.progress"),
        "{heard:?}"
    );
}
