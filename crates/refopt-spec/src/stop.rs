//! The process-wide stop request. SIGTERM or SIGINT sets it once; whatever runs long checks it:
//! every Rhai evaluation ends at its next operation ([`sandbox::engine`](crate::sandbox::engine)),
//! and the runner writes no plan after it.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// What a Rhai evaluation is terminated with once a stop is requested.
pub const TOKEN: &str = "refopt: stop requested";

/// Asks everything in progress to stop (idempotent; there is no way back).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Whether a Rhai error is the termination caused by a stop request.
pub fn is_stop(e: &rhai::EvalAltResult) -> bool {
    matches!(e, rhai::EvalAltResult::ErrorTerminated(token, _)
        if token.clone().into_string().is_ok_and(|t| t == TOKEN))
}
