use super::*;
use proptest::prelude::*;
use rustls::{ClientConfig, ClientConnection, ServerConnection};

fn client_config(ca_pem: &str) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certs(ca_pem).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Moves TLS records between the two in-memory endpoints until both finish the handshake;
/// returns the first error either side reports.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err(rustls::Error::General("handshake did not finish".into()))
}

fn try_connect(creds: &Credentials, trusted_ca: &str, name: &str) -> Result<(), rustls::Error> {
    let server_cfg = server_config(creds).unwrap();
    let mut server = ServerConnection::new(server_cfg).unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut client = ClientConnection::new(client_config(trusted_ca), name).unwrap();
    handshake(&mut client, &mut server)?;
    assert_eq!(client.alpn_protocol(), Some(ALPN_HTTP11));
    Ok(())
}

fn file_mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0o600
    }
}

#[test]
fn creates_then_reloads_identical_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = load_or_create(&data).unwrap();
    for f in [
        CA_CERT_FILE,
        CA_KEY_FILE,
        SERVING_CERT_FILE,
        SERVING_KEY_FILE,
        TOKEN_FILE,
    ] {
        assert!(data.join(f).is_file(), "{f} missing");
    }
    for f in [CA_KEY_FILE, SERVING_KEY_FILE, TOKEN_FILE] {
        assert_eq!(file_mode(&data.join(f)), 0o600, "{f} mode");
    }
    assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(first.key_pem.contains("PRIVATE KEY"));
    assert!(first.token.len() >= 43);

    let second = load_or_create(&data).unwrap();
    assert_eq!(first.ca_pem, second.ca_pem);
    assert_eq!(first.cert_pem, second.cert_pem);
    assert_eq!(first.key_pem, second.key_pem);
    assert_eq!(first.token, second.token);
}

#[test]
fn tokens_differ_between_data_dirs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ca = load_or_create(a.path()).unwrap();
    let cb = load_or_create(b.path()).unwrap();
    assert_ne!(ca.token, cb.token);
    assert_ne!(ca.ca_pem, cb.ca_pem);
}

#[test]
fn missing_serving_key_regenerates_only_serving_pair() {
    let dir = tempfile::tempdir().unwrap();
    let first = load_or_create(dir.path()).unwrap();
    fs::remove_file(dir.path().join(SERVING_KEY_FILE)).unwrap();
    let second = load_or_create(dir.path()).unwrap();
    assert_eq!(first.ca_pem, second.ca_pem);
    assert_eq!(first.token, second.token);
    assert_ne!(first.key_pem, second.key_pem);
    assert_ne!(first.cert_pem, second.cert_pem);
    try_connect(&second, &first.ca_pem, "127.0.0.1").unwrap();
}

#[test]
fn corrupt_ca_regenerates_ca_and_serving_cert() {
    let dir = tempfile::tempdir().unwrap();
    let first = load_or_create(dir.path()).unwrap();
    fs::write(dir.path().join(CA_KEY_FILE), "garbage").unwrap();
    let second = load_or_create(dir.path()).unwrap();
    assert_ne!(first.ca_pem, second.ca_pem);
    assert_ne!(first.cert_pem, second.cert_pem);
    assert_eq!(first.token, second.token);
    try_connect(&second, &second.ca_pem, "localhost").unwrap();
    assert!(try_connect(&second, &first.ca_pem, "localhost").is_err());
}

#[test]
fn serving_cert_from_another_ca_is_replaced() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ca = load_or_create(a.path()).unwrap();
    let cb = load_or_create(b.path()).unwrap();
    // Put b's (self-consistent) serving pair next to a's CA.
    fs::write(a.path().join(SERVING_CERT_FILE), &cb.cert_pem).unwrap();
    fs::write(a.path().join(SERVING_KEY_FILE), &cb.key_pem).unwrap();
    let reloaded = load_or_create(a.path()).unwrap();
    assert_eq!(reloaded.ca_pem, ca.ca_pem);
    assert_ne!(reloaded.cert_pem, cb.cert_pem);
    try_connect(&reloaded, &ca.ca_pem, "127.0.0.1").unwrap();
}

#[test]
fn mismatched_serving_key_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let first = load_or_create(dir.path()).unwrap();
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    fs::write(dir.path().join(SERVING_KEY_FILE), other_key).unwrap();
    let second = load_or_create(dir.path()).unwrap();
    assert_ne!(first.cert_pem, second.cert_pem);
    keys_match(&second.cert_pem, &second.key_pem).unwrap();
}

