//! Pure planners of the Deployment and ReplicaSet controllers, following Kubernetes 1.33
//! semantics as restated in `shared/reference/k8s-deployment-semantics.md`.
//!
//! A reconciler observes (lists objects, reads the clock), calls [`deployment::plan`] or
//! [`replicaset::plan`], and applies the returned actions in order. Planning does no I/O, reads
//! no clock (`now` is an input) and uses no randomness, so every decision is table-testable.
//!
//! Building blocks, usable on their own: [`fenceposts`] (maxSurge/maxUnavailable),
//! [`annotations`] (revisions and replica annotations), [`hash`] (`pod-template-hash`),
//! [`template`] (new/old ReplicaSet identity), [`replicas`] (proportional scaling arithmetic),
//! [`conditions`] and [`status`] (Deployment status and Progressing/Available), [`ownership`]
//! (adoption and release), [`pods`] (readiness, availability, deletion order).

pub mod annotations;
pub mod conditions;
pub mod deployment;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod fenceposts;
pub mod gc;
pub mod hash;
pub mod metrics;
pub mod ownership;
pub mod pods;
pub mod reconcile;
pub mod replicas;
pub mod replicaset;
pub mod rollout;
pub mod rollout_runs;
pub mod runtime;
pub mod spec;
pub mod status;
pub mod template;

pub use error::PlanError;

use std::time::Duration;

/// When the reconciler should look at the object again even if nothing changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Re-queue at once, through the rate limiter.
    Now,
    /// Re-queue after this delay.
    After(Duration),
}

/// Event type, as in `Event.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An Event to record on the planned object (the Deployment or ReplicaSet being synced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub event_type: EventType,
    /// Machine-readable reason, e.g. `ScalingReplicaSet`.
    pub reason: String,
    /// Human-readable message, exactly as Kubernetes words it.
    pub message: String,
}

impl Event {
    /// A `Normal` event.
    pub fn normal(reason: &str, message: impl Into<String>) -> Event {
        Event {
            event_type: EventType::Normal,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: &str, message: impl Into<String>) -> Event {
        Event {
            event_type: EventType::Warning,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// One action of a plan with the Events to record once it has succeeded.
#[derive(Clone, Debug, PartialEq)]
pub struct Step<A> {
    /// What to do.
    pub action: A,
    /// Events to record after the action succeeded (dropped if it fails).
    pub events: Vec<Event>,
}
