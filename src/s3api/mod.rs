//! The S3 dialect partners speak.
//!
//! Takes a request's method, path and query and gives an [`Operation`]; takes results and
//! errors and gives S3 XML bodies. Errors carry only an S3 code, a fixed message and the
//! request id: nothing internal reaches a partner.

use std::fmt::Write as _;

use http::{Method, StatusCode};
use quick_xml::escape::escape;

use crate::policy::key::{self, KeyError};
use crate::store::ByteRange;

/// The S3 errors a partner can see. Each has one status and one fixed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Error {
    AccessDenied,
    InvalidToken,
    ExpiredToken,
    NoSuchKey,
    NoSuchBucket,
    InvalidRange,
    InvalidArgument,
    InvalidObjectKey,
    KeyTooLong,
    EntityTooLarge,
    IncompleteBody,
    MissingContentLength,
    MethodNotAllowed,
    NotImplemented,
    InternalError,
    ServiceUnavailable,
    SlowDown,
}

impl S3Error {
    pub fn code(self) -> &'static str {
        match self {
            S3Error::AccessDenied => "AccessDenied",
            S3Error::InvalidToken => "InvalidToken",
            S3Error::ExpiredToken => "ExpiredToken",
            S3Error::NoSuchKey => "NoSuchKey",
            S3Error::NoSuchBucket => "NoSuchBucket",
            S3Error::InvalidRange => "InvalidRange",
            S3Error::InvalidArgument => "InvalidArgument",
            S3Error::InvalidObjectKey => "InvalidArgument",
            S3Error::KeyTooLong => "KeyTooLongError",
            S3Error::EntityTooLarge => "EntityTooLarge",
            S3Error::IncompleteBody => "IncompleteBody",
            S3Error::MissingContentLength => "MissingContentLength",
            S3Error::MethodNotAllowed => "MethodNotAllowed",
            S3Error::NotImplemented => "NotImplemented",
            S3Error::InternalError => "InternalError",
            S3Error::ServiceUnavailable => "ServiceUnavailable",
            S3Error::SlowDown => "SlowDown",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            S3Error::AccessDenied => StatusCode::FORBIDDEN,
            S3Error::InvalidToken | S3Error::ExpiredToken => StatusCode::UNAUTHORIZED,
            S3Error::NoSuchKey | S3Error::NoSuchBucket => StatusCode::NOT_FOUND,
            S3Error::InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
            S3Error::InvalidArgument
            | S3Error::InvalidObjectKey
            | S3Error::KeyTooLong
            | S3Error::EntityTooLarge
            | S3Error::IncompleteBody => StatusCode::BAD_REQUEST,
            S3Error::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            S3Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            S3Error::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            S3Error::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            S3Error::ServiceUnavailable | S3Error::SlowDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            S3Error::AccessDenied => "Access Denied",
            S3Error::InvalidToken => "The bearer token is missing or invalid.",
            S3Error::ExpiredToken => "The bearer token has expired.",
            S3Error::NoSuchKey => "The specified key does not exist.",
            S3Error::NoSuchBucket => "The specified share does not exist.",
            S3Error::InvalidRange => "The requested range is not satisfiable",
            S3Error::InvalidArgument => "Invalid argument.",
            S3Error::InvalidObjectKey => {
                "The object key is not allowed: empty, '.' or '..' segments, backslashes, control characters and invalid encodings are refused."
            }
            S3Error::KeyTooLong => "Your key is too long (the limit is 1024 bytes).",
            S3Error::EntityTooLarge => {
                "Your proposed upload exceeds the maximum allowed object size."
            }
            S3Error::IncompleteBody => {
                "You did not provide the number of bytes specified by the Content-Length HTTP header."
            }
            S3Error::MissingContentLength => "You must provide the Content-Length HTTP header.",
            S3Error::MethodNotAllowed => {
                "The specified method is not allowed against this resource."
            }
            S3Error::NotImplemented => {
                "A header or parameter you provided implies functionality that is not implemented."
            }
            S3Error::InternalError => "We encountered an internal error. Please try again.",
            S3Error::ServiceUnavailable => "Service is unable to handle request.",
            S3Error::SlowDown => "Please reduce your request rate.",
        }
    }

    /// The S3 XML error document. `reason`, when given, is a session-level reason code the
    /// partner may see (`ip_not_allowed`, `rate_limited`, ...), added to the message.
    pub fn to_xml(self, resource: &str, request_id: &str, reason: Option<&str>) -> String {
        let message = match reason {
            Some(r) => format!("{} (reason: {r})", self.message()),
            None => self.message().to_string(),
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            self.code(),
            escape(&message),
            escape(resource),
            escape(request_id)
        )
    }
}

