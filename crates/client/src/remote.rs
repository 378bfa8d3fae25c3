//! A [`Client`] over HTTPS to a Kubernetes API server (a `slipway serve`, or a real cluster),
//! for processes outside the API server, such as the service proxy.
//!
//! The connection comes from a kubeconfig: the current context's cluster `server` URL and CA,
//! and its user's bearer token. TLS trusts only that CA (no system roots) and verifies the
//! server's certificate against the host in the URL. Requests share one pooled HTTP/1.1
//! client; non-watch calls time out after 30 s, connects after 2 s.
//!
//! Errors are [`ApiError`]s as for the in-process client: non-2xx responses keep the code,
//! reason, message and details of the server's `Status`; a server that cannot be reached is
//! a 503 naming its URL, a request that times out a 504.
//!
//! Watches read the newline-delimited JSON stream as it arrives. `BOOKMARK`s are skipped; an
//! `ERROR` event, a broken connection or the end of the stream closes the channel, after
//! which the consumer (an [`Informer`](crate::Informer)) lists again. Servers report a too-old
//! resourceVersion as a `200` whose first event is an `ERROR` with a 410 `Status`; that case
//! is returned as `Err` with code 410 from [`Client::watch`] itself.

use crate::{Client, DeleteParams, PatchType, WatchEvent, WatchStream};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use slipway_core::{ApiError, ResourceInfo, StatusCause, meta};
use std::collections::VecDeque;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

/// How long a TCP connect plus TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a non-watch request (sending it and reading the whole response) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Watches ask the server to end them after a random time in `MIN..MIN+SPREAD` seconds, so
/// many watchers do not all relist at once.
const WATCH_TIMEOUT_MIN_SECS: u64 = 300;
const WATCH_TIMEOUT_SPREAD_SECS: u64 = 300;
/// A watch the server has not ended this long after its `timeoutSeconds` is treated as dead
/// (e.g. a half-open connection) and closed on our side.
const WATCH_GRACE: Duration = Duration::from_secs(30);
/// How long `watch` waits for the first bytes of a streamed response, to report an `ERROR`
/// sent as the first event (410 Expired) as an `Err`. A quiet stream just starts later.
const WATCH_FIRST_EVENT_WAIT: Duration = Duration::from_millis(200);
/// Events buffered between the connection and the consumer.
const WATCH_CHANNEL: usize = 1024;
/// The longest watch event accepted; a longer line ends the watch.
const MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a kubeconfig could not be turned into a [`RemoteClient`].
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A file (the kubeconfig, a CA file or a token file) could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The kubeconfig is not YAML of the expected shape.
    #[error("invalid kubeconfig: {0}")]
    Parse(String),
    /// `current-context` is not set.
    #[error("kubeconfig has no current-context")]
    NoCurrentContext,
    /// The current context names no context in `contexts`.
    #[error("kubeconfig context {0:?} not found")]
    ContextNotFound(String),
    /// The context's cluster is not in `clusters`.
    #[error("kubeconfig cluster {0:?} not found")]
    ClusterNotFound(String),
    /// The context's user is not in `users`.
    #[error("kubeconfig user {0:?} not found")]
    UserNotFound(String),
    /// The cluster has no `server`.
    #[error("kubeconfig cluster {0:?} has no server")]
    MissingServer(String),
    /// The server URL is not an `https://host[:port][/path]` URL.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidServer {
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cluster has neither `certificate-authority-data` nor `certificate-authority`.
    #[error("kubeconfig cluster {0:?} has no certificate-authority-data or certificate-authority")]
    MissingCa(String),
    /// The CA is not valid base64, PEM, or an X.509 certificate.
    #[error("invalid certificate authority: {0}")]
    InvalidCa(String),
    /// The user authenticates in a way this client does not implement.
    #[error("unsupported kubeconfig authentication: {0}")]
    Unsupported(String),
    /// The TLS client could not be configured.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// What a kubeconfig's current context says about reaching the API.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    server: String,
    ca_pem: Vec<u8>,
    token: Option<String>,
}

