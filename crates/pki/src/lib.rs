//! The API server's credentials: a self-signed CA, a serving certificate for loopback
//! (`127.0.0.1`, `::1`, `localhost`), and an admin bearer token, created at first start in
//! the data dir and reused afterwards; and the kubeconfig that points kubectl at them.

use std::path::Path;
use std::sync::Arc;

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

/// Loads the credentials from `data_dir`, creating any that are missing (files are written
/// with mode 0600 where the OS allows).
pub fn load_or_create(_data_dir: &Path) -> Result<Credentials, PkiError> {
    unimplemented!("helper fills in")
}

/// A rustls server configuration serving `creds`' certificate, offering HTTP/1.1 (and h2).
pub fn server_config(_creds: &Credentials) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    unimplemented!("helper fills in")
}

/// A kubeconfig (YAML) for `server` (e.g. `https://127.0.0.1:6443`) that trusts the CA and
/// authenticates with the token; context and cluster are named `slipway`, namespace `default`.
pub fn kubeconfig(_server: &str, _creds: &Credentials) -> String {
    unimplemented!("helper fills in")
}
