//! The refusals of GET and HEAD on a DLP share that fail closed for internal reasons, end to
//! end: the object changed between the pre-scan and the fetch (`object_changed`, 503), the
//! pre-scan could not read the object (`dlp_prescan_failed`, 500), and the profile in force
//! cannot run (`dlp_unavailable`, 500). The partner sees the S3 error with a request id and
//! nothing else (no reason code, no detail, no object byte); the audit trail keeps the reason.
//!
//! None of the three can be brought about from outside on demand: the first needs the object to
//! change inside one request; the other two are defence in depth (no real store yields such a
//! read error, and the loader refuses profiles that cannot run). So the tests serve the test
//! gateway's own files through a second listener of the same `run`, whose state is rebuilt from
//! them as a reload would (same audit trail, signing keys and opened stores) and then changed in
//! one place: the share's real store wrapped ([`Tampered`]), or a profile or the DLP runtime
//! taken away. Where a neighbouring refusal can be reached from outside, it is tested that way.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{Backend, Gateway, s3_code};
use futures_util::StreamExt;
use gatehouse::config::Config;
use gatehouse::state::State;
use gatehouse::store::{
    ByteRange, ByteStream, GetObject, ListPage, ListRequest, MetadataReplaced, ObjectMeta,
    ObjectStore, PutOptions, PutResult, Staged, StoreError,
};
use tokio::sync::oneshot;

/// `acme` reads under the share's profile (`pii`), `strict` under its grant's (`strict`).
const PARTNERS: &[(&str, &str, &str)] = &[
    (
        "acme",
        "active",
        "[[grants]]\nshare = \"exports\"\nactions = [\"read\", \"list\", \"write\"]\n",
    ),
    (
        "strict",
        "active",
        "[[grants]]\nshare = \"exports\"\nactions = [\"read\"]\ndlp_profile = \"strict\"\n",
    ),
];

const KEY: &str = "reports/q3.txt";

/// The object as the pre-scan reads it, and as it is by the time it is fetched to be served.
const FIRST: &str = "first version of the report\ncard 4111 1111 1111 1111\n";
const SECOND: &str = "second version of the report, a little longer\ncard 5555 5555 5555 4444\n";

async fn start(backend: Backend, encrypt: bool) -> Gateway {
    common::start_dlp(backend, PARTNERS, encrypt).await
}