/// A [`Client`] talking HTTPS to an API server. Cloning is cheap: clones share one
/// connection pool.
#[derive(Clone)]
pub struct RemoteClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The server URL without a trailing `/`, e.g. `https://127.0.0.1:6443`.
    server: String,
    /// `Bearer <token>`, if any.
    authorization: Option<HeaderValue>,
    user_agent: HeaderValue,
    http: hyper_util::client::legacy::Client<TlsConnector, Full<Bytes>>,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient")
            .field("server", &self.inner.server)
            .field(
                "token",
                &self.inner.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl RemoteClient {
    /// A client for the current context of the kubeconfig at `path`: its cluster's `server`
    /// and CA (`certificate-authority-data`, or a `certificate-authority` file, relative to
    /// the kubeconfig's directory), and its user's `token` (or `tokenFile`).
    pub fn from_kubeconfig(path: &Path) -> Result<RemoteClient, RemoteError> {
        let text = std::fs::read_to_string(path).map_err(|source| RemoteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let ep = parse_kubeconfig(&text, base)?;
        RemoteClient::new(&ep.server, &ep.ca_pem, ep.token)
    }

    /// A client for `server` (`https://host[:port][/path]`) trusting only the CA
    /// certificate(s) in `ca_pem`, authenticating with `token` as a bearer token.
    pub fn new(
        server: &str,
        ca_pem: &[u8],
        token: Option<String>,
    ) -> Result<RemoteClient, RemoteError> {
        let server = server.trim_end_matches('/').to_string();
        let host = server_host(&server)?;
        let server_name =
            ServerName::try_from(host.clone()).map_err(|e| RemoteError::InvalidServer {
                url: server.clone(),
                reason: format!("host {host:?} is not a valid TLS server name: {e}"),
            })?;
        let mut roots = rustls::RootCertStore::empty();
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| RemoteError::InvalidCa(format!("PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| RemoteError::InvalidCa(e.to_string()))?;
            found = true;
        }
        if !found {
            return Err(RemoteError::InvalidCa("no certificate in PEM".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| RemoteError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = TlsConnector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        };
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        let authorization = match token.filter(|t| !t.is_empty()) {
            Some(t) => Some(HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                RemoteError::Parse("the token contains characters not allowed in a header".into())
            })?),
            None => None,
        };
        Ok(RemoteClient {
            inner: Arc::new(Inner {
                server,
                authorization,
                user_agent: HeaderValue::from_static(concat!(
                    "slipway-remote-client/",
                    env!("CARGO_PKG_VERSION")
                )),
                http,
            }),
        })
    }

    /// This client with another `User-Agent` (the API server derives the default field
    /// manager of writes from it). Shares the connection pool.
    pub fn with_user_agent(&self, user_agent: &str) -> Result<RemoteClient, RemoteError> {
        let ua = HeaderValue::from_str(user_agent)
            .map_err(|_| RemoteError::Parse(format!("invalid user agent {user_agent:?}")))?;
        Ok(RemoteClient {
            inner: Arc::new(Inner {
                server: self.inner.server.clone(),
                authorization: self.inner.authorization.clone(),
                user_agent: ua,
                http: self.inner.http.clone(),
            }),
        })
    }

    /// The server URL (without a trailing `/`).
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let uri = format!("{}{path_and_query}", self.inner.server);
        let mut builder = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, self.inner.user_agent.clone());
        if let Some(auth) = &self.inner.authorization {
            builder = builder.header(header::AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(header::CONTENT_TYPE, content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(body)
            .map_err(|e| ApiError::bad_request(format!("invalid request URL {uri:?}: {e}")))
    }

    fn unreachable(&self, e: &(dyn StdError + 'static)) -> ApiError {
        ApiError::unavailable(format!(
            "cannot reach the API server at {}: {}",
            self.inner.server,
            error_chain(e)
        ))
    }

    fn timed_out(&self) -> ApiError {
        ApiError::new(
            504,
            "Timeout",
            format!(
                "the API server at {} did not answer within {}s",
                self.inner.server,
                REQUEST_TIMEOUT.as_secs()
            ),
        )
    }

    /// Sends a request and reads the whole response, within [`REQUEST_TIMEOUT`].
    async fn send(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), ApiError> {
        let exchange = async {
            let resp = self
                .inner
                .http
                .request(req)
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.unreachable(&e))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.timed_out())?
    }

    /// A request whose successful response is a JSON object.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(StatusCode, Value), ApiError> {
        let req = self.request(method, path_and_query, body)?;
        let (status, bytes) = self.send(req).await?;
        if !status.is_success() {
            return Err(status_error(status.as_u16(), &bytes));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::internal(format!(
                "invalid JSON in the response of {}: {e}",
                self.inner.server
            ))
        })?;
        Ok((status, value))
    }

    async fn write(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(self
            .call(method, path, Some((content_type, bytes)))
            .await?
            .1)
    }

    /// The path of the object `obj` names (namespace and name from its metadata).
    fn object_path_of(
        info: &'static ResourceInfo,
        obj: &Value,
        status: bool,
    ) -> Result<String, ApiError> {
        let name = meta::name(obj);
        if name.is_empty() {
            return Err(ApiError::bad_request("metadata.name is required"));
        }
        let ns = namespace_of(info, obj)?;
        let mut path = object_path(info, ns, name);
        if status {
            path.push_str("/status");
        }
        Ok(path)
    }
}

/// The namespace an object is written to: its `metadata.namespace` for namespaced resources.
fn namespace_of<'a>(info: &ResourceInfo, obj: &'a Value) -> Result<Option<&'a str>, ApiError> {
    if !info.namespaced {
        return Ok(None);
    }
    match meta::namespace(obj) {
        "" => Err(ApiError::bad_request(format!(
            "a {} needs metadata.namespace",
            info.kind
        ))),
        ns => Ok(Some(ns)),
    }
}

