//! What a probe is: its kind, its timing ([`ProbeSpec`]) and how it checks the container
//! ([`ProbeAction`]), with the conversion from the Kubernetes API `Probe`.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Which of a container's three probes this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Readiness,
        ProbeKind::Liveness,
    ];

    /// The word Kubernetes uses in events ("Startup probe failed: ...").
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Liveness => "Liveness",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A probe's timing and thresholds, validated (see [`ProbeSpec::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    /// Time after the container started before the first probe (`initialDelaySeconds`).
    pub initial_delay: Duration,
    /// Time between the starts of two probes (`periodSeconds`, default 10 s).
    pub period: Duration,
    /// A probe that has not answered after this long failed (`timeoutSeconds`, default 1 s).
    pub timeout: Duration,
    /// Consecutive successes to count as successful after a failure (`successThreshold`,
    /// default 1; must be 1 for liveness and startup).
    pub success_threshold: u32,
    /// Consecutive failures to count as failed (`failureThreshold`, default 3).
    pub failure_threshold: u32,
}

/// A probe definition Kubernetes' validation would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeConfigError {
    #[error("{field}: must be greater than or equal to {min}")]
    TooSmall { field: &'static str, min: i64 },
    #[error("successThreshold: must be 1 for {0} probes")]
    SuccessThresholdMustBeOne(ProbeKind),
    #[error("must specify exactly one handler (exec, httpGet, tcpSocket or grpc), got {0}")]
    Handlers(usize),
    #[error("{field}: unknown named port {name:?}")]
    UnknownPort { field: &'static str, name: String },
    #[error("{field}: port {port} out of range 1-65535")]
    PortRange { field: &'static str, port: i64 },
    #[error("exec.command: must not be empty")]
    EmptyCommand,
    #[error("httpGet.scheme: unsupported value {0:?} (HTTP or HTTPS)")]
    Scheme(String),
}

impl ProbeSpec {
    /// Kubernetes' defaults: no initial delay, period 10 s, timeout 1 s, success 1, failure 3.
    pub fn defaults(kind: ProbeKind) -> Self {
        ProbeSpec {
            kind,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }

    /// A spec with explicit values, checked as the API server checks them: period and
    /// timeout at least 1 s (sub-second values are accepted for tests but must be non-zero),
    /// thresholds at least 1, and a success threshold of 1 for liveness and startup.
    pub fn new(
        kind: ProbeKind,
        initial_delay: Duration,
        period: Duration,
        timeout: Duration,
        success_threshold: u32,
        failure_threshold: u32,
    ) -> Result<Self, ProbeConfigError> {
        let spec = ProbeSpec {
            kind,
            initial_delay,
            period,
            timeout,
            success_threshold,
            failure_threshold,
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn validate(&self) -> Result<(), ProbeConfigError> {
        if self.period.is_zero() {
            return Err(ProbeConfigError::TooSmall {
                field: "periodSeconds",
                min: 1,
            });
        }
        if self.timeout.is_zero() {
            return Err(ProbeConfigError::TooSmall {
                field: "timeoutSeconds",
                min: 1,
            });
        }
        if self.success_threshold == 0 {
            return Err(ProbeConfigError::TooSmall {
                field: "successThreshold",
                min: 1,
            });
        }
        if self.failure_threshold == 0 {
            return Err(ProbeConfigError::TooSmall {
                field: "failureThreshold",
                min: 1,
            });
        }
        if self.kind != ProbeKind::Readiness && self.success_threshold != 1 {
            return Err(ProbeConfigError::SuccessThresholdMustBeOne(self.kind));
        }
        Ok(())
    }

    /// Converts an API `Probe`: unset or zero fields take the defaults (as the API server's
    /// defaulting does), negative ones are rejected; `resolve_port` maps a named container
    /// port to its number. Returns the timing and the action.
    pub fn from_api(
        kind: ProbeKind,
        probe: &Probe,
        resolve_port: &dyn Fn(&str) -> Option<u16>,
    ) -> Result<(ProbeSpec, ProbeAction), ProbeConfigError> {
        fn secs(
            field: &'static str,
            v: Option<i32>,
            default: u64,
            min: i64,
        ) -> Result<u64, ProbeConfigError> {
            match v {
                None | Some(0) => Ok(default),
                Some(n) if i64::from(n) < min => Err(ProbeConfigError::TooSmall { field, min }),
                Some(n) => Ok(n as u64),
            }
        }
        let spec = ProbeSpec::new(
            kind,
            Duration::from_secs(secs(
                "initialDelaySeconds",
                probe.initial_delay_seconds,
                0,
                0,
            )?),
            Duration::from_secs(secs("periodSeconds", probe.period_seconds, 10, 1)?),
            Duration::from_secs(secs("timeoutSeconds", probe.timeout_seconds, 1, 1)?),
            secs("successThreshold", probe.success_threshold, 1, 1)? as u32,
            secs("failureThreshold", probe.failure_threshold, 3, 1)? as u32,
        )?;
        let action = ProbeAction::from_api(probe, resolve_port)?;
        Ok((spec, action))
    }
}

/// `httpGet.scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpScheme {
    Http,
    /// Accepted by the conversion; the executor reports it as a probe error (no TLS here).
    Https,
}

/// An `httpGet` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGetAction {
    pub port: u16,
    /// Path and optional query; "" means "/".
    pub path: String,
    pub scheme: HttpScheme,
    /// `httpGet.host`: connect to this host instead of the container.
    pub host: Option<String>,
    /// `httpHeaders`, sent in order; a `Host` or `User-Agent` here replaces the default.
    pub headers: Vec<(String, String)>,
}

/// How a probe checks the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// Success when the response status is 200–399.
    HttpGet(HttpGetAction),
    /// Success when a TCP connection can be opened.
    TcpSocket { port: u16, host: Option<String> },
    /// Success when the command exits with code 0.
    Exec { command: Vec<String> },
    /// Success when `grpc.health.v1.Health/Check` answers `SERVING`.
    Grpc { port: u16, service: Option<String> },
}

impl ProbeAction {
    /// The handler of an API `Probe` (exactly one must be set).
    pub fn from_api(
        probe: &Probe,
        resolve_port: &dyn Fn(&str) -> Option<u16>,
    ) -> Result<ProbeAction, ProbeConfigError> {
        let count = usize::from(probe.exec.is_some())
            + usize::from(probe.http_get.is_some())
            + usize::from(probe.tcp_socket.is_some())
            + usize::from(probe.grpc.is_some());
        if count != 1 {
            return Err(ProbeConfigError::Handlers(count));
        }
        let port = |field: &'static str, p: &IntOrString| -> Result<u16, ProbeConfigError> {
            match p {
                IntOrString::Int(n) => number_port(field, i64::from(*n)),
                IntOrString::String(s) => match s.parse::<i64>() {
                    Ok(n) => number_port(field, n),
                    Err(_) => resolve_port(s).ok_or_else(|| ProbeConfigError::UnknownPort {
                        field,
                        name: s.clone(),
                    }),
                },
            }
        };
        if let Some(exec) = &probe.exec {
            let command = exec.command.clone().unwrap_or_default();
            if command.is_empty() {
                return Err(ProbeConfigError::EmptyCommand);
            }
            return Ok(ProbeAction::Exec { command });
        }
        if let Some(h) = &probe.http_get {
            let scheme = match h.scheme.as_deref() {
                None | Some("") | Some("HTTP") => HttpScheme::Http,
                Some("HTTPS") => HttpScheme::Https,
                Some(other) => return Err(ProbeConfigError::Scheme(other.to_string())),
            };
            return Ok(ProbeAction::HttpGet(HttpGetAction {
                port: port("httpGet.port", &h.port)?,
                path: h.path.clone().unwrap_or_default(),
                scheme,
                host: h.host.clone().filter(|s| !s.is_empty()),
                headers: h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|hh| (hh.name.clone(), hh.value.clone()))
                    .collect(),
            }));
        }
        if let Some(t) = &probe.tcp_socket {
            return Ok(ProbeAction::TcpSocket {
                port: port("tcpSocket.port", &t.port)?,
                host: t.host.clone().filter(|s| !s.is_empty()),
            });
        }
        let g = probe.grpc.as_ref().expect("counted above");
        Ok(ProbeAction::Grpc {
            port: number_port("grpc.port", i64::from(g.port))?,
            service: g.service.clone().filter(|s| !s.is_empty()),
        })
    }
}

