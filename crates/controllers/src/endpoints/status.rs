//! The Service status writer: `type: LoadBalancer` Services get the loopback ingress.

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus};

/// The ingress IP of every LoadBalancer Service (Slipway serves them on loopback).
pub const LOAD_BALANCER_IP: &str = "127.0.0.1";

/// The ingress a Service should report: one loopback VIP for `LoadBalancer`, none otherwise.
pub fn desired_load_balancer_status(service: &Service) -> Vec<LoadBalancerIngress> {
    let lb = service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "LoadBalancer");
    if !lb {
        return Vec::new();
    }
    vec![LoadBalancerIngress {
        ip: Some(LOAD_BALANCER_IP.to_string()),
        ip_mode: Some("VIP".to_string()),
        ..LoadBalancerIngress::default()
    }]
}

/// The Service with its new status, when `status.loadBalancer.ingress` must change.
pub(crate) fn plan_status(service: &Service) -> Option<Service> {
    let desired = desired_load_balancer_status(service);
    let current: &[LoadBalancerIngress] = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_deref())
        .unwrap_or(&[]);
    if current == desired.as_slice() {
        return None;
    }
    let mut updated = service.clone();
    let status = updated.status.get_or_insert_with(ServiceStatus::default);
    status.load_balancer = Some(LoadBalancerStatus {
        ingress: Some(desired).filter(|d| !d.is_empty()),
    });
    Some(updated)
}
