//! The service proxy: Slipway's kube-proxy.
//!
//! - [`model`]: what to serve, as a plain value.
//! - [`desired`]: the pure function from Services, EndpointSlices and Pods to that value.
//! - [`engine`]: the data path that serves it (listeners, balancing, HTTP-aware forwarding,
//!   draining, metrics, the control socket).
//! - [`pods`]: the [`Network`] of the process runtime: sockets inside pods' namespaces.
//! - [`process`]: the `slipway proxy` process, and how `slipway serve` starts and adopts it.

pub mod desired;
pub mod engine;
pub mod model;
pub mod pods;
pub mod process;

pub use engine::*;
pub use model::*;
