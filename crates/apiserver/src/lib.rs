//! The Kubernetes-compatible API server: HTTPS on loopback with bearer-token authentication,
//! discovery and OpenAPI, the REST semantics of every served resource, watch streams, and
//! server-side Table printing, over the durable store.
//!
//! Layout: [`target`] and [`query`] parse requests, [`negotiate`] picks representations,
//! [`rest`] holds the API semantics (synchronous, store-backed), [`http`] and [`watch`] are
//! the HTTP edge, [`housekeeping`] runs the namespace lifecycle and Event expiry, and
//! [`server`] binds, serves TLS and writes the kubeconfig. [`services`] allocates Service
//! ClusterIPs and NodePorts.
//!
//! `/metrics` serves the API server's metrics followed by those of every source registered
//! with [`Running::metrics`] (a [`MetricsRegistry`]): implement [`MetricsSource`] or pass an
//! async function to [`MetricsRegistry::register_fn`]. See [`metrics`].

pub mod exec;
pub mod fields;
pub mod housekeeping;
pub mod http;
pub mod local;
pub mod logs;
pub mod metrics;
pub mod negotiate;
pub mod podio;
pub mod query;
pub mod rest;
pub mod server;
pub mod services;
pub mod target;
pub mod watch;

pub use metrics::{
    MetricsRegistry, MetricsSource, MetricsSourceError, MetricsSourceFuture, SOURCE_TIMEOUT,
};
pub use podio::{ExecRequest, LogFiles, PodIo};
pub use server::{Config, Running, ServeError, start};
