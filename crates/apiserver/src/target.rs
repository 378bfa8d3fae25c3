//! Parsing request paths into what they address (pure).

use slipway_core::resources::{self, ResourceInfo};
use slipway_core::{ApiError, Subresource};

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api` (core discovery).
    CoreDiscovery,
    /// `/apis` (group discovery).
    GroupDiscovery,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion(String, String),
    /// A resource collection, object or subresource.
    Resource(ResourceTarget),
}

/// A resource collection (`name == None`), an object, or an object's subresource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceTarget {
    /// The resource type.
    pub info: &'static ResourceInfo,
    /// The namespace in the path (`None` for cluster-scoped resources and for the
    /// all-namespaces collection of a namespaced resource).
    pub namespace: Option<String>,
    /// The object name.
    pub name: Option<String>,
    /// The subresource.
    pub subresource: Option<Subresource>,
}

/// Parses an already percent-decoded path (no query string).
pub fn parse(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segments.as_slice() {
        ["api"] => return Ok(Target::CoreDiscovery),
        ["apis"] => return Ok(Target::GroupDiscovery),
        ["apis", group] => return Ok(Target::Group((*group).to_string())),
        ["api", version] => return Ok(Target::GroupVersion(String::new(), (*version).to_string())),
        ["apis", group, version] => {
            return Ok(Target::GroupVersion(
                (*group).to_string(),
                (*version).to_string(),
            ));
        }
        ["api", version, rest @ ..] => ("", version, rest),
        ["apis", group, version, rest @ ..] => (group, version, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let lookup = |plural: &str| {
        resources::lookup(group, version, plural).ok_or_else(ApiError::path_not_found)
    };
    let target = |info, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        let subresource = match sub {
            None => None,
            Some(s) => match Subresource::parse(s) {
                Some(sub) if ResourceInfo::has_subresource(info, sub) => Some(sub),
                _ => return Err(ApiError::path_not_found()),
            },
        };
        if let Some(n) = name
            && n.is_empty()
        {
            return Err(ApiError::path_not_found());
        }
        Ok(Target::Resource(ResourceTarget {
            info,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource,
        }))
    };
    match rest {
        // /namespaces/<ns>/<plural>[/<name>[/<sub>]]
        ["namespaces", ns, plural, tail @ ..] if !is_namespace_object_path(plural, tail) => {
            let info = lookup(plural)?;
            if !info.namespaced {
                return Err(ApiError::path_not_found());
            }
            match tail {
                [] => target(info, Some(ns), None, None),
                [name] => target(info, Some(ns), Some(name), None),
                [name, sub] => target(info, Some(ns), Some(name), Some(sub)),
                _ => Err(ApiError::path_not_found()),
            }
        }
        // /<plural>[/<name>[/<sub>]] (cluster-scoped, or all namespaces)
        [plural, tail @ ..] => {
            let info = lookup(plural)?;
            match tail {
                [] => target(info, None, None, None),
                [name] if !info.namespaced => target(info, None, Some(name), None),
                [name, sub] if !info.namespaced => target(info, None, Some(name), Some(sub)),
                _ => Err(ApiError::path_not_found()),
            }
        }
        [] => Err(ApiError::path_not_found()),
    }
}

/// `/api/v1/namespaces/<name>/<subresource>` addresses a namespace's subresource (e.g.
/// `status`, `finalize`), not a namespaced collection.
fn is_namespace_object_path(segment: &str, tail: &[&str]) -> bool {
    tail.is_empty() && (segment == "status" || segment == "finalize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourceTarget {
        match parse(path).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_namespaced_paths() {
        let r = res("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(r.info.plural, "deployments");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource, Some(Subresource::Scale));
        let all = res("/apis/apps/v1/deployments");
        assert_eq!(all.namespace, None);
        assert_eq!(all.name, None);
        let pods = res("/api/v1/namespaces/ns1/pods");
        assert_eq!(pods.info.kind, "Pod");
    }

    #[test]
    fn parses_cluster_scoped_paths() {
        let ns = res("/api/v1/namespaces/team-a");
        assert_eq!(ns.info.kind, "Namespace");
        assert_eq!(ns.name.as_deref(), Some("team-a"));
        let st = res("/api/v1/namespaces/team-a/status");
        assert_eq!(st.subresource, Some(Subresource::Status));
        assert_eq!(res("/api/v1/namespaces").name, None);
    }

    #[test]
    fn rejects_unknown_paths() {
        for p in [
            "/apis/apps/v1/namespaces/default/widgets",
            "/apis/apps/v2/deployments",
            "/apis/apps/v1/namespaces/default/deployments/web/log",
            "/api/v1/namespaces/default/pods/a/b/c",
            "/apis/apps/v1/deployments/web",
            "/nothing",
        ] {
            assert!(parse(p).is_err(), "{p}");
        }
        assert_eq!(parse("/api").unwrap(), Target::CoreDiscovery);
        assert_eq!(
            parse("/apis/apps/v1").unwrap(),
            Target::GroupVersion("apps".into(), "v1".into())
        );
    }
}
