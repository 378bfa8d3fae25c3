//! The Rollout kind, `slipway.dev/v1alpha1`: declarative blue-green and canary releases
//! with hooks, analysis and automatic rollback. Field names follow Argo Rollouts where the
//! concept is the same. Everything here is pure (no I/O, no clock).
//!
//! - [`types`]: the spec and status, as stored.
//! - [`defaults`]: the defaults the API server applies on every write.
//! - [`validate`]: the API server's validation of the Rollout-specific fields.

pub mod defaults;
pub mod types;
pub mod validate;

pub use types::*;
