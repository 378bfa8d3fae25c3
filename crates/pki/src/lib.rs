//! The API server's credentials: a self-signed CA, a serving certificate for loopback
//! (`127.0.0.1`, `::1`, `localhost`), and an admin bearer token, created at first start in
//! the data dir and reused afterwards; and the kubeconfig that points kubectl at them.
//!
//! Files in the data dir: `ca.crt`, `ca.key`, `serving.crt`, `serving.key`, `token`. Keys and
//! the token are written with mode 0600 on Unix. On load, anything missing or invalid is
//! regenerated; a regenerated CA always brings a new serving certificate with it.
//!
//! All cryptography uses rustls' `ring` provider explicitly; no process-wide default provider
//! is installed or required.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// Why credentials could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file in the data dir failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A stored certificate or key could not be parsed, or generation failed.
    #[error("{0}")]
    Invalid(String),
}

/// Loaded credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The serving certificate (PEM).
    pub cert_pem: String,
    /// The serving key (PEM).
    pub key_pem: String,
    /// The admin bearer token.
    pub token: String,
}

/// File name of the CA certificate in the data dir.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key in the data dir.
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of the serving certificate in the data dir.
pub const SERVING_CERT_FILE: &str = "serving.crt";
/// File name of the serving private key in the data dir.
pub const SERVING_KEY_FILE: &str = "serving.key";
/// File name of the admin bearer token in the data dir.
pub const TOKEN_FILE: &str = "token";

/// The names the serving certificate is valid for.
pub const SERVING_SANS: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// The ALPN protocol [`server_config`] offers.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

const CA_VALIDITY_DAYS: i64 = 3650;
const SERVING_VALIDITY_DAYS: i64 = 730;
/// A certificate closer than this to its expiry is treated as invalid and reissued.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
const TOKEN_BYTES: usize = 32;
const MIN_TOKEN_LEN: usize = 32;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(what: &str, err: impl std::fmt::Display) -> PkiError {
    PkiError::Invalid(format!("{what}: {err}"))
}

/// Loads the credentials from `data_dir`, creating any that are missing (files are written
/// with mode 0600 where the OS allows).
///
/// Invalid files (unparseable, key not matching the certificate, expired or expiring within
/// 30 days, serving certificate not issued by the CA for all loopback names) are replaced.
/// Read errors other than "not found" are reported, not papered over.
pub fn load_or_create(data_dir: &Path) -> Result<Credentials, PkiError> {
    fs::create_dir_all(data_dir).map_err(|source| PkiError::Io {
        path: data_dir.display().to_string(),
        source,
    })?;
    let ca_cert_path = data_dir.join(CA_CERT_FILE);
    let ca_key_path = data_dir.join(CA_KEY_FILE);
    let cert_path = data_dir.join(SERVING_CERT_FILE);
    let key_path = data_dir.join(SERVING_KEY_FILE);
    let token_path = data_dir.join(TOKEN_FILE);

    let now = SystemTime::now();
    let loaded_ca = match (read_optional(&ca_cert_path)?, read_optional(&ca_key_path)?) {
        (Some(cert), Some(key)) if ca_is_valid(&cert, &key, now) => Some((cert, key)),
        _ => None,
    };
    let ca_fresh = loaded_ca.is_none();
    let (ca_pem, ca_key_pem) = match loaded_ca {
        Some(ca) => ca,
        None => {
            let (cert, key) = generate_ca()?;
            write_file(&ca_key_path, &key, 0o600)?;
            write_file(&ca_cert_path, &cert, 0o644)?;
            (cert, key)
        }
    };

    let loaded_serving = if ca_fresh {
        None
    } else {
        match (read_optional(&cert_path)?, read_optional(&key_path)?) {
            (Some(cert), Some(key)) if serving_is_valid(&cert, &key, &ca_pem, now) => {
                Some((cert, key))
            }
            _ => None,
        }
    };
    let (cert_pem, key_pem) = match loaded_serving {
        Some(s) => s,
        None => {
            let (cert, key) = generate_serving(&ca_pem, &ca_key_pem)?;
            write_file(&key_path, &key, 0o600)?;
            write_file(&cert_path, &cert, 0o644)?;
            (cert, key)
        }
    };

    let token = match read_optional(&token_path)?.map(|t| t.trim().to_string()) {
        Some(t) if token_is_valid(&t) => t,
        _ => {
            let t = generate_token();
            write_file(&token_path, &format!("{t}\n"), 0o600)?;
            t
        }
    };

    Ok(Credentials {
        ca_pem,
        cert_pem,
        key_pem,
        token,
    })
}

/// A rustls server configuration serving `creds`' certificate, offering HTTP/1.1 only via
/// ALPN (kubectl works over HTTP/1.1). Use [`server_config_with_alpn`] to offer others.
pub fn server_config(creds: &Credentials) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    server_config_with_alpn(creds, &[ALPN_HTTP11])
}

