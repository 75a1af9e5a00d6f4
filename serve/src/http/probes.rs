//! Probes for load balancers and orchestrators: `GET /healthz` (the
//! process serves HTTP: liveness) and `GET /readyz` (it takes new work:
//! 503 once a stop signal came, while it drains, and while it stops).
//! Both answer `{"status": ..., "replica": ...}` and need no token.

use super::body::{json_body, plain};
use super::Body;
use crate::Shared;
use http::{header, Method, Response, StatusCode};
use serde_json::json;
use std::sync::atomic::Ordering;

/// Which probe a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// `/healthz`.
    Live,
    /// `/readyz`.
    Ready,
}

impl Probe {
    /// The probe at `path`, if it is one.
    pub(super) fn at(path: &str) -> Option<Probe> {
        match path {
            "/healthz" => Some(Probe::Live),
            "/readyz" => Some(Probe::Ready),
            _ => None,
        }
    }
}

/// Whether the server takes new work, and the word for it.
fn readiness(shared: &Shared) -> (bool, &'static str) {
    if *shared.stopping.borrow() {
        (false, "stopping")
    } else if shared.draining.load(Ordering::Relaxed) {
        (false, "draining")
    } else {
        (true, "ready")
    }
}

/// The probe's answer (GET or HEAD; anything else is 405).
pub(super) fn answer(shared: &Shared, probe: Probe, method: &Method) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or HEAD");
        r.headers_mut()
            .insert(header::ALLOW, "GET, HEAD".parse().expect("valid"));
        return r;
    }
    let (status, word) = match probe {
        Probe::Live => (StatusCode::OK, "ok"),
        Probe::Ready => match readiness(shared) {
            (true, word) => (StatusCode::OK, word),
            (false, word) => (StatusCode::SERVICE_UNAVAILABLE, word),
        },
    };
    let mut r = json_body(status, &json!({"status": word, "replica": shared.replica}));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_paths_are_probes() {
        assert_eq!(Probe::at("/healthz"), Some(Probe::Live));
        assert_eq!(Probe::at("/readyz"), Some(Probe::Ready));
        for other in ["/healthz/", "/readyz?x", "/mcp", "/HEALTHZ", "", "/"] {
            assert_eq!(Probe::at(other), None, "{other}");
        }
    }
}