impl From<KeyError> for S3Error {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::TooLong => S3Error::KeyTooLong,
            _ => S3Error::InvalidObjectKey,
        }
    }
}

/// A data-plane request, as partners address it (share = first path segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `GET /`: the partner's shares.
    ListShares,
    /// `GET /{share}?list-type=2`.
    ListObjects {
        share: String,
        params: ListParams,
    },
    /// `HEAD /{share}`.
    HeadShare {
        share: String,
    },
    GetObject {
        share: String,
        key: String,
        range: Option<ByteRange>,
    },
    HeadObject {
        share: String,
        key: String,
        range: Option<ByteRange>,
    },
    PutObject {
        share: String,
        key: String,
    },
    DeleteObject {
        share: String,
        key: String,
    },
}

impl Operation {
    pub fn share(&self) -> Option<&str> {
        match self {
            Operation::ListShares => None,
            Operation::ListObjects { share, .. }
            | Operation::HeadShare { share }
            | Operation::GetObject { share, .. }
            | Operation::HeadObject { share, .. }
            | Operation::PutObject { share, .. }
            | Operation::DeleteObject { share, .. } => Some(share),
        }
    }

    pub fn key(&self) -> Option<&str> {
        match self {
            Operation::GetObject { key, .. }
            | Operation::HeadObject { key, .. }
            | Operation::PutObject { key, .. }
            | Operation::DeleteObject { key, .. } => Some(key),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub continuation_token: Option<String>,
    pub max_keys: usize,
    pub url_encoding: bool,
}

/// Largest page, as in S3.
pub const MAX_KEYS: usize = 1000;

/// Classifies a data-plane request. `range` is the raw `Range` header value, if any.
pub fn parse(
    method: &Method,
    path: &str,
    query: Option<&str>,
    range: Option<&str>,
) -> Result<Operation, S3Error> {
    let rest = path.strip_prefix('/').ok_or(S3Error::InvalidArgument)?;
    if rest.is_empty() {
        return match *method {
            Method::GET | Method::HEAD => Ok(Operation::ListShares),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    let (share_raw, key_raw) = match rest.split_once('/') {
        Some((s, k)) => (s, Some(k)),
        None => (rest, None),
    };
    let share = decode_share(share_raw)?;
    match key_raw {
        None | Some("") => match *method {
            Method::GET => Ok(Operation::ListObjects {
                share,
                params: list_params(query)?,
            }),
            Method::HEAD => Ok(Operation::HeadShare { share }),
            _ => Err(S3Error::MethodNotAllowed),
        },
        Some(raw) => {
            if query.is_some_and(has_subresource) {
                return Err(S3Error::NotImplemented);
            }
            let key = key::decode_key(raw)?;
            let range = range.map(parse_range).transpose()?.flatten();
            match *method {
                Method::GET => Ok(Operation::GetObject { share, key, range }),
                Method::HEAD => Ok(Operation::HeadObject { share, key, range }),
                Method::PUT => Ok(Operation::PutObject { share, key }),
                Method::DELETE => Ok(Operation::DeleteObject { share, key }),
                _ => Err(S3Error::MethodNotAllowed),
            }
        }
    }
}

fn decode_share(raw: &str) -> Result<String, S3Error> {
    // Share names are plain tokens; anything needing decoding cannot be one.
    let ok = !raw.is_empty()
        && raw.len() <= 63
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok && raw != "." && raw != ".." {
        Ok(raw.to_string())
    } else {
        Err(S3Error::NoSuchBucket)
    }
}

/// Query parameters that select S3 sub-resources (ACLs, tagging, multipart, ...) not offered here.
fn has_subresource(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k != "x-id")
}

fn list_params(query: Option<&str>) -> Result<ListParams, S3Error> {
    let mut p = ListParams {
        max_keys: MAX_KEYS,
        ..Default::default()
    };
    let mut list_type = None;
    let mut seen = std::collections::HashSet::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !seen.insert(k.to_string()) {
            return Err(S3Error::InvalidArgument);
        }
        match &*k {
            "list-type" => list_type = Some(v.to_string()),
            "prefix" => p.prefix = v.to_string(),
            "delimiter" => p.delimiter = Some(v.to_string()).filter(|d| !d.is_empty()),
            "continuation-token" => p.continuation_token = Some(v.to_string()),
            "max-keys" => {
                p.max_keys = v
                    .parse::<usize>()
                    .map_err(|_| S3Error::InvalidArgument)?
                    .min(MAX_KEYS)
            }
            "encoding-type" if v == "url" => p.url_encoding = true,
            "fetch-owner" | "x-id" => {}
            _ => return Err(S3Error::NotImplemented),
        }
    }
    if list_type.as_deref() != Some("2") {
        // ListObjects v1 is not offered; say so rather than answering in the wrong dialect.
        return Err(S3Error::NotImplemented);
    }
    key::validate_prefix(&p.prefix)?;
    if p.delimiter
        .as_ref()
        .is_some_and(|d| d.len() > 16 || d.chars().any(char::is_control))
    {
        return Err(S3Error::InvalidArgument);
    }
    Ok(p)
}

/// Parses one `bytes=` range. Multiple ranges and other units are ignored (the whole object is
/// served, as S3 does); malformed byte ranges are ignored too, per RFC 9110 §14.2.
pub fn parse_range(header: &str) -> Result<Option<ByteRange>, S3Error> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    Ok(match (a.is_empty(), b.is_empty()) {
        (true, false) => num(b).map(ByteRange::Suffix),
        (false, true) => num(a).map(|first| ByteRange::From { first, last: None }),
        (false, false) => match (num(a), num(b)) {
            (Some(first), Some(last)) if last >= first => Some(ByteRange::From {
                first,
                last: Some(last),
            }),
            (Some(_), Some(_)) => return Err(S3Error::InvalidRange),
            _ => None,
        },
        (true, true) => None,
    })
}

/// One object line of a listing, with a partner-visible key.
pub struct ListedObject<'a> {
    pub key: &'a str,
    pub size: u64,
    pub etag: Option<&'a str>,
    pub last_modified: Option<jiff::Timestamp>,
}

