//! What the agent tells others about a pod's network: `network.json` for the service proxy
//! ([`PodNetwork`]), and the hosts file of an isolated container ([`hosts_file`], which
//! the agent writes into the run's directory and the shim places in the container's
//! overlay before the container starts).
//!
//! # `network.json`
//!
//! When a pod worker starts a pod (not a finished one), the agent writes
//! `<data_dir>/pods/<pod uid>/network.json`, atomically (a temporary file in the same
//! directory renamed into place), so a reader never sees half a file:
//!
//! ```json
//! {"podIP": "127.128.0.7", "ports": [{"port": 8080, "container": "app"}]}
//! ```
//!
//! * `podIP`: the pod's IP (as in `status.podIP`);
//! * `ports`: for each regular container, in the order of the pod spec, the TCP ports it
//!   serves: its declared TCP `containerPort`s, or, when it declares none and its image is
//!   one of the built-in HTTP samples, the port the sample listens on (its `PORT` env value,
//!   8080 by default). A port may appear once per container; unknown fields are to be
//!   ignored by readers.
//!
//! The file lives as long as the pod's directory: it goes when the pod is deleted (after its
//! processes are gone). The service proxy reads it (with its own parser of this format) to
//! know which container's network namespace serves a port of a pod.
//!
//! # The pod's network namespace
//!
//! An isolated pod has one network namespace, pinned at `<data_dir>/pods/<uid>/netns` (see
//! [`slipway_netns::create_pinned`]) before its first container starts; every container
//! (init containers too, and every restart) joins it, so they share `localhost` and ports
//! as on Kubernetes, and a restarted container keeps the pod's listeners. It survives a
//! crash of `slipway serve` (a mount, not a process) and is unpinned when the pod's files go.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_core::meta;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name of the file in a pod's directory.
pub const NETWORK_FILE: &str = "network.json";
/// Where a pod's network namespace is pinned, in its directory.
pub const NETNS_FILE: &str = "netns";

/// The path of the pod's pinned network namespace (`None` for an unsafe uid).
pub fn netns_path(data_dir: &Path, uid: &str) -> Option<PathBuf> {
    Some(super::Layout::new(data_dir).pod_dir(uid)?.join(NETNS_FILE))
}

/// Pins the pod's network namespace (creating its directory), unless it already is.
pub fn pin_netns(data_dir: &Path, uid: &str) -> std::io::Result<PathBuf> {
    let path = netns_path(data_dir, uid)
        .ok_or_else(|| std::io::Error::other(format!("invalid pod uid {uid:?}")))?;
    std::fs::create_dir_all(path.parent().expect("a pod dir"))?;
    slipway_netns::create_pinned(&path)?;
    Ok(path)
}

/// The pod's pinned network namespace, if it has one.
pub fn pinned_netns(data_dir: &Path, uid: &str) -> Option<PathBuf> {
    netns_path(data_dir, uid).filter(|p| slipway_netns::is_pinned(p))
}

/// Unpins the pod's network namespace (before its directory is removed).
pub fn unpin_netns(data_dir: &Path, uid: &str) {
    if let Some(path) = netns_path(data_dir, uid)
        && let Err(e) = slipway_netns::remove_pinned(&path)
    {
        tracing::warn!(uid, error = %e, "cannot unpin the pod's network namespace");
    }
}

/// What `network.json` holds (see the module documentation for the format).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNetwork {
    #[serde(rename = "podIP", default)]
    pub pod_ip: String,
    #[serde(default)]
    pub ports: Vec<ServedPort>,
}

/// One port a container of the pod serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedPort {
    pub port: u16,
    pub container: String,
}

impl PodNetwork {
    /// `<data_dir>/pods/<uid>/network.json`, or `None` for a uid that is not a safe path
    /// component.
    pub fn path(data_dir: &Path, uid: &str) -> Option<PathBuf> {
        Some(
            super::Layout::new(data_dir)
                .pod_dir(uid)?
                .join(NETWORK_FILE),
        )
    }

