//! Image references: parsing and the normalisation container runtimes apply.
//!
//! A reference is `[domain/]path[:tag][@algorithm:hex]`. As with Docker and containerd, a
//! reference without a domain lives on `docker.io`, a one-component `docker.io` path lives
//! under `library/`, and a reference with neither tag nor digest means `:latest`. So `nginx`,
//! `nginx:latest` and `docker.io/library/nginx:latest` all name the same image.

use std::fmt;

/// The default registry of references that name none.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry, normalised (`docker.io` when the reference names none).
    pub domain: String,
    /// The repository path, normalised (`library/nginx` for `nginx`).
    pub path: String,
    /// The tag as written (`None` when the reference has none).
    pub tag: Option<String>,
    /// The digest (`sha256:<hex>`), when the reference has one.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises `reference`; the error says what is wrong with it.
    pub fn parse(reference: &str) -> Result<ImageRef, String> {
        if reference.is_empty() {
            return Err("the image reference is empty".into());
        }
        if reference.trim() != reference || reference.chars().any(char::is_whitespace) {
            return Err("an image reference may not contain whitespace".into());
        }
        let (name_and_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d)?)),
            None => (reference, None),
        };
        // The tag follows the last ':' that comes after the last '/' (a ':' before it is
        // a registry port, as in `localhost:5000/app`).
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        if name.is_empty() {
            return Err("the image reference has no repository name".into());
        }
        let (domain, path) = split_domain(name);
        if let Some(domain) = domain {
            validate_domain(domain)?;
        }
        validate_path(path)?;
        let domain = match domain {
            None | Some("index.docker.io") => DEFAULT_DOMAIN.to_string(),
            Some(d) => d.to_string(),
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(ImageRef {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The repository name in its short ("familiar") form: `docker.io/` and `library/`
    /// are left out, as `docker images` shows them (`nginx`, `k8spatterns/random-generator`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The fully qualified repository name (`docker.io/library/nginx`).
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag this reference means: its own, or `latest` when it has neither tag nor
    /// digest. `None` for a digest-only reference.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// The familiar form with the effective tag and the digest:
    /// `k8spatterns/random-generator:1.0`, `nginx:latest`, `app@sha256:...`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(tag) = self.effective_tag() {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

/// Splits off the registry: the first component is one when there are several and it looks
/// like a host (has a '.' or a ':' or is `localhost`).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!("invalid registry host {domain:?}"))
    }
}

/// Path components: lowercase letters and digits, separated inside a component by `.`,
/// `_`, `__` or runs of `-`.
fn validate_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err("the repository name has an empty path component".into());
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "repository name {path:?} must be lowercase (component {component:?})"
            ));
        }
        let ok_chars = component
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        let starts_ends = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ends_ok = component.chars().next().is_some_and(starts_ends)
            && component.chars().last().is_some_and(starts_ends);
        let separators_ok = !component.contains("..")
            && !component.contains("___")
            && !component.contains("._")
            && !component.contains("_.")
            && !component.contains("-.")
            && !component.contains(".-")
            && !component.contains("_-")
            && !component.contains("-_");
        if !(ok_chars && ends_ok && separators_ok) {
            return Err(format!(
                "invalid repository name component {component:?} (use lowercase letters, \
                 digits and single separators . _ -)"
            ));
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?} (up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-')"
        ))
    }
}

/// `algorithm:hex`; sha256 digests have exactly 64 hex digits. Returned lowercased.
fn parse_digest(digest: &str) -> Result<String, String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("invalid digest {digest:?} (expected sha256:<64 hex digits>)"))?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-')
        });
    let hex_ok = hex.chars().all(|c| c.is_ascii_hexdigit())
        && if algorithm == "sha256" {
            hex.len() == 64
        } else {
            hex.len() >= 32
        };
    if algorithm_ok && hex_ok {
        Ok(format!("{algorithm}:{}", hex.to_ascii_lowercase()))
    } else {
        Err(format!(
            "invalid digest {digest:?} (expected sha256:<64 hex digits>)"
        ))
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        for (input, familiar, full) in [
            ("nginx", "nginx:latest", "docker.io/library/nginx"),
            ("nginx:1.27", "nginx:1.27", "docker.io/library/nginx"),
            (
                "docker.io/library/nginx",
                "nginx:latest",
                "docker.io/library/nginx",
            ),
            (
                "index.docker.io/library/nginx:latest",
                "nginx:latest",
                "docker.io/library/nginx",
            ),
            (
                "k8spatterns/random-generator:1.0",
                "k8spatterns/random-generator:1.0",
                "docker.io/k8spatterns/random-generator",
            ),
            (
                "localhost:5000/team/app:v2",
                "localhost:5000/team/app:v2",
                "localhost:5000/team/app",
            ),
            (
                "ghcr.io/org/app",
                "ghcr.io/org/app:latest",
                "ghcr.io/org/app",
            ),
        ] {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(r.full_name(), full, "{input}");
        }
    }

    #[test]
    fn digests() {
        let hex = "a".repeat(64);
        let r = ImageRef::parse(&format!("app@sha256:{}", hex.to_uppercase())).unwrap();
        assert_eq!(r.digest.as_deref(), Some(format!("sha256:{hex}").as_str()));
        assert_eq!(r.tag, None);
        assert_eq!(r.effective_tag(), None);
        assert_eq!(r.familiar(), format!("app@sha256:{hex}"));
        let r = ImageRef::parse(&format!("app:1@sha256:{hex}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert!(ImageRef::parse("app@sha256:abc").is_err());
        assert!(ImageRef::parse("app@md5").is_err());
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "", "Nginx", "a b", "app:", "app:-x", "/app", "app//x", "app..x", "x/",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
