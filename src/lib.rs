//! # gatehouse
//!
//! A TLS gateway through which third parties reach an organisation's S3 data.
//!
//! # Layout
//! Modules in the order a request meets them:
//! - [`listener`]: accept loop, connection limits, graceful shutdown
//! - [`tls`]: rustls server configuration (TLS 1.2+/AEAD only, h2 + http/1.1 ALPN)
//! - [`pipeline`]: the one place the stage order is written
//! - [`auth`]: token endpoint, client assertions, access tokens, JWKS
//! - [`policy`]: object key validation, shares and grants
//! - [`store`]: the `ObjectStore` trait; embedded `fs` and `s3`
//! - [`crypto`]: envelope encryption at rest: KMS or local data keys, segmented streaming AEAD
//! - [`s3api`]: S3 request parsing and XML responses, errors with request ids
//! - [`dlp`]: detector packs, streaming detection, masking and tokenization of object bodies
//! - [`audit`]: one JSON line per token event and data request
//! - [`alerts`]: rules on the finished events; alerts to the trail, metrics and a webhook
//!
//! Around them: [`config`] (TOML to typed config), [`bootstrap`] (first-run dev material),
//! [`state`] (the runtime built from a config), [`reload`] (the state in force, swapped on
//! SIGHUP, file changes or `POST /reload`), [`admin`] (health, readiness, [`metrics`],
//! [`sessions`], reload, revocation), operator tools ([`onboard`], [`canary`], [`lint`],
//! `keys_cli`), and reading the trail afterwards: [`report`] (per-partner activity) and
//! [`review`] (the access review).
#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod atomic_file;
pub mod audit;
pub mod auth;
pub mod body;
pub mod bootstrap;
pub mod canary;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod crypto;
pub mod data;
pub mod dlp;
pub mod idle;
pub mod keys_cli;
pub mod lint;
pub mod listener;
pub mod metrics;
pub mod onboard;
pub mod pipeline;
pub mod policy;
pub mod ratelimit;
pub mod reload;
pub mod report;
pub mod review;
pub mod revocation;
pub mod s3api;
pub mod sessions;
pub mod state;
pub mod store;
pub mod tls;
pub mod tokens;

pub use listener::run;
