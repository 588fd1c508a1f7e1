//! What a request waited on, gathered while it runs: time spent on the object store and the
//! data key it used.
//!
//! The pipeline runs each request inside [`scope`]; the store wrapper
//! (`crate::store::Timed`) adds each call's time with [`upstream`] and the data-key cache
//! reports where a key came from with [`data_key`]. Outside a scope (CLI tools, background
//! tasks) both do nothing. The facts go into the request's audit event; nothing here is
//! secret (a key *id*, never key material).

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;

/// The data key one request used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataKeyUse {
    /// The wrapping key (KMS key id or local key id) the data key is sealed under.
    pub key_id: String,
    /// `cache`: plaintext data key from the gateway's cache; `service`: unwrapped (or
    /// generated) by the key service for this request; `joined`: waited on another request's
    /// call to the key service.
    pub source: &'static str,
}

/// The facts gathered in one scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    pub upstream: Duration,
    pub upstream_calls: u32,
    pub data_key: Option<DataKeyUse>,
}

impl Trace {
    /// Time on the object store in ms, `None` when the request never reached it.
    pub fn upstream_ms(&self) -> Option<f64> {
        (self.upstream_calls > 0).then_some(self.upstream.as_secs_f64() * 1000.0)
    }
}

tokio::task_local! {
    static TRACE: RefCell<Trace>;
}

/// Runs `fut` with a fresh trace; gives its output and what it gathered.
pub async fn scope<F: Future>(fut: F) -> (F::Output, Trace) {
    TRACE
        .scope(RefCell::new(Trace::default()), async {
            let out = fut.await;
            let trace = TRACE.with(|t| t.take());
            (out, trace)
        })
        .await
}

/// Adds one object-store call's time to the current scope, if any.
pub fn upstream(took: Duration) {
    let _ = TRACE.try_with(|t| {
        let mut t = t.borrow_mut();
        t.upstream += took;
        t.upstream_calls += 1;
    });
}

/// Notes the data key of the current scope's request, if any (the first one noted stays).
pub fn data_key(key_id: &str, source: &'static str) {
    let _ = TRACE.try_with(|t| {
        let mut t = t.borrow_mut();
        if t.data_key.is_none() {
            t.data_key = Some(DataKeyUse {
                key_id: key_id.to_string(),
                source,
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_gathers_what_its_task_reports_and_nothing_leaks_outside() {
        upstream(Duration::from_millis(5));
        data_key("outside", "cache");
        let ((), t) = scope(async {
            upstream(Duration::from_millis(2));
            tokio::task::yield_now().await;
            upstream(Duration::from_millis(3));
            data_key("k1", "service");
            data_key("k2", "cache");
        })
        .await;
        assert_eq!(t.upstream, Duration::from_millis(5));
        assert_eq!(t.upstream_calls, 2);
        assert_eq!(t.upstream_ms(), Some(5.0));
        assert_eq!(
            t.data_key,
            Some(DataKeyUse {
                key_id: "k1".into(),
                source: "service"
            })
        );
        let ((), empty) = scope(async {}).await;
        assert_eq!(empty.upstream_ms(), None);
        assert_eq!(empty.data_key, None);
    }
}
