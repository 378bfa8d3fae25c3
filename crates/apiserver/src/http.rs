//! The HTTP layer: authentication, routing, body decoding, content negotiation and response
//! encoding around [`Rest`].

use crate::negotiate::{self, BodyFormat, Representation};
use crate::query::Query;
use crate::rest::{DeleteOptions, Deleted, ListPage, Rest, Written, parse_object_body};
use crate::target::{self, ResourceTarget, Target};
use crate::watch;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use slipway_core::{ApiError, ResourceInfo, Subresource};
use slipway_pki::Credentials;
use std::sync::Arc;

pub use crate::metrics::Metrics;

/// The largest request body accepted (as the Kubernetes API server: 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Shared state of the HTTP layer.
pub struct AppState {
    /// REST semantics over the store.
    pub rest: Rest,
    /// Credentials, for bearer-token authentication.
    pub credentials: Credentials,
    /// The server's address as clients reach it (for legacy discovery).
    pub server_address: String,
    /// Request counters and extra metrics sources, exposed on `/metrics`.
    pub metrics: Metrics,
    /// Pod processes (logs, exec), when the node agent runs in this process.
    pub pod_io: Option<Arc<dyn crate::podio::PodIo>>,
}

/// The router: every request goes through [`dispatch`].
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(state)
}

/// A JSON response.
pub fn json_response(code: u16, content_type: &str, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes_response(code, content_type, Bytes::from(bytes))
}

fn bytes_response(code: u16, content_type: &str, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The `Status` response of an error.
pub fn error_response(e: &ApiError) -> Response {
    json_response(e.code, "application/json", &e.to_status())
}

fn encode(code: u16, repr: Representation, body: &Value, warnings: &[String]) -> Response {
    let mut resp = match repr {
        Representation::Yaml => {
            let text = serde_yaml::to_string(body).unwrap_or_default();
            bytes_response(code, repr.content_type(), Bytes::from(text))
        }
        _ => json_response(code, repr.content_type(), body),
    };
    add_warnings(&mut resp, warnings);
    resp
}

/// Adds `Warning: 299` headers.
fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn authenticated(state: &AppState, headers: &HeaderMap) -> bool {
    header_str(headers, header::AUTHORIZATION)
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| slipway_pki::token_matches(&state.credentials, t.trim()))
}

/// Entry point of every request.
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = percent_encoding::percent_decode_str(parts.uri.path())
        .decode_utf8_lossy()
        .to_string();
    let public = matches!(
        path.as_str(),
        "/version" | "/healthz" | "/livez" | "/readyz"
    );
    if !public && !authenticated(&state, &parts.headers) {
        return error_response(&ApiError::unauthorized());
    }
    let query = match Query::parse(parts.uri.query()) {
        Ok(q) => q,
        Err(e) => return error_response(&e),
    };
    let accept = header_str(&parts.headers, header::ACCEPT);
    let result = match path.as_str() {
        "/version" => Ok(json_response(
            200,
            "application/json",
            &slipway_discovery::version_info(),
        )),
        "/healthz" | "/livez" | "/readyz" => Ok(bytes_response(
            200,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"ok"),
        )),
        "/metrics" => Ok(bytes_response(
            200,
            crate::metrics::CONTENT_TYPE,
            Bytes::from(state.metrics.render_all().await),
        )),
        "/openapi/v2" => Err(ApiError::path_not_found()),
        "/openapi/v3" => Ok(json_response(
            200,
            "application/json",
            &slipway_discovery::openapi_v3_index(),
        )),
        p if p.starts_with("/openapi/v3/") => {
            slipway_discovery::openapi_v3_document(&p["/openapi/v3/".len()..])
                .map(|doc| json_response(200, "application/json", &doc))
                .ok_or_else(ApiError::path_not_found)
        }
        p if p.starts_with("/api") => match target::parse(p) {
            Err(e) => Err(e),
            Ok(Target::CoreDiscovery) => discovery(accept, true, &state),
            Ok(Target::GroupDiscovery) => discovery(accept, false, &state),
            Ok(Target::Group(g)) => slipway_discovery::api_group(&g)
                .map(|v| json_response(200, "application/json", &v))
                .ok_or_else(ApiError::path_not_found),
            Ok(Target::GroupVersion(g, v)) => slipway_discovery::api_resource_list(&g, &v)
                .map(|v| json_response(200, "application/json", &v))
                .ok_or_else(ApiError::path_not_found),
            Ok(Target::Resource(t)) => {
                let started = std::time::Instant::now();
                let verb = verb_name(&parts.method, &t, &query);
                let resource = t.info.plural;
                let resp =
                    resource_request(&state, parts.method, &parts.headers, t, query, body).await;
                let resp = resp.unwrap_or_else(|e| error_response(&e));
                state.metrics.record(verb, resource, resp.status().as_u16());
                // Long-running requests are not latencies (as on Kubernetes).
                if !matches!(verb, "WATCH" | "CONNECT") {
                    state.metrics.observe_duration(verb, started.elapsed());
                }
                return resp;
            }
        },
        _ => Err(ApiError::path_not_found()),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn verb_name(method: &Method, t: &ResourceTarget, q: &Query) -> &'static str {
    if matches!(
        t.subresource,
        Some(Subresource::Exec | Subresource::Attach | Subresource::PortForward)
    ) {
        return "CONNECT";
    }
    match (method.as_str(), t.name.is_some()) {
        ("GET", false) if q.watch => "WATCH",
        ("GET", false) => "LIST",
        ("GET", true) => "GET",
        ("POST", _) => "CREATE",
        ("PUT", _) => "UPDATE",
        ("PATCH", _) => "PATCH",
        ("DELETE", false) => "DELETECOLLECTION",
        ("DELETE", true) => "DELETE",
        _ => "OTHER",
    }
}

