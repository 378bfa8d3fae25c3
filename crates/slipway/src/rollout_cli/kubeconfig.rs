//! Which API server, credentials and namespace a command uses, resolved as kubectl does:
//! the kubeconfig from `--kubeconfig`, else the first file of `$KUBECONFIG`, else
//! `~/.kube/config`; the context from `--context`, else `current-context`; the namespace
//! from `-n`, else the context's, else `default`.
//!
//! The kubeconfig is read here (rather than by `RemoteClient::from_kubeconfig`, which only
//! knows the current context) and the client is built with `RemoteClient::new`.

use base64::Engine as _;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Where to connect, as whom, and the namespace to work in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The context used.
    pub context: String,
    /// The cluster's `server` URL.
    pub server: String,
    /// The cluster's CA certificate(s), PEM.
    pub ca_pem: Vec<u8>,
    /// The user's bearer token, if any.
    pub token: Option<String>,
    /// The namespace commands work in.
    pub namespace: String,
}

/// The kubeconfig file: `flag`, else the first non-empty entry of `$KUBECONFIG` (a
/// colon-separated list; an entry that exists is preferred), else `<home>/.kube/config`.
pub fn kubeconfig_path(
    flag: Option<&Path>,
    env: Option<&OsStr>,
    home: Option<&Path>,
) -> Result<PathBuf, String> {
    if let Some(p) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p.to_path_buf());
    }
    if let Some(list) = env.and_then(OsStr::to_str) {
        let entries: Vec<&str> = list.split(':').filter(|e| !e.is_empty()).collect();
        if let Some(existing) = entries.iter().find(|e| Path::new(e).exists()) {
            return Ok(PathBuf::from(existing));
        }
        if let Some(first) = entries.first() {
            return Ok(PathBuf::from(first));
        }
    }
    match home {
        Some(home) => Ok(home.join(".kube").join("config")),
        None => Err("no kubeconfig: pass --kubeconfig or set KUBECONFIG (HOME is not set)".into()),
    }
}

/// The entry called `name` of the list `list` (`clusters`, `contexts`, `users`): its
/// `field` member (`cluster`, `context`, `user`).
fn named<'a>(doc: &'a Value, list: &str, field: &str, name: &str) -> Option<&'a Value> {
    doc[list]
        .as_array()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .map(|e| &e[field])
}

/// Resolves a kubeconfig's text (`base_dir` for relative file references) for `context`
/// (default: `current-context`) and `namespace` (default: the context's, else `default`).
/// `read` reads referenced files (CA, token file).
pub fn resolve(
    text: &str,
    base_dir: &Path,
    context: Option<&str>,
    namespace: Option<&str>,
    read: &dyn Fn(&Path) -> Result<Vec<u8>, String>,
) -> Result<Target, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("invalid kubeconfig: {e}"))?;
    if !doc.is_object() {
        return Err("invalid kubeconfig: not a mapping".into());
    }
    let context_name = match context.filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => doc["current-context"]
            .as_str()
            .filter(|c| !c.is_empty())
            .ok_or("current-context is not set in the kubeconfig (pass --context)")?
            .to_string(),
    };
    let ctx = named(&doc, "contexts", "context", &context_name)
        .ok_or_else(|| format!("context was not found for specified context: {context_name}"))?;
    let cluster_name = ctx["cluster"].as_str().unwrap_or_default();
    let cluster = named(&doc, "clusters", "cluster", cluster_name)
        .ok_or_else(|| format!("cluster {cluster_name:?} of context {context_name:?} not found"))?;
    let server = cluster["server"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("cluster {cluster_name:?} has no server"))?
        .to_string();
    let resolve_path = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    let non_empty = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let ca_pem = match (
        non_empty(&cluster["certificate-authority-data"]),
        non_empty(&cluster["certificate-authority"]),
    ) {
        (Some(data), _) => {
            let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| format!("cluster {cluster_name:?}: certificate-authority-data: {e}"))?
        }
        (None, Some(file)) => read(&resolve_path(&file))?,
        (None, None) => {
            return Err(format!(
                "cluster {cluster_name:?} has no certificate-authority-data or certificate-authority"
            ));
        }
    };
    let user_name = ctx["user"].as_str().unwrap_or_default();
    let user = match user_name {
        "" => &Value::Null,
        name => named(&doc, "users", "user", name)
            .ok_or_else(|| format!("user {name:?} of context {context_name:?} not found"))?,
    };
    let token = match (non_empty(&user["token"]), non_empty(&user["tokenFile"])) {
        (Some(t), _) => Some(t.trim().to_string()),
        (None, Some(file)) => {
            let raw = read(&resolve_path(&file))?;
            Some(String::from_utf8_lossy(&raw).trim().to_string())
        }
        (None, None) => {
            if let Some(how) = ["client-certificate-data", "client-certificate", "exec"]
                .into_iter()
                .find(|k| !user[*k].is_null())
            {
                return Err(format!(
                    "user {user_name:?} authenticates with {how}; only bearer tokens are supported"
                ));
            }
            None
        }
    };
    let namespace = namespace
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or_else(|| non_empty(&ctx["namespace"]))
        .unwrap_or_else(|| "default".to_string());
    Ok(Target {
        context: context_name,
        server,
        ca_pem,
        token,
        namespace,
    })
}