#[test]
fn short_token_is_replaced_and_trailing_newline_ignored() {
    let dir = tempfile::tempdir().unwrap();
    load_or_create(dir.path()).unwrap();
    fs::write(dir.path().join(TOKEN_FILE), "short\n").unwrap();
    let creds = load_or_create(dir.path()).unwrap();
    assert_ne!(creds.token, "short");
    assert!(token_is_valid(&creds.token));
    let custom = "a".repeat(40);
    fs::write(dir.path().join(TOKEN_FILE), format!("{custom}\n")).unwrap();
    assert_eq!(load_or_create(dir.path()).unwrap().token, custom);
}

#[test]
fn handshake_succeeds_for_all_loopback_names() {
    let dir = tempfile::tempdir().unwrap();
    let creds = load_or_create(dir.path()).unwrap();
    for name in SERVING_SANS {
        try_connect(&creds, &creds.ca_pem, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn handshake_fails_for_other_names_and_untrusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let creds = load_or_create(dir.path()).unwrap();
    let stranger = load_or_create(other.path()).unwrap();
    assert!(try_connect(&creds, &creds.ca_pem, "example.com").is_err());
    assert!(try_connect(&creds, &creds.ca_pem, "127.0.0.2").is_err());
    assert!(try_connect(&creds, &stranger.ca_pem, "127.0.0.1").is_err());
}

#[test]
fn server_config_alpn_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let creds = load_or_create(dir.path()).unwrap();
    let cfg = server_config(&creds).unwrap();
    assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    let cfg = server_config_with_alpn(&creds, &[b"h2", b"http/1.1"]).unwrap();
    assert_eq!(cfg.alpn_protocols.len(), 2);

    let mut bad = creds.clone();
    bad.key_pem = "not a key".into();
    assert!(matches!(server_config(&bad), Err(PkiError::Invalid(_))));
    let mut bad = creds.clone();
    bad.cert_pem = String::new();
    assert!(matches!(server_config(&bad), Err(PkiError::Invalid(_))));
    let mut bad = creds;
    bad.key_pem = KeyPair::generate().unwrap().serialize_pem();
    assert!(server_config(&bad).is_err());
}

#[test]
fn unwritable_data_dir_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, "x").unwrap();
    let err = load_or_create(&file.join("sub")).unwrap_err();
    assert!(matches!(err, PkiError::Io { .. }), "{err}");
}

#[test]
fn kubeconfig_has_expected_fields() {
    let dir = tempfile::tempdir().unwrap();
    let creds = load_or_create(dir.path()).unwrap();
    let yaml = kubeconfig("https://127.0.0.1:6443", &creds);
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(doc["apiVersion"], "v1");
    assert_eq!(doc["kind"], "Config");
    assert_eq!(doc["current-context"], "slipway");

    let cluster = &doc["clusters"][0];
    assert_eq!(cluster["name"], "slipway");
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:6443");
    let ca_b64 = cluster["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap();
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca_b64)
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), creds.ca_pem);

    let ctx = &doc["contexts"][0];
    assert_eq!(ctx["name"], "slipway");
    assert_eq!(ctx["context"]["cluster"], "slipway");
    assert_eq!(ctx["context"]["user"], "slipway-admin");
    assert_eq!(ctx["context"]["namespace"], "default");

    let users = doc["users"].as_sequence().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["name"], "slipway-admin");
    assert_eq!(users[0]["user"]["token"], creds.token.as_str());
}

#[test]
fn kubeconfig_quotes_odd_server_strings() {
    let creds = Credentials {
        ca_pem: "x".into(),
        cert_pem: String::new(),
        key_pem: String::new(),
        token: "tok: #1".into(),
    };
    let yaml = kubeconfig("https://[::1]:6443", &creds);
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"],
        "https://[::1]:6443"
    );
    assert_eq!(doc["users"][0]["user"]["token"], "tok: #1");
}

#[test]
fn token_matching() {
    let creds = Credentials {
        ca_pem: String::new(),
        cert_pem: String::new(),
        key_pem: String::new(),
        token: "s3cr3t-token-value".into(),
    };
    assert!(token_matches(&creds, "s3cr3t-token-value"));
    assert!(!token_matches(&creds, "s3cr3t-token-valuE"));
    assert!(!token_matches(&creds, "s3cr3t-token-valu"));
    assert!(!token_matches(&creds, ""));
    let empty = Credentials {
        token: String::new(),
        ..creds
    };
    assert!(!token_matches(&empty, ""));
}

proptest! {
    #[test]
    fn token_matches_only_itself(token in "[A-Za-z0-9_-]{1,64}", other in ".{0,64}") {
        let creds = Credentials {
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: String::new(),
            token: token.clone(),
        };
        prop_assert!(token_matches(&creds, &token));
        prop_assert_eq!(token_matches(&creds, &other), other == token);
    }
}
