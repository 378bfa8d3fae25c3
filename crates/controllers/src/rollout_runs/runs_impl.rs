//! The executor as the Rollout reconciler reaches it ([`crate::reconcile::rollout::Runs`]).

use super::RunExecutor;
use super::RunRequest;
use crate::reconcile::rollout::Runs;
use slipway_client::Client;
use slipway_rollout::{Rollout, RolloutStatus};
use std::time::Duration;

impl<C: Client> Runs for RunExecutor<C> {
    /// [`RunExecutor::advance`]; the executor reads its own clock (the same one the
    /// reconciler got), so `now` is not used.
    async fn advance(
        &self,
        rollout: &Rollout,
        requests: &[RunRequest],
        status: &mut RolloutStatus,
        _now: k8s_openapi::jiff::Timestamp,
    ) -> Option<Duration> {
        RunExecutor::advance(self, rollout, requests, status).await
    }
}