fn number_port(field: &'static str, n: i64) -> Result<u16, ProbeConfigError> {
    if (1..=65535).contains(&n) {
        Ok(n as u16)
    } else {
        Err(ProbeConfigError::PortRange { field, port: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, TCPSocketAction,
    };

    fn no_ports(_: &str) -> Option<u16> {
        None
    }

    #[test]
    fn defaults_apply_to_unset_and_zero_fields() {
        let probe = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(80),
                host: None,
            }),
            period_seconds: Some(0),
            ..Default::default()
        };
        let (spec, action) = ProbeSpec::from_api(ProbeKind::Liveness, &probe, &no_ports).unwrap();
        assert_eq!(spec, ProbeSpec::defaults(ProbeKind::Liveness));
        assert_eq!(
            action,
            ProbeAction::TcpSocket {
                port: 80,
                host: None
            }
        );
    }

    #[test]
    fn explicit_fields_and_named_ports() {
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("web".into()),
                path: Some("/healthz".into()),
                http_headers: Some(vec![HTTPHeader {
                    name: "X-A".into(),
                    value: "b".into(),
                }]),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            period_seconds: Some(2),
            timeout_seconds: Some(3),
            success_threshold: Some(2),
            failure_threshold: Some(4),
            ..Default::default()
        };
        let resolve = |n: &str| (n == "web").then_some(8080);
        let (spec, action) = ProbeSpec::from_api(ProbeKind::Readiness, &probe, &resolve).unwrap();
        assert_eq!(spec.initial_delay, Duration::from_secs(5));
        assert_eq!(spec.period, Duration::from_secs(2));
        assert_eq!(spec.timeout, Duration::from_secs(3));
        assert_eq!((spec.success_threshold, spec.failure_threshold), (2, 4));
        let ProbeAction::HttpGet(h) = action else {
            panic!("not httpGet")
        };
        assert_eq!(h.port, 8080);
        assert_eq!(h.path, "/healthz");
        assert_eq!(h.headers, vec![("X-A".to_string(), "b".to_string())]);
        // The same probe as liveness has an invalid success threshold.
        assert_eq!(
            ProbeSpec::from_api(ProbeKind::Liveness, &probe, &resolve).unwrap_err(),
            ProbeConfigError::SuccessThresholdMustBeOne(ProbeKind::Liveness)
        );
        assert!(matches!(
            ProbeSpec::from_api(ProbeKind::Readiness, &probe, &no_ports).unwrap_err(),
            ProbeConfigError::UnknownPort { .. }
        ));
    }

    #[test]
    fn rejects_invalid_probes() {
        let tcp = Some(TCPSocketAction {
            port: IntOrString::Int(80),
            host: None,
        });
        let cases: Vec<(Probe, &str)> = vec![
            (Probe::default(), "no handler"),
            (
                Probe {
                    tcp_socket: tcp.clone(),
                    exec: Some(ExecAction {
                        command: Some(vec!["true".into()]),
                    }),
                    ..Default::default()
                },
                "two handlers",
            ),
            (
                Probe {
                    tcp_socket: tcp.clone(),
                    period_seconds: Some(-1),
                    ..Default::default()
                },
                "period",
            ),
            (
                Probe {
                    tcp_socket: tcp.clone(),
                    initial_delay_seconds: Some(-1),
                    ..Default::default()
                },
                "delay",
            ),
            (
                Probe {
                    exec: Some(ExecAction {
                        command: Some(vec![]),
                    }),
                    ..Default::default()
                },
                "empty command",
            ),
            (
                Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(70000),
                        host: None,
                    }),
                    ..Default::default()
                },
                "port range",
            ),
            (
                Probe {
                    grpc: Some(GRPCAction {
                        port: 0,
                        service: None,
                    }),
                    ..Default::default()
                },
                "grpc port",
            ),
        ];
        for (probe, what) in cases {
            assert!(
                ProbeSpec::from_api(ProbeKind::Readiness, &probe, &no_ports).is_err(),
                "{what} accepted"
            );
        }
        let ok = Probe {
            grpc: Some(GRPCAction {
                port: 9000,
                service: Some("".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            ProbeAction::from_api(&ok, &no_ports).unwrap(),
            ProbeAction::Grpc {
                port: 9000,
                service: None
            }
        );
    }
}