pub struct ListResult<'a> {
    pub share: &'a str,
    pub params: &'a ListParams,
    pub objects: Vec<ListedObject<'a>>,
    pub common_prefixes: Vec<&'a str>,
    pub next_token: Option<String>,
}

fn enc(s: &str, url: bool) -> String {
    if url {
        percent_encoding::utf8_percent_encode(s, URL_ENCODE).to_string()
    } else {
        escape(s).into_owned()
    }
}

const URL_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn s3_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl ListResult<'_> {
    pub fn to_xml(&self) -> String {
        let u = self.params.url_encoding;
        let mut x = String::with_capacity(256 + self.objects.len() * 200);
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        let _ = write!(
            x,
            "<Name>{}</Name><Prefix>{}</Prefix>",
            escape(self.share),
            enc(&self.params.prefix, u)
        );
        if let Some(d) = &self.params.delimiter {
            let _ = write!(x, "<Delimiter>{}</Delimiter>", enc(d, u));
        }
        let _ = write!(
            x,
            "<MaxKeys>{}</MaxKeys><KeyCount>{}</KeyCount><IsTruncated>{}</IsTruncated>",
            self.params.max_keys,
            self.objects.len() + self.common_prefixes.len(),
            self.next_token.is_some()
        );
        if u {
            x.push_str("<EncodingType>url</EncodingType>");
        }
        if let Some(t) = &self.params.continuation_token {
            let _ = write!(x, "<ContinuationToken>{}</ContinuationToken>", escape(t));
        }
        if let Some(t) = &self.next_token {
            let _ = write!(
                x,
                "<NextContinuationToken>{}</NextContinuationToken>",
                escape(t)
            );
        }
        for o in &self.objects {
            let _ = write!(x, "<Contents><Key>{}</Key>", enc(o.key, u));
            if let Some(t) = o.last_modified {
                let _ = write!(x, "<LastModified>{}</LastModified>", s3_time(t));
            }
            if let Some(e) = o.etag {
                let _ = write!(x, "<ETag>{}</ETag>", escape(e));
            }
            let _ = write!(
                x,
                "<Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                o.size
            );
        }
        for p in &self.common_prefixes {
            let _ = write!(
                x,
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                enc(p, u)
            );
        }
        x.push_str("</ListBucketResult>");
        x
    }
}

/// `GET /`: the shares a partner may see, as ListAllMyBucketsResult.
pub fn list_shares_xml(partner: &str, shares: &[&str]) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    let _ = write!(
        x,
        "<Owner><ID>{0}</ID><DisplayName>{0}</DisplayName></Owner><Buckets>",
        escape(partner)
    );
    for s in shares {
        let _ = write!(x, "<Bucket><Name>{}</Name></Bucket>", escape(*s));
    }
    x.push_str("</Buckets></ListAllMyBucketsResult>");
    x
}

/// HTTP date for `Last-Modified`.
pub fn http_date(t: jiff::Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests;