impl Client for RemoteClient {
    async fn get(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Arc<Value>>, ApiError> {
        let path = object_path(info, namespace, name);
        match self.call(Method::GET, &path, None).await {
            Ok((_, mut obj)) => {
                fill_type(info, &mut obj);
                Ok(Some(Arc::new(obj)))
            }
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<(Vec<Arc<Value>>, String), ApiError> {
        let path = collection_path(info, namespace);
        let (_, mut list) = self.call(Method::GET, &path, None).await?;
        let rv = meta::resource_version(&list).to_string();
        let items = match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                return Err(ApiError::internal(format!(
                    "the list of {} from {} has no items array",
                    info.plural, self.inner.server
                )));
            }
        };
        let items = items
            .into_iter()
            .map(|mut obj| {
                fill_type(info, &mut obj);
                Arc::new(obj)
            })
            .collect();
        Ok((items, rv))
    }

    async fn watch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        resource_version: &str,
    ) -> Result<WatchStream, ApiError> {
        let timeout_secs = watch_timeout_seconds();
        let mut path = format!(
            "{}?watch=1&allowWatchBookmarks=true&timeoutSeconds={timeout_secs}",
            collection_path(info, namespace)
        );
        if !resource_version.is_empty() {
            path.push_str("&resourceVersion=");
            path.push_str(&encode_component(resource_version));
        }
        let req = self.request(Method::GET, &path, None)?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.inner.http.request(req))
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.into_body().collect())
                .await
                .map_err(|_| self.timed_out())?
                .map_err(|e| self.unreachable(&e))?
                .to_bytes();
            return Err(status_error(status.as_u16(), &body));
        }
        // A response with a length is not a stream but a complete answer (an ERROR event, as
        // slipway sends for 410): read it all. A stream is only peeked at briefly.
        let complete = resp.headers().contains_key(header::CONTENT_LENGTH);
        let mut body = resp.into_body();
        let mut splitter = LineSplitter::default();
        let mut first: VecDeque<Line> = VecDeque::new();
        let mut ended = false;
        let wait = if complete {
            REQUEST_TIMEOUT
        } else {
            WATCH_FIRST_EVENT_WAIT
        };
        let peek_until = Instant::now() + wait;
        while first.is_empty() && !ended {
            match tokio::time::timeout_at(peek_until, body.frame()).await {
                Err(_) => break,
                Ok(None) => {
                    ended = true;
                    first.extend(splitter.finish().map(|l| parse_line(info, &l)));
                }
                Ok(Some(Err(e))) => return Err(self.unreachable(&e)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        match splitter.push(&data) {
                            Ok(lines) => first.extend(lines.iter().map(|l| parse_line(info, l))),
                            Err(e) => return Err(ApiError::internal(e.to_string())),
                        }
                    }
                }
            }
        }
        if let Some(Line::Error(e)) = first.iter().find(|l| !matches!(l, Line::Bookmark)) {
            return Err(e.clone());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_CHANNEL);
        let stream = StreamState {
            info,
            server: self.inner.server.clone(),
            tx,
        };
        tokio::spawn(async move {
            for line in first {
                if !stream.deliver(line).await {
                    return;
                }
            }
            if !ended {
                let limit = Duration::from_secs(timeout_secs) + WATCH_GRACE;
                stream.follow(body, splitter, limit).await;
            }
        });
        Ok(rx)
    }

    async fn create(&self, info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        let ns = namespace_of(info, &obj)?;
        let path = collection_path(info, ns);
        self.write(Method::POST, &path, "application/json", &obj)
            .await
    }

    async fn replace(&self, info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        let path = Self::object_path_of(info, &obj, false)?;
        self.write(Method::PUT, &path, "application/json", &obj)
            .await
    }

    async fn replace_status(
        &self,
        info: &'static ResourceInfo,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let path = Self::object_path_of(info, &obj, true)?;
        self.write(Method::PUT, &path, "application/json", &obj)
            .await
    }

    async fn patch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let path = object_path(info, namespace, name);
        self.write(Method::PATCH, &path, patch_content_type(kind), &patch)
            .await
    }

    async fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        params: DeleteParams,
    ) -> Result<Option<Value>, ApiError> {
        let path = object_path(info, namespace, name);
        let body = serde_json::to_vec(&delete_options(&params))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let (status, obj) = self
            .call(Method::DELETE, &path, Some(("application/json", body)))
            .await?;
        Ok(deletion_outcome(status, obj))
    }

    async fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> Result<(), ApiError> {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/binding",
            encode_component(namespace),
            encode_component(name)
        );
        let binding = binding_body(namespace, name, uid, node);
        self.write(Method::POST, &path, "application/json", &binding)
            .await
            .map(|_| ())
    }

    async fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        tail_lines: usize,
    ) -> Result<String, ApiError> {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/log?container={}&tailLines={tail_lines}",
            encode_component(namespace),
            encode_component(pod),
            encode_component(container)
        );
        let req = self.request(Method::GET, &path, None)?;
        let (status, bytes) = self.send(req).await?;
        if !status.is_success() {
            return Err(status_error(status.as_u16(), &bytes));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The `Binding` of the pod `namespace/name` (of `uid`, when not empty) to `node`.
pub fn binding_body(namespace: &str, name: &str, uid: &str, node: &str) -> Value {
    let mut metadata = json!({"name": name, "namespace": namespace});
    if !uid.is_empty() {
        metadata["uid"] = json!(uid);
    }
    json!({"apiVersion": "v1", "kind": "Binding", "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
}

/// The `Content-Type` of a patch.
fn patch_content_type(kind: PatchType) -> &'static str {
    match kind {
        PatchType::Merge => "application/merge-patch+json",
        PatchType::Strategic => "application/strategic-merge-patch+json",
        PatchType::Json => "application/json-patch+json",
    }
}

/// The `DeleteOptions` body of a delete.
fn delete_options(params: &DeleteParams) -> Value {
    let mut opts = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
    if let Some(p) = &params.propagation_policy {
        opts["propagationPolicy"] = json!(p);
    }
    if let Some(g) = params.grace_period_seconds {
        opts["gracePeriodSeconds"] = json!(g);
    }
    let mut pre = serde_json::Map::new();
    if let Some(uid) = &params.precondition_uid {
        pre.insert("uid".into(), json!(uid));
    }
    if let Some(rv) = &params.precondition_resource_version {
        pre.insert("resourceVersion".into(), json!(rv));
    }
    if !pre.is_empty() {
        opts["preconditions"] = Value::Object(pre);
    }
    opts
}

/// What a successful DELETE response means: a `Status` says the object is gone; an object
/// is still there if the server accepted the deletion for later (202), or it carries a
/// deletion timestamp with finalizers or a grace period left. (Kubernetes returns the last
/// state of some objects deleted at once, which has neither.)
fn deletion_outcome(status: StatusCode, obj: Value) -> Option<Value> {
    if meta::kind(&obj) == "Status" {
        return None;
    }
    let pending = status == StatusCode::ACCEPTED
        || (meta::deletion_timestamp(&obj).is_some()
            && (!meta::finalizers(&obj).is_empty()
                || obj["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .is_some_and(|g| g > 0)));
    pending.then_some(obj)
}

/// Sets `apiVersion` and `kind` where the server left them out (list items).
fn fill_type(info: &ResourceInfo, obj: &mut Value) {
    if let Value::Object(map) = obj {
        if map
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            map.insert("apiVersion".into(), json!(info.api_version()));
        }
        if map
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            map.insert("kind".into(), json!(info.kind));
        }
    }
}

/// `/api/v1` or `/apis/<group>/<version>`.
fn group_root(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    }
}

/// The collection path, in `namespace` for namespaced resources (all namespaces if `None`).
fn collection_path(info: &ResourceInfo, namespace: Option<&str>) -> String {
    let root = group_root(info);
    match namespace.filter(|ns| info.namespaced && !ns.is_empty()) {
        Some(ns) => format!("{root}/namespaces/{}/{}", encode_component(ns), info.plural),
        None => format!("{root}/{}", info.plural),
    }
}

fn object_path(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    format!(
        "{}/{}",
        collection_path(info, namespace),
        encode_component(name)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A random watch timeout in `300..600` seconds.
fn watch_timeout_seconds() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    WATCH_TIMEOUT_MIN_SECS + random % WATCH_TIMEOUT_SPREAD_SECS
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The `reason` Kubernetes uses for an HTTP code, for responses without a `Status`.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

/// The [`ApiError`] of a non-2xx response: from its `Status` body, or from the code alone.
fn status_error(code: u16, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if meta::kind(&v) == "Status" || v.get("status").is_some_and(Value::is_string) => {
            error_from_status(code, &v)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("the server responded with HTTP {code}")
            } else {
                let snippet: String = text.chars().take(512).collect();
                format!("the server responded with HTTP {code}: {snippet}")
            };
            ApiError::new(code, reason_for(code), message)
        }
    }
}

/// An [`ApiError`] from a Kubernetes `Status` object; `fallback_code` when it has no code.
fn error_from_status(fallback_code: u16, status: &Value) -> ApiError {
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c != 0)
        .unwrap_or(fallback_code);
    let reason = status["reason"]
        .as_str()
        .unwrap_or_else(|| reason_for(code));
    let message = status["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server responded with HTTP {code}"));
    let mut err = ApiError::new(code, reason, message);
    let details = &status["details"];
    let text = |f: &str| details[f].as_str().map(str::to_string);
    err.name = text("name");
    err.kind = text("kind");
    // Kubernetes leaves out the core group's empty name.
    err.group =
        text("group").or_else(|| (err.name.is_some() || err.kind.is_some()).then(String::new));
    err.retry_after_seconds = details["retryAfterSeconds"]
        .as_u64()
        .and_then(|s| u32::try_from(s).ok());
    err.causes = details["causes"]
        .as_array()
        .map(|causes| {
            causes
                .iter()
                .map(|c| StatusCause {
                    reason: c["reason"].as_str().unwrap_or_default().to_string(),
                    message: c["message"].as_str().unwrap_or_default().to_string(),
                    field: c["field"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    err
}

/// One line of a watch stream, parsed.
#[derive(Debug)]
enum Line {
    Event(WatchEvent),
    Bookmark,
    /// An `ERROR` event, or a line that is not a watch event.
    Error(ApiError),
}

fn parse_line(info: &ResourceInfo, line: &[u8]) -> Line {
    let mut v: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return Line::Error(ApiError::internal(format!("invalid watch event: {e}"))),
    };
    let mut object = v["object"].take();
    let kind = v["type"].as_str().unwrap_or_default();
    if kind == "ERROR" {
        return Line::Error(error_from_status(500, &object));
    }
    if kind == "BOOKMARK" {
        return Line::Bookmark;
    }
    if !object.is_object() {
        return Line::Error(ApiError::internal(format!(
            "watch event {kind:?} without an object"
        )));
    }
    fill_type(info, &mut object);
    let object = Arc::new(object);
    Line::Event(match kind {
        "ADDED" => WatchEvent::Added(object),
        "MODIFIED" => WatchEvent::Modified(object),
        "DELETED" => WatchEvent::Deleted(object),
        other => {
            return Line::Error(ApiError::internal(format!(
                "unknown watch event type {other:?}"
            )));
        }
    })
}

/// The receiving end of a watch: parses lines and forwards events.
struct StreamState {
    info: &'static ResourceInfo,
    server: String,
    tx: tokio::sync::mpsc::Sender<WatchEvent>,
}

impl StreamState {
    /// Forwards one line; `false` when the watch must end (an error, or nobody listening).
    async fn deliver(&self, line: Line) -> bool {
        match line {
            Line::Event(ev) => self.tx.send(ev).await.is_ok(),
            Line::Bookmark => true,
            Line::Error(e) => {
                tracing::debug!(resource = self.info.plural, server = %self.server, error = %e, "watch ended by an error event");
                false
            }
        }
    }

    /// Reads the rest of the stream until it ends, fails, outlives `limit`, or the consumer
    /// goes away.
    async fn follow(&self, mut body: Incoming, mut splitter: LineSplitter, limit: Duration) {
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = self.tx.closed() => return,
                () = &mut deadline => {
                    tracing::debug!(resource = self.info.plural, server = %self.server, "watch outlived its timeout; closing it");
                    return;
                }
            };
            match frame {
                None => {
                    if let Some(line) = splitter.finish() {
                        self.deliver(parse_line(self.info, &line)).await;
                    }
                    return;
                }
                Some(Err(e)) => {
                    tracing::debug!(resource = self.info.plural, server = %self.server, error = %error_chain(&e), "watch connection failed");
                    return;
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let lines = match splitter.push(&data) {
                        Ok(lines) => lines,
                        Err(e) => {
                            tracing::warn!(resource = self.info.plural, server = %self.server, error = %e, "watch ended");
                            return;
                        }
                    };
                    for line in lines {
                        if !self.deliver(parse_line(self.info, &line)).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// A watch event longer than [`MAX_EVENT_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("watch event longer than {0} bytes")]
struct LineTooLong(usize);

/// Splits a byte stream into newline-terminated lines, whatever the chunking: a line may
/// span chunks, and a chunk may hold several lines. Blank lines are skipped.
#[derive(Debug)]
struct LineSplitter {
    partial: Vec<u8>,
    max: usize,
}

impl Default for LineSplitter {
    fn default() -> LineSplitter {
        LineSplitter {
            partial: Vec::new(),
            max: MAX_EVENT_BYTES,
        }
    }
}

impl LineSplitter {
    /// The lines completed by `chunk`.
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let line = if self.partial.is_empty() {
                rest[..pos].to_vec()
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..pos]);
                line
            };
            if line.len() > self.max {
                return Err(LineTooLong(self.max));
            }
            if !line.trim_ascii().is_empty() {
                lines.push(line);
            }
            rest = &rest[pos + 1..];
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > self.max {
            return Err(LineTooLong(self.max));
        }
        Ok(lines)
    }

    /// The last line, if the stream ended without a newline after it.
    fn finish(&mut self) -> Option<Vec<u8>> {
        let last = std::mem::take(&mut self.partial);
        (!last.trim_ascii().is_empty()).then_some(last)
    }
}

/// The host of an `https://` server URL, without IPv6 brackets.
fn server_host(server: &str) -> Result<String, RemoteError> {
    let bad = |reason: &str| RemoteError::InvalidServer {
        url: server.to_string(),
        reason: reason.to_string(),
    };
    let uri: http::Uri = server.parse().map_err(|e| bad(&format!("{e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("only https:// servers are supported"));
    }
    if uri.query().is_some() {
        return Err(bad("a server URL has no query"));
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

/// The entry named `name` in the kubeconfig list `list` (`clusters`, `contexts`, `users`),
/// and its `field` (`cluster`, `context`, `user`).
fn named<'a>(doc: &'a Value, list: &str, field: &str, name: &str) -> Option<&'a Value> {
    doc[list]
        .as_array()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .map(|e| &e[field])
}

fn read_file(path: &Path) -> Result<Vec<u8>, RemoteError> {
    std::fs::read(path).map_err(|source| RemoteError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the current context of a kubeconfig; relative file paths are resolved against
/// `base_dir` (the kubeconfig's directory), as kubectl does.
fn parse_kubeconfig(text: &str, base_dir: &Path) -> Result<Endpoint, RemoteError> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| RemoteError::Parse(e.to_string()))?;
    if !doc.is_object() {
        return Err(RemoteError::Parse("not a mapping".into()));
    }
    let current = doc["current-context"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or(RemoteError::NoCurrentContext)?;
    let context = named(&doc, "contexts", "context", current)
        .ok_or_else(|| RemoteError::ContextNotFound(current.to_string()))?;
    let cluster_name = context["cluster"].as_str().unwrap_or_default();
    let cluster = named(&doc, "clusters", "cluster", cluster_name)
        .ok_or_else(|| RemoteError::ClusterNotFound(cluster_name.to_string()))?;
    let server = cluster["server"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RemoteError::MissingServer(cluster_name.to_string()))?;
    server_host(server)?;
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    let ca_pem = match (
        cluster["certificate-authority-data"]
            .as_str()
            .filter(|s| !s.is_empty()),
        cluster["certificate-authority"]
            .as_str()
            .filter(|s| !s.is_empty()),
    ) {
        (Some(data), _) => {
            let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| RemoteError::InvalidCa(format!("certificate-authority-data: {e}")))?
        }
        (None, Some(file)) => read_file(&resolve(file))?,
        (None, None) => return Err(RemoteError::MissingCa(cluster_name.to_string())),
    };
    let user_name = context["user"].as_str().unwrap_or_default();
    let user = match user_name {
        "" => &Value::Null,
        name => named(&doc, "users", "user", name)
            .ok_or_else(|| RemoteError::UserNotFound(name.to_string()))?,
    };
    let token = match (
        user["token"].as_str().filter(|t| !t.is_empty()),
        user["tokenFile"].as_str().filter(|t| !t.is_empty()),
    ) {
        (Some(t), _) => Some(t.trim().to_string()),
        (None, Some(file)) => {
            let raw = read_file(&resolve(file))?;
            Some(String::from_utf8_lossy(&raw).trim().to_string())
        }
        (None, None) => {
            for unsupported in [
                "client-certificate-data",
                "client-certificate",
                "exec",
                "auth-provider",
                "username",
            ] {
                if !user[unsupported].is_null() {
                    return Err(RemoteError::Unsupported(format!(
                        "user {user_name:?} uses {unsupported}; only bearer tokens are supported"
                    )));
                }
            }
            None
        }
    };
    Ok(Endpoint {
        server: server.to_string(),
        ca_pem,
        token,
    })
}

/// Connects TCP, then TLS verified against the server URL's host.
#[derive(Clone)]
struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TlsConnection, io::Error>> + Send>>;

impl tower_service::Service<http::Uri> for TlsConnector {
    type Response = TlsConnection;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in URL"))?;
            let port = uri.port_u16().unwrap_or(443);
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                let _ = tcp.set_nodelay(true);
                tls.connect(server_name, tcp).await
            };
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "connecting to {host}:{port} took longer than {}s",
                            CONNECT_TIMEOUT.as_secs()
                        ),
                    )
                })??;
            Ok(TlsConnection(TokioIo::new(stream)))
        })
    }
}