fn discovery(accept: Option<&str>, core: bool, state: &AppState) -> Result<Response, ApiError> {
    match negotiate::choose(accept, false, true)? {
        Representation::Aggregated(v) => {
            let body = slipway_discovery::aggregated(core, v);
            Ok(json_response(
                200,
                Representation::Aggregated(v).content_type(),
                &body,
            ))
        }
        _ if core => Ok(json_response(
            200,
            "application/json",
            &slipway_discovery::api_versions(&state.server_address),
        )),
        _ => Ok(json_response(
            200,
            "application/json",
            &slipway_discovery::api_group_list(),
        )),
    }
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "Request entity too large: limit is {MAX_BODY_BYTES}"
        ))
    };
    if let Some(len) =
        header_str(headers, header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok())
        && len > MAX_BODY_BYTES
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return too_large();
                }
                source = s.source();
            }
            ApiError::bad_request(format!("reading the request body failed: {e}"))
        })
}

/// Decodes a create or update body according to its content type.
fn decode_object(format: BodyFormat, raw: &[u8]) -> Result<Value, ApiError> {
    match format {
        BodyFormat::Json => serde_json::from_slice(raw).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        BodyFormat::Yaml => parse_object_body(raw),
        BodyFormat::Protobuf => {
            slipway_codec::decode_protobuf(raw).map_err(|e| ApiError::bad_request(e.to_string()))
        }
        _ => Err(ApiError::unsupported_media_type("not an object body")),
    }
}

/// Runs a blocking REST call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request handler failed: {e}")))?
}