    /// Reads a pod's `network.json`; `None` when it is missing or not valid.
    pub fn read(data_dir: &Path, uid: &str) -> Option<PodNetwork> {
        let text = std::fs::read(Self::path(data_dir, uid)?).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes a pod's `network.json` atomically, creating the pod's directory if needed.
    pub fn write(&self, data_dir: &Path, uid: &str) -> std::io::Result<()> {
        let path = Self::path(data_dir, uid)
            .ok_or_else(|| std::io::Error::other(format!("invalid pod uid {uid:?}")))?;
        let dir = path.parent().expect("a pod dir");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{NETWORK_FILE}.tmp"));
        let mut data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        data.push(b'\n');
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, &path)
    }
}

/// The hosts file of an isolated container, as the kubelet writes it (plus the Services;
/// fields are separated by tabs):
///
/// ```text
/// # Kubernetes-managed hosts file.
/// 127.0.0.1  localhost
/// ::1  localhost ip6-localhost ip6-loopback
/// fe00::0  ip6-localnet ... (the kubelet's IPv6 lines)
/// <pod IP>  <hostname>
/// # Entries added by HostAliases.          (when spec.hostAliases has entries)
/// <ip>  <hostnames...>
/// # Services (a snapshot taken when the container started).
/// <clusterIP>  <svc>.<ns>.svc.cluster.local <svc>.<ns>.svc <svc>.<ns> [<svc>]
/// ```
///
/// Every Service with a ClusterIP, of every namespace, in (namespace, name) order; the short
/// name `<svc>` only for Services of the pod's own namespace. Headless Services (ClusterIP
/// `None`) are left out: their names would resolve to the ready endpoints, which the hosts
/// file does not follow.
pub fn hosts_file(
    pod: &Value,
    pod_ip: &str,
    hostname: &str,
    services: &[Arc<Value>],
    endpoints: &[Arc<Value>],
) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file.\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    if !pod_ip.is_empty() {
        out.push_str(&format!("{pod_ip}\t{hostname}\n"));
    }
    let aliases: Vec<(&str, Vec<&str>)> = pod
        .pointer("/spec/hostAliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let ip = a.get("ip").and_then(Value::as_str)?;
            let names: Vec<&str> = a
                .get("hostnames")
                .and_then(Value::as_array)?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            (!names.is_empty()).then_some((ip, names))
        })
        .collect();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in aliases {
            out.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    let namespace = meta::namespace(pod);
    let mut listed: Vec<(&str, &str, &str)> = services
        .iter()
        .filter_map(|s| {
            let ip = super::env::cluster_ip(s)?;
            Some((meta::namespace(s), meta::name(s), ip))
        })
        .filter(|(ns, name, _)| !ns.is_empty() && !name.is_empty())
        .collect();
    // Headless Services resolve to their ready pods, as cluster DNS answers for them.
    for svc in services {
        if svc.pointer("/spec/clusterIP").and_then(Value::as_str) != Some("None") {
            continue;
        }
        let (ns, name) = (meta::namespace(svc), meta::name(svc));
        let Some(ep) = endpoints
            .iter()
            .find(|e| meta::namespace(e) == ns && meta::name(e) == name)
        else {
            continue;
        };
        let subsets = ep.get("subsets").and_then(Value::as_array);
        for address in subsets
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("addresses").and_then(Value::as_array))
            .flatten()
        {
            if let Some(ip) = address.get("ip").and_then(Value::as_str) {
                listed.push((ns, name, ip));
            }
        }
    }
    listed.sort_unstable();
    if !listed.is_empty() {
        out.push_str("\n# Services (a snapshot taken when the container started).\n");
        for (ns, name, ip) in listed {
            out.push_str(&format!(
                "{ip}\t{name}.{ns}.svc.cluster.local {name}.{ns}.svc {name}.{ns}"
            ));
            if ns == namespace {
                out.push_str(&format!(" {name}"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headless_services_resolve_to_their_ready_pods() {
        let pod = json!({"metadata": {"namespace": "shop", "name": "web-1"}});
        let services = vec![svc("shop", "peers", "None")];
        let endpoints = vec![Arc::new(json!({
            "metadata": {"namespace": "shop", "name": "peers"},
            "subsets": [{"addresses": [{"ip": "127.128.0.11"}, {"ip": "127.128.0.12"}],
                         "notReadyAddresses": [{"ip": "127.128.0.13"}]}]
        }))];
        let text = hosts_file(&pod, "127.128.0.7", "web-1", &services, &endpoints);
        let lines: Vec<&str> = text.lines().collect();
        for ip in ["127.128.0.11", "127.128.0.12"] {
            let line =
                format!("{ip}\tpeers.shop.svc.cluster.local peers.shop.svc peers.shop peers");
            assert!(lines.contains(&line.as_str()), "{text}");
        }
        assert!(
            !text.contains("127.128.0.13"),
            "a not-ready pod is not listed: {text}"
        );
        assert!(!text.contains("None"), "{text}");
        // Without its Endpoints (none yet), a headless Service has no entry.
        assert!(!hosts_file(&pod, "127.128.0.7", "web-1", &services, &[]).contains("peers"));
    }

    fn svc(ns: &str, name: &str, ip: &str) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": 80}]}
        }))
    }

    #[test]
    fn hosts_file_lists_localhost_the_pod_and_every_service_with_a_cluster_ip() {
        let pod = json!({"metadata": {"namespace": "shop", "name": "web-1"}, "spec": {}});
        let services = vec![
            svc("shop", "backend", "10.96.0.10"),
            svc("other", "db", "10.96.0.11"),
            svc("shop", "headless", "None"),
            svc("shop", "pending", ""),
            svc("default", "kubernetes", "10.96.0.1"),
        ];
        let text = hosts_file(&pod, "127.128.0.7", "web-1", &services, &[]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# Kubernetes-managed hosts file.");
        assert!(lines.contains(&"127.0.0.1\tlocalhost"), "{text}");
        assert!(
            lines.contains(&"::1\tlocalhost ip6-localhost ip6-loopback"),
            "{text}"
        );
        assert!(lines.contains(&"127.128.0.7\tweb-1"), "{text}");
        let services: Vec<&str> = lines
            .iter()
            .copied()
            .skip_while(|l| !l.starts_with("# Services"))
            .skip(1)
            .collect();
        assert_eq!(
            services,
            vec![
                "10.96.0.1\tkubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default",
                "10.96.0.11\tdb.other.svc.cluster.local db.other.svc db.other",
                "10.96.0.10\tbackend.shop.svc.cluster.local backend.shop.svc backend.shop backend",
            ]
        );
        assert!(
            !text.contains("headless") && !text.contains("pending"),
            "{text}"
        );
    }

    #[test]
    fn hosts_file_without_services_and_with_host_aliases() {
        let pod = json!({
            "metadata": {"namespace": "default", "name": "p"},
            "spec": {"hostAliases": [{"ip": "127.0.0.2", "hostnames": ["foo.local", "bar"]}]}
        });
        let text = hosts_file(&pod, "127.128.0.9", "p", &[], &[]);
        assert!(!text.contains("# Services"), "{text}");
        assert!(
            text.contains("# Entries added by HostAliases.\n127.0.0.2\tfoo.local\tbar\n"),
            "{text}"
        );
    }

    #[test]
    fn network_json_round_trips_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(PodNetwork::read(tmp.path(), "u1"), None);
        let net = PodNetwork {
            pod_ip: "127.128.0.3".into(),
            ports: vec![ServedPort {
                port: 8080,
                container: "app".into(),
            }],
        };
        net.write(tmp.path(), "u1").unwrap();
        let path = tmp.path().join("pods/u1/network.json");
        let raw: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            raw,
            json!({"podIP": "127.128.0.3", "ports": [{"port": 8080, "container": "app"}]})
        );
        assert_eq!(PodNetwork::read(tmp.path(), "u1"), Some(net));
        // Only the file itself is left (the temporary file was renamed).
        let names: Vec<String> = std::fs::read_dir(tmp.path().join("pods/u1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["network.json".to_string()]);
        assert!(PodNetwork::write(&PodNetwork::default(), tmp.path(), "../x").is_err());
    }
}