/// Like [`server_config`], offering exactly the ALPN protocols in `alpn`, in preference
/// order (e.g. `[b"h2", b"http/1.1"]` for a server that speaks both).
pub fn server_config_with_alpn(
    creds: &Credentials,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let certs = parse_certs(&creds.cert_pem)?;
    let key = parse_key(&creds.key_pem)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS configuration", e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("serving certificate", e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A kubeconfig (YAML) for `server` (e.g. `https://127.0.0.1:6443`) that trusts the CA and
/// authenticates with the token; context and cluster are named `slipway`, namespace `default`,
/// user `slipway-admin`.
pub fn kubeconfig(server: &str, creds: &Credentials) -> String {
    let ca_data = base64::engine::general_purpose::STANDARD.encode(creds.ca_pem.as_bytes());
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: slipway\n  \
           cluster:\n    \
             certificate-authority-data: {ca_data}\n    \
             server: {server}\n\
         contexts:\n\
         - name: slipway\n  \
           context:\n    \
             cluster: slipway\n    \
             namespace: default\n    \
             user: slipway-admin\n\
         current-context: slipway\n\
         preferences: {{}}\n\
         users:\n\
         - name: slipway-admin\n  \
           user:\n    \
             token: {token}\n",
        server = yaml_string(server),
        token = yaml_string(&creds.token),
    )
}

/// Whether `presented` equals the admin token, compared in constant time (for equal
/// lengths). An empty token never matches.
pub fn token_matches(creds: &Credentials, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    !creds.token.is_empty() && bool::from(creds.token.as_bytes().ct_eq(presented.as_bytes()))
}

/// A YAML double-quoted scalar (JSON string syntax is a subset of it).
fn yaml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read(path) {
        // Non-UTF-8 content is invalid, so treated like garbage and regenerated.
        Ok(bytes) => Ok(Some(String::from_utf8(bytes).unwrap_or_default())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes `contents` to `path` atomically (temp file + rename) with the given Unix mode.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let io_err = |p: &Path| {
        let p = p.display().to_string();
        move |source| PkiError::Io { path: p, source }
    };
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let _ = fs::remove_file(&tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = opts.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate PEM", e))?;
    if certs.is_empty() {
        return Err(PkiError::Invalid("no certificate in PEM".into()));
    }
    Ok(certs)
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| invalid("private key PEM", e))
}

/// Checks that `cert_pem`'s first certificate belongs to `key_pem`.
fn keys_match(cert_pem: &str, key_pem: &str) -> Result<(), PkiError> {
    let certs = parse_certs(cert_pem)?;
    let key = parse_key(key_pem)?;
    rustls::sign::CertifiedKey::from_der(certs, key, &provider())
        .map(|_| ())
        .map_err(|e| invalid("certificate and key", e))
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ca_is_valid(cert_pem: &str, key_pem: &str, now: SystemTime) -> bool {
    let check = || -> Result<bool, PkiError> {
        keys_match(cert_pem, key_pem)?;
        let der = parse_certs(cert_pem)?.remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| invalid("CA certificate", e))?;
        let validity = cert.validity();
        let now_s = unix_secs(now);
        let renew_s = unix_secs(now + RENEW_BEFORE);
        Ok(cert.is_ca()
            && validity.not_before.timestamp() <= now_s
            && validity.not_after.timestamp() > renew_s)
    };
    check().unwrap_or(false)
}

fn serving_is_valid(cert_pem: &str, key_pem: &str, ca_pem: &str, now: SystemTime) -> bool {
    let check = || -> Result<bool, PkiError> {
        keys_match(cert_pem, key_pem)?;
        let verifier = verifier_for(ca_pem)?;
        let certs = parse_certs(cert_pem)?;
        let (leaf, rest) = certs
            .split_first()
            .ok_or_else(|| invalid("serving", "empty"))?;
        for at in [now, now + RENEW_BEFORE] {
            let at = UnixTime::since_unix_epoch(
                at.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO),
            );
            for san in SERVING_SANS {
                let name = ServerName::try_from(san).map_err(|e| invalid("SAN", e))?;
                if verifier
                    .verify_server_cert(leaf, rest, &name, &[], at)
                    .is_err()
                {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    check().unwrap_or(false)
}

/// A webpki server verifier trusting only the CA in `ca_pem`.
fn verifier_for(ca_pem: &str) -> Result<Arc<WebPkiServerVerifier>, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certs(ca_pem)? {
        roots.add(cert).map_err(|e| invalid("CA certificate", e))?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| invalid("CA certificate", e))
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // keep the DER integer positive
    bytes[0] |= 0x01; // and of fixed length
    SerialNumber::from_slice(&bytes)
}

fn base_params(common_name: &str, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "slipway");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
    params.serial_number = Some(random_serial());
    params
}

/// Generates a CA; returns `(cert_pem, key_pem)`.
fn generate_ca() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(|e| invalid("generating CA key", e))?;
    let mut params = base_params("slipway-ca", CA_VALIDITY_DAYS);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| invalid("generating CA certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Generates a serving certificate for [`SERVING_SANS`] signed by the CA; returns
/// `(cert_pem, key_pem)`.
fn generate_serving(ca_pem: &str, ca_key_pem: &str) -> Result<(String, String), PkiError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|e| invalid("CA key", e))?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_pem, ca_key).map_err(|e| invalid("CA certificate", e))?;
    let key = KeyPair::generate().map_err(|e| invalid("generating serving key", e))?;
    let mut params = base_params("slipway-apiserver", SERVING_VALIDITY_DAYS);
    params.subject_alt_names = CertificateParams::new(
        SERVING_SANS
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )
    .map_err(|e| invalid("serving SANs", e))?
    .subject_alt_names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| invalid("signing serving certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// 32 random bytes, base64url without padding (43 characters).
fn generate_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn token_is_valid(token: &str) -> bool {
    token.len() >= MIN_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests;
