//! PUT on a share with a DLP profile: scan while streaming, classify, stage, then commit.
//!
//! Takes the upload stream (already counted, size-limited, paced and guarded) and the profile
//! in force; the body is scanned as it goes to the store's staging area (sealed first on
//! envelope shares, bound to the final key). A `block` finding, or unscannable content under
//! `on_unscannable = "block"`, fails the body, so nothing is stored. A complete upload is
//! classified from its findings (unscannable content: `restricted`), checked against the
//! partner's classification ceiling, and only then committed under its key with the
//! gateway-written classification and verdict: it never becomes visible without them. On any
//! refusal the staged upload is discarded.

use std::collections::BTreeMap;

use super::inbound::{Inbound, tap};
use super::verdict::VERDICT_META;
use super::{Active, DlpRecord};
use crate::config::Classification;
use crate::data::{Access, CLASSIFICATION_META, internal_key, share_of};
use crate::dlp::ScanMode;
use crate::pipeline::{Ctx, Refusal};
use crate::s3api::S3Error;
use crate::state::State;
use crate::store::{ByteStream, PutOptions, PutResult, StoreError};

/// Why an upload was not stored.
pub(in crate::data) enum PutError {
    /// Refused by the gateway (DLP, policy, key service).
    Refused(Refusal),
    /// The body or the store failed.
    Store(StoreError),
}

pub(in crate::data) async fn put(
    state: &State,
    ctx: &mut Ctx,
    access: &Access<'_>,
    active: &Active<'_>,
    body: ByteStream,
    opts: PutOptions,
    encrypt: bool,
) -> Result<PutResult, PutError> {
    let profile = active.profile;
    // The format comes from what the partner declares, but the first bytes are always
    // checked for binary and compressed content.
    let scanner = active.scanner(ScanMode::Detect, &access.key, opts.content_type.as_deref());
    let (tapped, handle) = tap(scanner, body);
    let (stream, opts) = if encrypt {
        crate::data::envelope::seal(state, access, tapped, opts)
            .await
            .map_err(PutError::Refused)?
    } else {
        (tapped, opts)
    };
    let store = &share_of(state, &access.share)
        .map_err(PutError::Refused)?
        .store;
    let staged = store
        .stage(
            &internal_key(state, &access.share, &access.key),
            stream,
            opts,
        )
        .await;
    let mut record = DlpRecord {
        profile: profile.name.clone(),
        outcome: "stored",
        source: "upload",
        classification: None,
        findings: Vec::new(),
    };
    let verdict = match handle.get() {
        Inbound::Complete(v) => v,
        Inbound::Blocked(v) => {
            record.outcome = "blocked";
            record.findings = v.findings;
            ctx.event.dlp = Some(record);
            return Err(PutError::Refused(Refusal::public(
                S3Error::AccessDenied,
                "dlp_blocked",
            )));
        }
        Inbound::UnscannableBlocked => {
            record.outcome = "unscannable_blocked";
            ctx.event.dlp = Some(record);
            return Err(PutError::Refused(Refusal::public(
                S3Error::AccessDenied,
                "dlp_unscannable",
            )));
        }
        Inbound::Running => {
            let e = staged
                .err()
                .unwrap_or(StoreError::Body("upload ended early".into()));
            return Err(PutError::Store(e));
        }
    };
    let staged = staged.map_err(PutError::Store)?;
    record.findings = verdict.findings.clone();
    let class = if verdict.unscannable {
        Classification::Restricted
    } else {
        record
            .findings
            .iter()
            .map(|f| profile.classification_for(&f.entity))
            .max()
            .unwrap_or(profile.min_classification)
    };
    record.classification = Some(class.as_str());
    if let Err(refusal) = access.check_object(Some(class), None) {
        record.outcome = "above_ceiling";
        ctx.event.dlp = Some(record);
        drop(staged); // discarded
        return Err(PutError::Refused(refusal));
    }
    let mut metadata = BTreeMap::new();
    metadata.insert(CLASSIFICATION_META.to_owned(), class.as_str().to_owned());
    if let Some(v) = verdict.encode(&active.pack_version, active.fingerprint) {
        metadata.insert(VERDICT_META.to_owned(), v);
    }
    ctx.event.dlp = Some(record);
    store
        .commit(staged, metadata)
        .await
        .map_err(PutError::Store)
}