/// A TLS connection as hyper's pooled client wants it.
struct TlsConnection(TokioIo<TlsStream<TcpStream>>);

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::resources::lookup;

    /// A self-signed CA certificate, only ever parsed (never used to verify anything).
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBhjCCAS2gAwIBAgIUOyp+oB0VgPbt2so32gg68FkgHCAwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOcmVtb3RlLXRlc3QtY2EwHhcNMjYxMTI3MTk0MzI4WhcNMzYx
MTI0MTk0MzI4WjAZMRcwFQYDVQQDDA5yZW1vdGUtdGVzdC1jYTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABPDr5mDscmDkny661K+uvgkk52SFLfhhPQSloxCec+RC
Y8LbgW0MK2B2dvepE/TpyC+kAJXbayS+7ZrfFEbYGVGjUzBRMB0GA1UdDgQWBBR+
yYghlNy5A9k7j/CZlezQ3z8H1TAfBgNVHSMEGDAWgBR+yYghlNy5A9k7j/CZlezQ
3z8H1TAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIA0/0Xs9Ysa0
adHYLf17VdTU2otX4orvpS/dkoCY9XvGAiBZ4/Q6i2nmoRgi4jbF9wI5hVk0jsFx
08A+l61K3i5fDQ==
-----END CERTIFICATE-----
";

    fn configmaps() -> &'static ResourceInfo {
        lookup("", "v1", "configmaps").expect("configmaps")
    }

    fn event(kind: &str, name: &str) -> String {
        json!({"type": kind, "object": {"metadata": {"name": name, "namespace": "default"}}})
            .to_string()
            + "\n"
    }

    fn lines_of(out: Vec<Vec<u8>>) -> Vec<String> {
        out.into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn splitter_returns_several_lines_of_one_chunk() {
        let mut s = LineSplitter::default();
        let chunk = format!(
            "{}{}\n{}",
            event("ADDED", "a"),
            event("MODIFIED", "a"),
            "{\"ty"
        );
        let lines = lines_of(s.push(chunk.as_bytes()).unwrap());
        assert_eq!(lines.len(), 2, "the blank line is skipped: {lines:?}");
        assert_eq!(format!("{}\n", lines[0]), event("ADDED", "a"));
        assert_eq!(format!("{}\n", lines[1]), event("MODIFIED", "a"));
        // The partial third line waits for its end.
        let lines = lines_of(s.push(b"pe\":\"BOOKMARK\"}\n").unwrap());
        assert_eq!(lines, vec!["{\"type\":\"BOOKMARK\"}".to_string()]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn splitter_joins_lines_split_at_every_possible_boundary() {
        let stream = format!(
            "{}{}{}",
            event("ADDED", "a"),
            event("MODIFIED", "b"),
            event("DELETED", "c")
        );
        let bytes = stream.as_bytes();
        // Two chunks, split at every offset.
        for cut in 0..=bytes.len() {
            let mut s = LineSplitter::default();
            let mut lines = s.push(&bytes[..cut]).unwrap();
            lines.extend(s.push(&bytes[cut..]).unwrap());
            let parsed: Vec<String> = lines
                .iter()
                .map(|l| match parse_line(configmaps(), l) {
                    Line::Event(WatchEvent::Added(o)) => format!("A {}", meta::name(&o)),
                    Line::Event(WatchEvent::Modified(o)) => format!("M {}", meta::name(&o)),
                    Line::Event(WatchEvent::Deleted(o)) => format!("D {}", meta::name(&o)),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(parsed, ["A a", "M b", "D c"], "cut at {cut}");
            assert_eq!(s.finish(), None);
        }
        // One byte per chunk.
        let mut s = LineSplitter::default();
        let mut lines = Vec::new();
        for b in bytes {
            lines.extend(s.push(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn splitter_keeps_a_last_line_without_newline_and_bounds_line_length() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"{\"type\":\"ADDED\"").unwrap().is_empty());
        assert_eq!(s.finish(), Some(b"{\"type\":\"ADDED\"".to_vec()));
        assert_eq!(s.finish(), None);

        let mut s = LineSplitter {
            max: 8,
            ..LineSplitter::default()
        };
        assert_eq!(lines_of(s.push(b"12345678\n").unwrap()), ["12345678"]);
        assert!(s.push(b"12345").unwrap().is_empty());
        assert!(s.push(b"6789").is_err(), "a partial line over the bound");
        let mut s = LineSplitter {
            max: 8,
            ..LineSplitter::default()
        };
        assert!(s.push(b"1234").unwrap().is_empty());
        assert!(
            s.push(b"56789\n").is_err(),
            "a completed line over the bound"
        );
    }

    #[test]
    fn watch_lines_map_to_events_bookmarks_and_errors() {
        let info = configmaps();
        match parse_line(info, event("ADDED", "x").as_bytes()) {
            Line::Event(WatchEvent::Added(o)) => {
                assert_eq!(o["apiVersion"], "v1", "type filled in: {o}");
                assert_eq!(o["kind"], "ConfigMap");
            }
            other => panic!("{other:?}"),
        }
        let bookmark = json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}}});
        assert!(matches!(
            parse_line(info, bookmark.to_string().as_bytes()),
            Line::Bookmark
        ));
        let expired = json!({"type": "ERROR", "object": ApiError::expired("too old resource version: 1 (7)").to_status()});
        match parse_line(info, expired.to_string().as_bytes()) {
            Line::Error(e) => {
                assert_eq!(e.code, 410);
                assert_eq!(e.reason, "Expired");
                assert_eq!(e.message, "too old resource version: 1 (7)");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_line(info, b"not json"), Line::Error(_)));
        assert!(matches!(
            parse_line(info, br#"{"type":"RENAMED","object":{}}"#),
            Line::Error(_)
        ));
        assert!(matches!(
            parse_line(info, br#"{"type":"ADDED"}"#),
            Line::Error(_)
        ));
    }

    #[test]
    fn status_bodies_become_api_errors_with_all_details() {
        let info = lookup("apps", "v1", "deployments").unwrap();
        let mut original = ApiError::invalid(
            info,
            "web",
            &[slipway_core::FieldError::required("spec.selector", "")],
        );
        original.retry_after_seconds = Some(3);
        let body = serde_json::to_vec(&original.to_status()).unwrap();
        let e = status_error(422, &body);
        assert_eq!(e, original);

        let conflict = ApiError::conflict(configmaps(), "c");
        let e = status_error(409, &serde_json::to_vec(&conflict.to_status()).unwrap());
        assert_eq!(e, conflict);

        // Not a Status: the HTTP code decides.
        let e = status_error(502, b"<html>bad gateway</html>");
        assert_eq!(e.code, 502);
        assert!(e.message.contains("bad gateway"), "{}", e.message);
        let e = status_error(403, b"");
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
        // A Status without a code takes the HTTP one.
        let e = status_error(
            404,
            br#"{"kind":"Status","status":"Failure","message":"gone","reason":"NotFound"}"#,
        );
        assert_eq!((e.code, e.message.as_str()), (404, "gone"));
    }

    #[test]
    fn paths_follow_group_scope_and_encoding() {
        let cm = configmaps();
        assert_eq!(
            collection_path(cm, Some("default")),
            "/api/v1/namespaces/default/configmaps"
        );
        assert_eq!(collection_path(cm, None), "/api/v1/configmaps");
        assert_eq!(
            object_path(cm, Some("kube-system"), "a.b"),
            "/api/v1/namespaces/kube-system/configmaps/a.b"
        );
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(
            object_path(deploy, Some("ns"), "web"),
            "/apis/apps/v1/namespaces/ns/deployments/web"
        );
        let ns = lookup("", "v1", "namespaces").unwrap();
        assert_eq!(
            object_path(ns, Some("ignored"), "x"),
            "/api/v1/namespaces/x"
        );
        assert_eq!(
            object_path(cm, Some("d"), "a/b c"),
            "/api/v1/namespaces/d/configmaps/a%2Fb%20c"
        );
        for _ in 0..20 {
            let t = watch_timeout_seconds();
            assert!((300..600).contains(&t), "{t}");
        }
    }

    #[test]
    fn delete_bodies_and_outcomes() {
        let opts = delete_options(&DeleteParams {
            propagation_policy: Some("Foreground".into()),
            grace_period_seconds: Some(0),
            precondition_uid: Some("u-1".into()),
            precondition_resource_version: Some("42".into()),
        });
        assert_eq!(
            opts,
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground",
                   "gracePeriodSeconds": 0, "preconditions": {"uid": "u-1", "resourceVersion": "42"}})
        );
        assert_eq!(
            delete_options(&DeleteParams::default()),
            json!({"kind": "DeleteOptions", "apiVersion": "v1"})
        );

        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
        assert_eq!(deletion_outcome(StatusCode::OK, status), None);
        let finalizing = json!({"kind": "ConfigMap", "metadata": {"name": "a",
            "deletionTimestamp": "2025-01-01T00:00:00Z", "finalizers": ["x/y"]}});
        assert!(deletion_outcome(StatusCode::OK, finalizing).is_some());
        let graceful = json!({"kind": "Pod", "metadata": {"name": "p",
            "deletionTimestamp": "2025-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}});
        assert!(deletion_outcome(StatusCode::OK, graceful).is_some());
        let gone = json!({"kind": "Pod", "metadata": {"name": "p",
            "deletionTimestamp": "2025-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0}});
        assert_eq!(deletion_outcome(StatusCode::OK, gone.clone()), None);
        assert!(deletion_outcome(StatusCode::ACCEPTED, gone).is_some());
    }

    fn kubeconfig(cluster: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: main\ncontexts:\n- name: main\n  context:\n    cluster: c1\n    user: u1\nclusters:\n- name: c1\n  cluster:\n{cluster}users:\n- name: u1\n  user:\n{user}"
        )
    }

    fn ca_data() -> String {
        base64::engine::general_purpose::STANDARD.encode(TEST_CA)
    }

    #[test]
    fn kubeconfig_with_inline_ca_and_token() {
        let text = kubeconfig(
            &format!(
                "    server: https://127.0.0.1:6443/\n    certificate-authority-data: {}\n",
                ca_data()
            ),
            "    token: \"abc\"\n",
        );
        let ep = parse_kubeconfig(&text, Path::new("/nowhere")).unwrap();
        assert_eq!(ep.server, "https://127.0.0.1:6443/");
        assert_eq!(ep.ca_pem, TEST_CA.as_bytes());
        assert_eq!(ep.token.as_deref(), Some("abc"));
        let client = RemoteClient::new(&ep.server, &ep.ca_pem, ep.token).unwrap();
        assert_eq!(client.server(), "https://127.0.0.1:6443");
        assert!(
            !format!("{client:?}").contains("abc"),
            "the token is not printed"
        );
    }

    #[test]
    fn kubeconfig_with_ca_and_token_files_relative_to_its_directory() {
        let dir = std::env::temp_dir().join(format!(
            "slipway-remote-test-{}-{}",
            std::process::id(),
            watch_timeout_seconds()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), TEST_CA).unwrap();
        std::fs::write(dir.join("token"), "from-file\n").unwrap();
        let text = kubeconfig(
            "    server: https://[::1]:8443\n    certificate-authority: ca.crt\n",
            "    tokenFile: token\n",
        );
        let path = dir.join("config");
        std::fs::write(&path, &text).unwrap();
        let ep = parse_kubeconfig(&text, &dir).unwrap();
        assert_eq!(ep.ca_pem, TEST_CA.as_bytes());
        assert_eq!(ep.token.as_deref(), Some("from-file"));
        let client = RemoteClient::from_kubeconfig(&path).unwrap();
        assert_eq!(client.server(), "https://[::1]:8443");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kubeconfig_problems_are_typed_errors() {
        let base = Path::new("/nowhere");
        let good_cluster = format!(
            "    server: https://127.0.0.1:6443\n    certificate-authority-data: {}\n",
            ca_data()
        );
        let token = "    token: t\n";
        let err = |text: &str| parse_kubeconfig(text, base).unwrap_err();

        assert!(matches!(err("a: [b"), RemoteError::Parse(_)));
        assert!(matches!(err("- 1\n- 2\n"), RemoteError::Parse(_)));
        assert!(matches!(
            err(&kubeconfig(&good_cluster, token).replace("current-context: main\n", "")),
            RemoteError::NoCurrentContext
        ));
        assert!(matches!(
            err(&kubeconfig(&good_cluster, token).replace("current-context: main", "current-context: other")),
            RemoteError::ContextNotFound(c) if c == "other"
        ));
        assert!(matches!(
            err(&kubeconfig(&good_cluster, token).replace("cluster: c1", "cluster: c2")),
            RemoteError::ClusterNotFound(c) if c == "c2"
        ));
        assert!(matches!(
            err(&kubeconfig(&good_cluster, token).replace("user: u1", "user: u2")),
            RemoteError::UserNotFound(u) if u == "u2"
        ));
        assert!(matches!(
            err(&kubeconfig(&format!("    certificate-authority-data: {}\n", ca_data()), token)),
            RemoteError::MissingServer(c) if c == "c1"
        ));
        assert!(matches!(
            err(&kubeconfig(
                &good_cluster.replace("https://", "http://"),
                token
            )),
            RemoteError::InvalidServer { .. }
        ));
        assert!(matches!(
            err(&kubeconfig(
                &good_cluster.replace("https://127.0.0.1:6443", "https://"),
                token
            )),
            RemoteError::InvalidServer { .. }
        ));
        assert!(matches!(
            err(&kubeconfig("    server: https://127.0.0.1:6443\n", token)),
            RemoteError::MissingCa(c) if c == "c1"
        ));
        assert!(matches!(
            err(&kubeconfig(
                "    server: https://127.0.0.1:6443\n    certificate-authority-data: '%%%'\n",
                token
            )),
            RemoteError::InvalidCa(_)
        ));
        assert!(matches!(
            err(&kubeconfig(
                "    server: https://127.0.0.1:6443\n    certificate-authority: missing.crt\n",
                token
            )),
            RemoteError::Read { path, .. } if path == Path::new("/nowhere/missing.crt")
        ));
        assert!(matches!(
            err(&kubeconfig(
                &good_cluster,
                "    client-certificate-data: AAAA\n"
            )),
            RemoteError::Unsupported(_)
        ));
        // Parseable, but the CA data is no certificate.
        let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        let ep = parse_kubeconfig(
            &kubeconfig(
                &format!(
                    "    server: https://127.0.0.1:6443\n    certificate-authority-data: {not_pem}\n"
                ),
                token,
            ),
            base,
        )
        .unwrap();
        assert!(matches!(
            RemoteClient::new(&ep.server, &ep.ca_pem, ep.token),
            Err(RemoteError::InvalidCa(_))
        ));
        assert!(matches!(
            RemoteClient::from_kubeconfig(Path::new("/nowhere/kubeconfig")),
            Err(RemoteError::Read { .. })
        ));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_503_naming_its_url() {
        // A port nobody listens on: bound, then released.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let server = format!("https://127.0.0.1:{port}");
        let client = RemoteClient::new(&server, TEST_CA.as_bytes(), Some("t".into())).unwrap();
        let cm = configmaps();
        let e = client.get(cm, Some("default"), "x").await.unwrap_err();
        assert_eq!(e.code, 503, "{e}");
        assert!(e.message.contains(&server), "{}", e.message);
        let e = client.list(cm, None).await.unwrap_err();
        assert_eq!(e.code, 503, "{e}");
        let e = client.watch(cm, None, "1").await.unwrap_err();
        assert_eq!(e.code, 503, "{e}");
        assert!(e.message.contains(&server), "{}", e.message);
    }

    #[tokio::test]
    async fn a_peer_that_fails_the_tls_handshake_is_unreachable() {
        // A plain-HTTP peer answers the TLS ClientHello with text: the handshake fails, which
        // is reported like a refused connection. (A certificate from another CA is covered by
        // the end-to-end test in crates/slipway/tests/remote_client.rs.)
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok((mut sock, _)) = listener.accept().await {
                let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let server = format!("https://{addr}");
        let client = RemoteClient::new(&server, TEST_CA.as_bytes(), None).unwrap();
        let e = client
            .get(configmaps(), Some("default"), "x")
            .await
            .unwrap_err();
        assert_eq!(e.code, 503, "{e}");
        assert!(e.message.contains(&server), "{}", e.message);
        peer.await.unwrap();
    }

    #[test]
    fn writes_need_names_and_namespaces() {
        let cm = configmaps();
        let e = RemoteClient::object_path_of(cm, &json!({"metadata": {"namespace": "d"}}), false)
            .unwrap_err();
        assert_eq!(e.code, 400);
        let e = namespace_of(cm, &json!({"metadata": {"name": "a"}})).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            RemoteClient::object_path_of(
                cm,
                &json!({"metadata": {"namespace": "d", "name": "a"}}),
                true
            )
            .unwrap(),
            "/api/v1/namespaces/d/configmaps/a/status"
        );
    }
}