/// A second partner listener of `g`: the same `run`, serving a state rebuilt from `g`'s files
/// as a reload would, with `config` applied to the configuration before and `state` to the
/// state after.
struct Rigged {
    base: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Rigged {
    async fn start(
        g: &Gateway,
        config: impl FnOnce(&mut Config),
        state: impl FnOnce(&mut State),
    ) -> Rigged {
        let mut cfg = gatehouse::config::load(&g.config_path).unwrap_or_else(|e| panic!("{e}"));
        config(&mut cfg);
        let mut rebuilt = g.state.rebuild(cfg).await.unwrap_or_else(|e| panic!("{e}"));
        state(&mut rebuilt);
        let live = gatehouse::reload::Live::new(rebuilt, &g.config_path);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(gatehouse::run(listener, live, async {
            let _ = rx.await;
        }));
        Rigged {
            base,
            shutdown: Some(tx),
            task,
        }
    }

    async fn send(&self, g: &Gateway, method: &str, token: &str, key: &str) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        g.client
            .request(method, format!("{}/exports/{key}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// What [`Tampered`] does to full reads of its key.
enum Fault {
    /// The second read finds the object overwritten (through the real store) with these bytes:
    /// it changed after the pre-scan read it and before it is fetched to be served.
    ChangeBeforeSecondRead(Mutex<Option<&'static str>>),
    /// Every read breaks after its first chunk with this error.
    BreakAfterFirstChunk(fn() -> StoreError),
}

/// A share's real store (fs or S3), with a fault on the full reads of one internal key.
struct Tampered {
    inner: Arc<dyn ObjectStore>,
    key: String,
    fault: Fault,
    reads: AtomicUsize,
}

impl Tampered {
    /// Wraps the `exports` store of `g` (the one a rebuilt state reuses) for `key`.
    fn new(g: &Gateway, key: &str, fault: Fault) -> Arc<Tampered> {
        let share = &g.state.shares["exports"];
        Arc::new(Tampered {
            inner: share.store.clone(),
            key: format!("{}{key}", share.config.prefix),
            fault,
            reads: AtomicUsize::new(0),
        })
    }

    /// Puts `self` in place of the `exports` store of a rebuilt state.
    fn install(self: &Arc<Self>) -> impl FnOnce(&mut State) + use<> {
        let store: Arc<dyn ObjectStore> = self.clone();
        move |s| s.shares.get_mut("exports").unwrap().store = store
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Tampered {
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.inner.head(key).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, StoreError> {
        if key != self.key || range.is_some() {
            return self.inner.get(key, range).await;
        }
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        match &self.fault {
            Fault::ChangeBeforeSecondRead(next) => {
                let next = if n == 2 {
                    next.lock().unwrap().take()
                } else {
                    None
                };
                if let Some(next) = next {
                    let opts = PutOptions {
                        content_type: Some("text/plain".into()),
                        content_length: Some(next.len() as u64),
                        ..Default::default()
                    };
                    self.inner.put(key, body_of(next), opts).await?;
                }
                self.inner.get(key, None).await
            }
            Fault::BreakAfterFirstChunk(error) => {
                let mut got = self.inner.get(key, None).await?;
                let first = got.body.next().await;
                let items = first.into_iter().chain(std::iter::once(Err(error())));
                got.body = Box::pin(futures_util::stream::iter(items.collect::<Vec<_>>()));
                Ok(got)
            }
        }
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<PutResult, StoreError> {
        self.inner.put(key, body, opts).await
    }

    async fn stage(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<Staged, StoreError> {
        self.inner.stage(key, body, opts).await
    }

    async fn commit(
        &self,
        staged: Staged,
        metadata: BTreeMap<String, String>,
    ) -> Result<PutResult, StoreError> {
        self.inner.commit(staged, metadata).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }

    async fn list(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
        self.inner.list(req).await
    }

    async fn replace_metadata(
        &self,
        key: &str,
        metadata: BTreeMap<String, String>,
        if_match_etag: &str,
    ) -> Result<MetadataReplaced, StoreError> {
        self.inner
            .replace_metadata(key, metadata, if_match_etag)
            .await
    }
}

fn body_of(text: &'static str) -> ByteStream {
    Box::pin(futures_util::stream::once(async move {
        Ok(Bytes::from_static(text.as_bytes()))
    }))
}

/// Checks what the partner sees of an internal refusal: `status`, the S3 `code` and a request
/// id (header and error document; HEAD has no body), and none of the reason code, the DLP
/// header, the share's internal prefix, the gateway's directories or anything in `hidden`.
/// Gives the request id and the number of body bytes.
async fn partner_sees(
    g: &Gateway,
    r: reqwest::Response,
    head: bool,
    (status, code, reason): (u16, &str, &str),
    hidden: &[&str],
) -> (String, u64) {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers().get(gatehouse::data::DLP_HEADER), None);
    let id = common::request_id(&r);
    assert!(!id.is_empty());
    let text = r.text().await.unwrap();
    if head {
        assert_eq!(text, "", "HEAD has no body");
    } else {
        assert_eq!(s3_code(&text), code, "{text}");
        assert!(
            text.contains(&format!("<RequestId>{id}</RequestId>")),
            "{text}"
        );
    }
    let dir = g.dir.path().display().to_string();
    let internal = [
        reason,
        "reason",
        "internal/exp/",
        "data/objects",
        dir.as_str(),
    ];
    for s in internal.iter().chain(hidden) {
        assert!(!text.contains(s), "{s:?} shown to the partner: {text}");
    }
    (id, text.len() as u64)
}

/// Waits until `events` more events than `before` ([`Audit::written`]) are on disk: the trail
/// is then read once the request's own event is complete, never while it is being written.
///
/// [`Audit::written`]: gatehouse::audit::Audit::written
async fn settled(g: &Gateway, before: u64, events: u64) {
    for _ in 0..500 {
        if g.state.audit.written() >= before + events {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Checks what the SOC sees of a refused request sent when the trail held `before` events:
/// its audit event, a denial with `reason` and `status`, and the bytes sent being the error
/// document alone.
async fn soc_sees(
    g: &Gateway,
    before: u64,
    id: &str,
    partner: &str,
    (status, reason): (u16, &str),
    bytes_out: u64,
) -> serde_json::Value {
    settled(g, before, 1).await;
    let ev = g.audit_event(id).await;
    assert_eq!(ev["reason"], reason, "{ev}");
    assert_eq!(ev["decision"], "deny", "{ev}");
    assert_eq!(ev["status"], status, "{ev}");
    assert_eq!(ev["partner"], partner, "{ev}");
    assert_eq!(ev["share"], "exports", "{ev}");
    assert_eq!(ev["key"], KEY, "{ev}");
    assert_eq!(ev["bytes_out"].as_u64(), Some(bytes_out), "{ev}");
    ev
}

/// Distinctive bytes of both versions: none may reach the partner, masked or not.
const VERSION_BYTES: [&str; 6] = [
    "first version",
    "second version",
    "4111 1111 1111 1111",
    "5555 5555 5555 4444",
    "1111\n",
    "4444\n",
];

async fn an_object_changed_after_its_prescan_is_not_served(backend: Backend) {
    let g = start(backend, false).await;
    let acme = g.token("acme").await;
    // Placed without the gateway: no verdict, so the GET pre-scans, then fetches again.
    g.store_put(KEY, FIRST.as_bytes().to_vec(), BTreeMap::new())
        .await;
    let store = Tampered::new(
        &g,
        KEY,
        Fault::ChangeBeforeSecondRead(Mutex::new(Some(SECOND))),
    );
    let rig = Rigged::start(&g, |_| {}, store.install()).await;
    let before = g.state.audit.written();
    let r = rig.send(&g, "GET", &acme, KEY).await;
    let refusal = (503, "ServiceUnavailable", "object_changed");
    let (id, sent) = partner_sees(&g, r, false, refusal, &VERSION_BYTES).await;
    assert_eq!(store.reads(), 2, "the pre-scan and the fetch");
    assert_eq!(g.store_get(KEY).await.0, SECOND.as_bytes(), "it did change");
    let ev = soc_sees(&g, before, &id, "acme", (503, "object_changed"), sent).await;
    assert!(
        ev["dlp"].is_null(),
        "nothing was decided on either version: {ev}"
    );

    // A retry pre-scans the version now stored and serves that one, masked.
    let before = g.state.audit.written();
    let r = rig.send(&g, "GET", &acme, KEY).await;
    assert_eq!(r.status(), 200);
    let id = common::request_id(&r);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("second version"), "{body}");
    assert!(body.contains("**** **** **** 4444"), "{body}");
    assert!(!body.contains("5555 5555 5555 4444"), "{body}");
    assert_eq!(store.reads(), 4);
    // Served: `request_start` before the first byte, then the request's own event.
    settled(&g, before, 2).await;
    assert_eq!(g.audit_event(&id).await["dlp"]["source"], "prescan");
    rig.stop().await;
}

/// Read errors no real store gives while streaming a body (they give `Upstream`, or
/// `NotFound` before it): each stands for "any other" failure of the pre-scan's read.
const OTHER_READ_ERRORS: [fn() -> StoreError; 2] = [
    || StoreError::Body("cut off at /srv/gatehouse/data/objects/internal/exp/q3.txt".into()),
    || StoreError::InvalidRange { size: 7 },
];

async fn a_prescan_that_cannot_read_the_object_refuses_get_and_head(backend: Backend) {
    let g = start(backend, false).await;
    let acme = g.token("acme").await;
    g.store_put(KEY, FIRST.as_bytes().to_vec(), BTreeMap::new())
        .await;
    for error in OTHER_READ_ERRORS {
        let store = Tampered::new(&g, KEY, Fault::BreakAfterFirstChunk(error));
        let rig = Rigged::start(&g, |_| {}, store.install()).await;
        let detail = error().to_string();
        let hidden: Vec<&str> = VERSION_BYTES.iter().copied().chain([&*detail]).collect();
        for (method, head) in [("GET", false), ("HEAD", true)] {
            let reads = store.reads();
            let before = g.state.audit.written();
            let r = rig.send(&g, method, &acme, KEY).await;
            let refusal = (500, "InternalError", "dlp_prescan_failed");
            let (id, sent) = partner_sees(&g, r, head, refusal, &hidden).await;
            assert_eq!(store.reads(), reads + 1, "{method}: one pre-scan, no fetch");
            let ev = soc_sees(&g, before, &id, "acme", (500, "dlp_prescan_failed"), sent).await;
            assert!(ev["dlp"].is_null(), "{ev}");
            assert!(!ev.to_string().contains(&detail), "{ev}");
        }
        rig.stop().await;
    }
}

/// The closest failure of the pre-scan's read that can be caused from outside: an envelope
/// object whose ciphertext was altered in the bucket. Served without a pre-scan it fails
/// once the response is committed (200, then an aborted transfer); pre-scanned, it is refused
/// before that.
async fn a_prescan_that_cannot_authenticate_the_object_refuses_before_any_byte(backend: Backend) {
    let g = start(backend, true).await;
    let acme = g.token("acme").await;
    let strict = g.token("strict").await;
    let r = g
        .client
        .put(g.url(&format!("/exports/{KEY}")))
        .bearer_auth(&acme)
        .header("content-type", "text/plain")
        .body(FIRST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (mut sealed, meta) = g.store_get(KEY).await;
    let at = sealed.len() - 20;
    sealed[at] ^= 0x55;
    g.store_put(KEY, sealed, meta.metadata).await;
    // The verdict recorded at upload is the share profile's: `strict` pre-scans.
    for (method, head) in [("GET", false), ("HEAD", true)] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let before = g.state.audit.written();
        let r = g
            .client
            .request(method, g.url(&format!("/exports/{KEY}")))
            .bearer_auth(&strict)
            .send()
            .await
            .unwrap();
        let refusal = (500, "InternalError", "object_integrity_failed");
        let (id, sent) = partner_sees(&g, r, head, refusal, &VERSION_BYTES).await;
        let ev = soc_sees(
            &g,
            before,
            &id,
            "strict",
            (500, "object_integrity_failed"),
            sent,
        )
        .await;
        assert!(ev["aborted"].is_null(), "refused, not cut off: {ev}");
    }
    // `acme` reads under the recorded verdict, without a pre-scan: the response is committed
    // (200) when the failure comes, so the transfer is cut off, before its headers got out or
    // in its body.
    let before = g.state.audit.written();
    let cut_off = match g
        .client
        .get(g.url(&format!("/exports/{KEY}")))
        .bearer_auth(&acme)
        .send()
        .await
    {
        Ok(r) => r.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(
        cut_off,
        "served without a pre-scan, the transfer is aborted"
    );
    let served = |l: &serde_json::Value| {
        l["partner"] == "acme" && l["method"] == "GET" && l["kind"] != "request_start"
    };
    settled(&g, before, 2).await;
    let mut ev = serde_json::Value::Null;
    for _ in 0..500 {
        if let Some(found) = g.audit_lines(0).await.into_iter().find(served) {
            ev = found;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(ev["status"], 200, "{ev}");
    assert_eq!(ev["reason"], "object_integrity_failed", "{ev}");
    assert_eq!(ev["aborted"], true, "{ev}");
}

both_backends!(
    an_object_changed_after_its_prescan_is_not_served,
    a_prescan_that_cannot_read_the_object_refuses_get_and_head,
    a_prescan_that_cannot_authenticate_the_object_refuses_before_any_byte,
);

/// A runtime built from `g`'s configuration without the `strict` profile: it has no token
/// secret, so it cannot compile `strict` (which tokenizes) when a request needs it.
async fn runtime_without_token_secret(g: &Gateway) -> Arc<gatehouse::data::DlpRuntime> {
    let mut cfg = gatehouse::config::load(&g.config_path).unwrap_or_else(|e| panic!("{e}"));
    cfg.dlp.profiles.remove("strict");
    let runtime = tokio::task::spawn_blocking(move || gatehouse::data::DlpRuntime::build(&cfg))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    Arc::new(runtime)
}

/// One way the profile in force for `partner` cannot run: `problem` is what the gateway logs.
struct Unrunnable {
    case: &'static str,
    partner: &'static str,
    problem: &'static str,
    config: Box<dyn FnOnce(&mut Config)>,
    state: Box<dyn FnOnce(&mut State)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_that_cannot_run_refuses_get_and_head() {
    let g = start(Backend::Fs, false).await;
    let tokens: BTreeMap<&str, String> = [
        ("acme", g.token("acme").await),
        ("strict", g.token("strict").await),
    ]
    .into();
    g.store_put(KEY, FIRST.as_bytes().to_vec(), BTreeMap::new())
        .await;
    let keyless = runtime_without_token_secret(&g).await;
    let cases = [
        Unrunnable {
            case: "the share's profile is not configured",
            partner: "acme",
            problem: "not configured",
            config: Box::new(|c| {
                c.dlp.profiles.remove("pii");
            }),
            state: Box::new(|_| {}),
        },
        Unrunnable {
            case: "the grant's profile is not configured",
            partner: "strict",
            problem: "not configured",
            config: Box::new(|c| {
                c.dlp.profiles.remove("strict");
            }),
            state: Box::new(|_| {}),
        },
        Unrunnable {
            case: "there is no DLP runtime",
            partner: "acme",
            problem: "no DLP runtime",
            config: Box::new(|_| {}),
            state: Box::new(|s| s.dlp = None),
        },
        Unrunnable {
            case: "the engine cannot be compiled",
            partner: "strict",
            problem: "no token secret",
            config: Box::new(|_| {}),
            state: Box::new(move |s| s.dlp = Some(keyless)),
        },
    ];
    for Unrunnable {
        case,
        partner,
        problem,
        config,
        state,
    } in cases
    {
        let rig = Rigged::start(&g, config, state).await;
        let token = &tokens[partner];
        let hidden: Vec<&str> = VERSION_BYTES.iter().copied().chain([problem]).collect();
        for (method, head) in [("GET", false), ("HEAD", true)] {
            let before = g.state.audit.written();
            let r = rig.send(&g, method, token, KEY).await;
            let refusal = (500, "InternalError", "dlp_unavailable");
            let (id, sent) = partner_sees(&g, r, head, refusal, &hidden).await;
            let ev = soc_sees(&g, before, &id, partner, (500, "dlp_unavailable"), sent).await;
            assert!(ev["dlp"].is_null(), "{case}, {method}: {ev}");
        }
        rig.stop().await;
    }
    // The gateway itself, whose profiles all run, serves the same object to both.
    for partner in ["acme", "strict"] {
        let r = g.get(&tokens[partner], &format!("/exports/{KEY}")).await;
        assert_eq!(r.status(), 200, "{partner}");
    }
    g.stop().await;
}
