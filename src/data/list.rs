//! ListObjectsV2 inside the grants.
//!
//! Takes the partner's [`ListScope`] (grants whose conditions hold, deny rules) and the
//! request's prefix, delimiter and continuation token; gives one page in key order. The
//! upstream prefix is always narrowed to a grant before the store is asked, every returned
//! key and common prefix is checked against the scope again, and the share's internal prefix
//! is stripped; staged uploads are never listed. The continuation token names the plan step and the last partner-visible key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Response, header};

use super::{share_of, store_refusal};
use crate::body::{self, ResponseBody};
use crate::pipeline::Refusal;
use crate::policy::{ListScope, ListSource};
use crate::s3api::{ListParams, ListResult, ListedObject, S3Error};
use crate::state::State;
use crate::store::ListRequest;

/// Where a paginated listing stands: the plan step and the last partner-visible key served.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    i: usize,
    a: String,
}

pub(super) async fn list(
    state: &State,
    scope: &ListScope<'_>,
    share: &str,
    params: ListParams,
) -> Result<Response<ResponseBody>, Refusal> {
    let plan = scope.plan(&params.prefix, params.delimiter.as_deref());
    let cursor = match &params.continuation_token {
        Some(t) => decode_cursor(t).ok_or(Refusal::new(
            S3Error::InvalidArgument,
            "bad_continuation_token",
        ))?,
        None => Cursor {
            i: 0,
            a: String::new(),
        },
    };
    let share_cfg = &share_of(state, share)?.config;
    let store = &share_of(state, share)?.store;
    // Staged uploads (S3, under the bucket's staging prefix) are never listed.
    let strip = |k: &str| {
        k.strip_prefix(share_cfg.prefix.as_str())
            .filter(|_| !k.starts_with(crate::store::STAGING_PREFIX))
            .map(str::to_owned)
    };
    let (mut objects, mut prefixes, mut last) = (Vec::new(), Vec::new(), None::<(usize, String)>);
    let mut truncated = false;
    let mut i = cursor.i;
    while i < plan.len() {
        let remaining = params.max_keys - objects.len() - prefixes.len();
        if remaining == 0 {
            truncated = true;
            break;
        }
        let after = (i == cursor.i && !cursor.a.is_empty()).then(|| cursor.a.clone());
        match &plan[i] {
            ListSource::Upstream(p) => {
                let req = ListRequest {
                    prefix: format!("{}{p}", share_cfg.prefix),
                    delimiter: params.delimiter.clone(),
                    start_after: after.map(|a| format!("{}{a}", share_cfg.prefix)),
                    max_keys: remaining,
                };
                let page = store.list(&req).await.map_err(store_refusal)?;
                for o in page.objects {
                    let Some(key) = strip(&o.key).filter(|k| scope.allows(k)) else {
                        continue;
                    };
                    let size = if share_cfg.encrypt {
                        super::envelope::listed_size(o.size)
                    } else {
                        o.size
                    };
                    objects.push((key, size, o.etag, o.last_modified));
                }
                for cp in page.common_prefixes {
                    let Some(cp) = strip(&cp).filter(|p| scope.allows(p)) else {
                        continue;
                    };
                    prefixes.push(cp);
                }
                // The page's last item, in key order, is where the next page starts after.
                let newest = objects
                    .last()
                    .map(|o| &o.0)
                    .into_iter()
                    .chain(prefixes.last())
                    .max();
                if let Some(a) = newest {
                    last = Some((i, a.clone()));
                }
                if page.is_truncated {
                    truncated = true;
                    break;
                }
            }
            ListSource::Folder {
                common_prefix,
                probes,
            } => {
                if after.is_none()
                    && folder_exists(store.as_ref(), &share_cfg.prefix, probes).await?
                {
                    last = Some((i, common_prefix.clone()));
                    prefixes.push(common_prefix.clone());
                }
            }
        }
        i += 1;
    }
    // Merge sorted keys and common prefixes only matters inside one upstream step; S3 returns
    // them in one order, so sort the two together by name for stable output.
    prefixes.sort();
    let next_token = truncated.then(|| match &last {
        Some((i, a)) => encode_cursor(&Cursor {
            i: *i,
            a: a.clone(),
        }),
        None => encode_cursor(&Cursor {
            i,
            a: String::new(),
        }),
    });
    let result = ListResult {
        share,
        params: &params,
        objects: objects
            .iter()
            .map(|(k, size, etag, lm)| ListedObject {
                key: k,
                size: *size,
                etag: etag.as_deref(),
                last_modified: *lm,
            })
            .collect(),
        common_prefixes: prefixes.iter().map(String::as_str).collect(),
        next_token,
    };
    Ok(xml(result.to_xml()))
}

async fn folder_exists(
    store: &dyn crate::store::ObjectStore,
    share_prefix: &str,
    probes: &[String],
) -> Result<bool, Refusal> {
    for p in probes {
        let req = ListRequest {
            prefix: format!("{share_prefix}{p}"),
            delimiter: None,
            start_after: None,
            max_keys: 1,
        };
        if !store
            .list(&req)
            .await
            .map_err(store_refusal)?
            .objects
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(t: &str) -> Option<Cursor> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t).ok()?).ok()
}

pub(super) fn xml(body: String) -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}