async fn resource_request(
    state: &Arc<AppState>,
    method: Method,
    headers: &HeaderMap,
    t: ResourceTarget,
    q: Query,
    body: Body,
) -> Result<Response, ApiError> {
    let accept = header_str(headers, header::ACCEPT);
    let user_agent = header_str(headers, header::USER_AGENT)
        .unwrap_or("")
        .to_string();
    let table_ok = t.subresource.is_none() && matches!(method, Method::GET);
    let repr = negotiate::choose(accept, table_ok, false)?;
    let info = t.info;
    let rest = state.rest.clone();
    match (method, t.name.is_some(), t.subresource) {
        (Method::GET, false, None) if q.watch => watch::serve(state.clone(), t, q, repr),
        (Method::GET, false, None) => {
            let page = rest.list(&t, &q)?;
            Ok(list_response(&rest, info, &page, &q, repr))
        }
        (Method::GET, true, None | Some(Subresource::Status)) => {
            let obj = rest.get(&t)?;
            Ok(object_response(&rest, info, 200, &obj, repr, &q, &[]))
        }
        (Method::GET, true, Some(Subresource::Scale)) => {
            Ok(encode(200, repr, &rest.get_scale(&t)?, &[]))
        }
        (Method::GET, true, Some(Subresource::Log)) => crate::logs::serve(state, &t, &q).await,
        (
            ref m,
            true,
            Some(sub @ (Subresource::Exec | Subresource::Attach | Subresource::PortForward)),
        ) => crate::exec::serve(state, m, headers, &t, sub).await,
        (Method::POST, false, None) => {
            let format = negotiate::body_format(header_str(headers, header::CONTENT_TYPE), false)?;
            let raw = read_body(headers, body).await?;
            let obj = decode_object(format, &raw)?;
            let w = blocking(move || rest.create(&t, &q, obj, &user_agent)).await?;
            Ok(written_response(&state.rest, info, w, repr))
        }
        (Method::POST, true, Some(Subresource::Binding)) => {
            let format = negotiate::body_format(header_str(headers, header::CONTENT_TYPE), false)?;
            let raw = read_body(headers, body).await?;
            let obj = decode_object(format, &raw)?;
            blocking(move || rest.bind(&t, &q, obj)).await?;
            // As Kubernetes: a bare success Status with the create's code.
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success", "code": 201});
            Ok(json_response(201, "application/json", &status))
        }
        (Method::PUT, true, None | Some(Subresource::Status)) => {
            let format = negotiate::body_format(header_str(headers, header::CONTENT_TYPE), false)?;
            let raw = read_body(headers, body).await?;
            let obj = decode_object(format, &raw)?;
            let w = blocking(move || rest.update(&t, &q, obj, &user_agent)).await?;
            Ok(written_response(&state.rest, info, w, repr))
        }
        (Method::PUT, true, Some(Subresource::Scale)) => {
            negotiate::body_format(header_str(headers, header::CONTENT_TYPE), false)?;
            let raw = read_body(headers, body).await?;
            let scale = blocking(move || rest.write_scale(&t, &q, None, &raw, &user_agent)).await?;
            Ok(encode(200, repr, &scale, &[]))
        }
        (Method::PATCH, true, None | Some(Subresource::Status)) => {
            let format = negotiate::body_format(header_str(headers, header::CONTENT_TYPE), true)?;
            let raw = read_body(headers, body).await?;
            let w = blocking(move || rest.patch(&t, &q, format, &raw, &user_agent)).await?;
            Ok(written_response(&state.rest, info, w, repr))
        }
        (Method::PATCH, true, Some(Subresource::Scale)) => {
            let format = negotiate::body_format(header_str(headers, header::CONTENT_TYPE), true)?;
            let raw = read_body(headers, body).await?;
            let scale =
                blocking(move || rest.write_scale(&t, &q, Some(format), &raw, &user_agent)).await?;
            Ok(encode(200, repr, &scale, &[]))
        }
        (Method::DELETE, true, None) => {
            let raw = read_body(headers, body).await?;
            let opts = DeleteOptions::parse(&raw, &q)?;
            match blocking(move || rest.delete(&t, &opts)).await? {
                Deleted::Gone(status) => Ok(json_response(200, "application/json", &status)),
                Deleted::Pending(w) => Ok(written_response(&state.rest, info, w, repr)),
            }
        }
        (Method::DELETE, false, None) => {
            let raw = read_body(headers, body).await?;
            let opts = DeleteOptions::parse(&raw, &q)?;
            let q2 = q.clone();
            let page = blocking(move || rest.delete_collection(&t, &q2, &opts)).await?;
            Ok(list_response(
                &state.rest,
                info,
                &page,
                &q,
                Representation::Json,
            ))
        }
        (m, _, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

fn written_response(
    rest: &Rest,
    info: &ResourceInfo,
    w: Written,
    repr: Representation,
) -> Response {
    let repr = if matches!(repr, Representation::Table(_)) {
        Representation::Json
    } else {
        repr
    };
    if let Some(json) = &w.json {
        // The committed text: the bytes serialising the whole stored object would give.
        let mut resp = match repr {
            Representation::Yaml => {
                let whole: Value = serde_json::from_str(json).unwrap_or_default();
                return encode(w.code, repr, &whole, &w.warnings);
            }
            _ => bytes_response(
                w.code,
                repr.content_type(),
                Bytes::copy_from_slice(json.as_bytes()),
            ),
        };
        add_warnings(&mut resp, &w.warnings);
        return resp;
    }
    object_response(
        rest,
        info,
        w.code,
        &w.object,
        repr,
        &Query::default(),
        &w.warnings,
    )
}

fn object_response(
    rest: &Rest,
    info: &ResourceInfo,
    code: u16,
    obj: &Value,
    repr: Representation,
    q: &Query,
    warnings: &[String],
) -> Response {
    match repr {
        Representation::Table(_) => {
            let rv = slipway_core::meta::resource_version(obj).to_string();
            let table = slipway_printers::table(
                info,
                &[obj],
                q.include_object,
                rest.now(),
                &rv,
                None,
                true,
            );
            encode(code, repr, &table, warnings)
        }
        _ => encode(code, repr, obj, warnings),
    }
}

fn list_response(
    rest: &Rest,
    info: &ResourceInfo,
    page: &ListPage,
    q: &Query,
    repr: Representation,
) -> Response {
    let rv = page.revision.to_string();
    match repr {
        Representation::Table(_) => list_table_response(rest, info, page, q, repr, &rv),
        Representation::Yaml => {
            let list = list_value(info, page);
            encode(200, repr, &list, &[])
        }
        _ => bytes_response(200, "application/json", Bytes::from(list_json(info, page))),
    }
}

/// A list as a Table, written straight into the response body: the same JSON as serialising
/// `slipway_printers::table` with `remainingItemCount` added, without building it as a `Value`.
fn list_table_response(
    rest: &Rest,
    info: &ResourceInfo,
    page: &ListPage,
    q: &Query,
    repr: Representation,
    rv: &str,
) -> Response {
    let refs: Vec<&Value> = page.items.iter().map(|a| a.as_ref()).collect();
    let meta = slipway_printers::TableMeta {
        resource_version: rv,
        continue_token: page.continue_token.as_deref(),
        remaining_item_count: page.remaining,
    };
    // Rows with metadata take somewhat under half of the objects' text.
    let text_len: usize = page.json.iter().map(|t| t.len()).sum();
    let mut out = Vec::with_capacity(4096 + text_len / 2);
    match slipway_printers::write_table(
        &mut out,
        info,
        &refs,
        q.include_object,
        rest.now(),
        &meta,
        true,
    ) {
        Ok(()) => bytes_response(200, repr.content_type(), Bytes::from(out)),
        Err(e) => error_response(&ApiError::internal(format!("encoding the table: {e}"))),
    }
}

fn list_metadata(page: &ListPage) -> Value {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = &page.continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        metadata["remainingItemCount"] = json!(n);
    }
    metadata
}

/// A list as a `Value` (for YAML), with whole items: from their committed text when the page
/// has it (its items are lean, without `managedFields`).
fn list_value(info: &ResourceInfo, page: &ListPage) -> Value {
    let items: Vec<Value> = if page.json.len() == page.items.len() {
        page.json
            .iter()
            .zip(&page.items)
            .map(|(text, lean)| serde_json::from_str(text).unwrap_or_else(|_| (**lean).clone()))
            .collect()
    } else {
        page.items.iter().map(|a| a.as_ref().clone()).collect()
    };
    json!({
        "kind": info.list_kind(),
        "apiVersion": info.api_version(),
        "metadata": list_metadata(page),
        "items": items,
    })
}

/// Serialises a list without copying its items.
fn list_json(info: &ResourceInfo, page: &ListPage) -> Vec<u8> {
    let text_len: usize = page.json.iter().map(|t| t.len() + 1).sum();
    let mut out = Vec::with_capacity(256 + text_len.max(page.items.len() * 2048));
    out.extend_from_slice(b"{\"kind\":");
    out.extend_from_slice(json!(info.list_kind()).to_string().as_bytes());
    out.extend_from_slice(b",\"apiVersion\":");
    out.extend_from_slice(json!(info.api_version()).to_string().as_bytes());
    out.extend_from_slice(b",\"metadata\":");
    out.extend_from_slice(list_metadata(page).to_string().as_bytes());
    out.extend_from_slice(b",\"items\":[");
    if page.json.len() == page.items.len() {
        for (i, text) in page.json.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(text.as_bytes());
        }
    } else {
        for (i, item) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if serde_json::to_writer(&mut out, item.as_ref()).is_err() {
                out.extend_from_slice(b"null");
            }
        }
    }
    out.extend_from_slice(b"]}");
    out
}
