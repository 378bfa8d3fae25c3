//! A small HTTP/1.1 client over TLS: hyper's connection-level client on tokio-rustls, one
//! keep-alive connection per [`Conn`], trusting exactly one CA.

use anyhow::{Context as _, Result, anyhow};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// No single request in the benchmarks may take longer than this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Where to connect and how to authenticate.
#[derive(Clone)]
pub struct Endpoint {
    /// The server's loopback address.
    pub addr: SocketAddr,
    host: HeaderValue,
    auth: HeaderValue,
    connector: TlsConnector,
}

impl Endpoint {
    /// An endpoint trusting the PEM CA `ca_pem` and presenting `token`.
    pub fn new(addr: SocketAddr, ca_pem: &str, token: &str) -> Result<Endpoint> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.context("CA PEM")?)
                .context("CA certificate")?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Endpoint {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            auth: HeaderValue::from_str(&format!("Bearer {}", token.trim()))?,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Opens one keep-alive TLS connection.
    pub async fn connect(&self) -> Result<Conn> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let tls = self
            .connector
            .connect(ServerName::from(self.addr.ip()), tcp)
            .await
            .context("TLS handshake")?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            send,
            host: self.host.clone(),
            auth: self.auth.clone(),
        })
    }
}

/// One keep-alive connection; requests on it are sequential.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    auth: HeaderValue,
}

/// Optional request headers.
#[derive(Clone, Copy, Default)]
pub struct Headers<'a> {
    /// `Accept`.
    pub accept: Option<&'a str>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
}

impl Conn {
    /// Sends a request and returns the response with its body still streaming.
    pub async fn start(
        &mut self,
        method: Method,
        path: &str,
        headers: Headers<'_>,
        body: Bytes,
    ) -> Result<Response<Incoming>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(a) = headers.accept {
            req = req.header(ACCEPT, a);
        }
        if let Some(ct) = headers.content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(body))?;
        self.send.ready().await.context("connection closed")?;
        Ok(self.send.send_request(req).await?)
    }

    /// Sends a request and reads the whole response, within [`REQUEST_TIMEOUT`].
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: Headers<'_>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        let fut = async {
            let resp = self.start(method, path, headers, body).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("request timed out after {REQUEST_TIMEOUT:?}"))?
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes)> {
        self.call(Method::GET, path, Headers::default(), Bytes::new())
            .await
    }

    /// Sends and fails unless the status is 2xx; returns the body.
    pub async fn expect_ok(
        &mut self,
        method: Method,
        path: &str,
        headers: Headers<'_>,
        body: Bytes,
    ) -> Result<Bytes> {
        let (status, body) = self.call(method.clone(), path, headers, body).await?;
        if !status.is_success() {
            return Err(anyhow!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body)
    }
}

/// `application/json` for request bodies.
pub const JSON: Headers<'static> = Headers {
    accept: Some("application/json"),
    content_type: Some("application/json"),
};
/// A JSON merge patch.
pub const MERGE_PATCH: Headers<'static> = Headers {
    accept: Some("application/json"),
    content_type: Some("application/merge-patch+json"),
};
