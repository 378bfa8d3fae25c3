//! The thin reconcilers that apply the planners' decisions through a [`slipway_client::Client`].

pub mod deployment;
pub mod endpoints;
pub mod replicaset;
pub mod rollout;