/// Reads a file for [`resolve`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn config() -> String {
        let ca_b64 = base64::engine::general_purpose::STANDARD.encode(CA);
        format!(
            r#"apiVersion: v1
kind: Config
current-context: main
clusters:
- name: one
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: {ca_b64}
- name: two
  cluster:
    server: https://10.0.0.2:443
    certificate-authority: certs/ca.crt
contexts:
- name: main
  context: {{cluster: one, user: admin}}
- name: staging
  context: {{cluster: two, user: file-user, namespace: shop}}
users:
- name: admin
  user: {{token: " secret "}}
- name: file-user
  user: {{tokenFile: /abs/token}}
"#
        )
    }

    fn fake_read(p: &Path) -> Result<Vec<u8>, String> {
        match p.to_str() {
            Some("/base/certs/ca.crt") => Ok(CA.as_bytes().to_vec()),
            Some("/abs/token") => Ok(b"from-file\n".to_vec()),
            _ => Err(format!("{}: not found", p.display())),
        }
    }

    #[test]
    fn the_flag_wins_then_the_first_kubeconfig_entry_then_home() {
        let home = Path::new("/home/u");
        assert_eq!(
            kubeconfig_path(
                Some(Path::new("/x/kc")),
                Some(OsStr::new("/a:/b")),
                Some(home)
            )
            .unwrap(),
            PathBuf::from("/x/kc")
        );
        // Neither entry exists: the first one.
        assert_eq!(
            kubeconfig_path(None, Some(OsStr::new("::/nope/a:/nope/b")), Some(home)).unwrap(),
            PathBuf::from("/nope/a")
        );
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("kc");
        std::fs::write(&existing, "x").unwrap();
        let list = format!("/nope/a:{}", existing.display());
        assert_eq!(
            kubeconfig_path(None, Some(OsStr::new(&list)), Some(home)).unwrap(),
            existing
        );
        assert_eq!(
            kubeconfig_path(None, Some(OsStr::new("")), Some(home)).unwrap(),
            PathBuf::from("/home/u/.kube/config")
        );
        assert_eq!(
            kubeconfig_path(None, None, Some(home)).unwrap(),
            PathBuf::from("/home/u/.kube/config")
        );
        assert!(kubeconfig_path(None, None, None).is_err());
    }

    #[test]
    fn the_current_context_and_the_default_namespace() {
        let t = resolve(&config(), Path::new("/base"), None, None, &fake_read).unwrap();
        assert_eq!(t.context, "main");
        assert_eq!(t.server, "https://127.0.0.1:6443");
        assert_eq!(t.ca_pem, CA.as_bytes());
        assert_eq!(t.token.as_deref(), Some("secret"));
        assert_eq!(t.namespace, "default");
    }

    #[test]
    fn another_context_with_files_and_its_namespace_unless_n_is_given() {
        let t = resolve(
            &config(),
            Path::new("/base"),
            Some("staging"),
            None,
            &fake_read,
        )
        .unwrap();
        assert_eq!(t.context, "staging");
        assert_eq!(t.server, "https://10.0.0.2:443");
        assert_eq!(t.ca_pem, CA.as_bytes());
        assert_eq!(t.token.as_deref(), Some("from-file"));
        assert_eq!(t.namespace, "shop");
        let t = resolve(
            &config(),
            Path::new("/base"),
            Some("staging"),
            Some("other"),
            &fake_read,
        )
        .unwrap();
        assert_eq!(t.namespace, "other");
        let t = resolve(
            &config(),
            Path::new("/base"),
            None,
            Some("other"),
            &fake_read,
        )
        .unwrap();
        assert_eq!(t.namespace, "other");
    }

    #[test]
    fn errors_name_what_is_missing() {
        let e = resolve(
            &config(),
            Path::new("/base"),
            Some("nope"),
            None,
            &fake_read,
        )
        .unwrap_err();
        assert_eq!(e, "context was not found for specified context: nope");
        let no_current = config().replace("current-context: main\n", "");
        let e = resolve(&no_current, Path::new("/base"), None, None, &fake_read).unwrap_err();
        assert!(e.contains("current-context is not set"), "{e}");
        let e = resolve(
            &config(),
            Path::new("/elsewhere"),
            Some("staging"),
            None,
            &fake_read,
        )
        .unwrap_err();
        assert!(e.contains("/elsewhere/certs/ca.crt"), "{e}");
        let certs = config().replace("{token: \" secret \"}", "{client-certificate-data: abc}");
        let e = resolve(&certs, Path::new("/base"), None, None, &fake_read).unwrap_err();
        assert!(e.contains("only bearer tokens"), "{e}");
        assert!(resolve("- a\n- b\n", Path::new("/"), None, None, &fake_read).is_err());
    }
}
