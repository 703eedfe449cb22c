//! The HTTP server: routes every request under `/api` and `/apis` to discovery or a
//! resource verb, plus `/openapi/v3`, `/version`, `/healthz`, `/readyz`, `/livez` and
//! `/metrics`.
//!
//! ```text
//!  kubectl ──HTTP──► router ─► route::parse ─► discovery | rest (CRUD) | watch
//!                                    (GET, Accept as=Table) ─► tables ─► rest | watch
//!                     │                             │ fields.rs (fieldValidation)
//!                     └─► openapi (/openapi/v3)     ▼ etcd v3 (store.rs)
//!                                              skiff-store members
//! ```

pub mod binding;
pub mod cache;
pub mod discovery;
pub mod openapi;
pub mod rest;
pub mod route;
pub mod scale;
pub mod tables;
pub mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Value};

use crate::object::UpdateScope;
use crate::status::{ApiError, ApiResult};
use crate::store::Store;
use rest::WriteOptions;
use route::{Route, Target};

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Query parameters of a request.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        let map = raw
            .map(|q| {
                url_pairs(q)
                    .into_iter()
                    .collect::<HashMap<String, String>>()
            })
            .unwrap_or_default();
        Query(map)
    }

    /// One parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// The request's `labelSelector` and `fieldSelector`.
    pub fn selector(&self) -> ApiResult<crate::selectors::Selector> {
        crate::selectors::Selector::parse(
            self.get("labelSelector").unwrap_or(""),
            self.get("fieldSelector").unwrap_or(""),
        )
    }

    /// A boolean parameter, read as Go's `strconv.ParseBool` reads it (the Python client
    /// sends `watch=True`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.get(k),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }
}

/// Decodes `a=b&c=d` with percent-escapes and `+` as space.
fn url_pairs(q: &str) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (unescape(k), unescape(v)),
            None => (unescape(p), String::new()),
        })
        .collect()
}

/// Shared state of all handlers.
pub struct Api {
    /// The store client.
    pub store: Store,
    /// The address clients reach this server at (for `/api`).
    pub address: String,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// One store watch per resource type, shared by all watchers.
    pub caches: cache::Caches,
}

/// The router of the whole server.
pub fn router(api: Arc<Api>) -> axum::Router {
    axum::Router::new()
        .route("/version", get(version))
        // The Python client asks for `/version/`.
        .route("/version/", get(version))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/{*rest}", get(openapi::document))
        .route("/api", axum::routing::any(dispatch))
        .route("/api/{*rest}", axum::routing::any(dispatch))
        .route("/apis", axum::routing::any(dispatch))
        .route("/apis/{*rest}", axum::routing::any(dispatch))
        .fallback(
            |req: Request| async move { ApiError::no_route(req.uri().path()).into_response() },
        )
        .with_state(api)
}

async fn version() -> axum::Json<Value> {
    axum::Json(discovery::version())
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    match api.store.revision().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[-]etcd failed: {e}\nreadyz check failed\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(api): State<Arc<Api>>) -> String {
    api.metrics.render()
}

async fn dispatch(State(api): State<Arc<Api>>, req: Request) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match handle(&api, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(%method, path, code = e.code, message = %e.message, "request failed");
            }
            e.into_response()
        }
    };
    api.metrics
        .observe(method.as_str(), resp.status().as_u16(), start.elapsed());
    tracing::debug!(%method, path, status = resp.status().as_u16(), elapsed_ms = start.elapsed().as_millis() as u64, "request");
    resp
}

async fn handle(api: &Arc<Api>, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (core, rest) = if let Some(r) = path.strip_prefix("/apis") {
        (false, r)
    } else {
        (true, path.strip_prefix("/api").unwrap_or(""))
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let route = route::parse(core, &segs).ok_or_else(|| ApiError::no_route(&path))?;
    let as_table = match &route {
        Route::Resource(t) => tables::wants_table(&method, req.headers(), t),
        _ => None,
    };
    let body = read_body(req.into_body()).await?;
    // kubectl's generators send protobuf; the rest of the server works on JSON.
    let body = if !body.is_empty() && content_type.starts_with(crate::protobuf::CONTENT_TYPE) {
        serde_json::to_vec(&crate::protobuf::decode_body(&body)?).expect("JSON values serialize")
    } else {
        body
    };
    match route {
        Route::CoreVersions => {
            Ok(axum::Json(discovery::core_versions(&api.address)).into_response())
        }
        Route::Groups => Ok(axum::Json(discovery::groups()).into_response()),
        Route::Group(g) => discovery::group(&g)
            .map(|d| axum::Json(d).into_response())
            .ok_or_else(|| ApiError::no_route(&path)),
        Route::Resources(g, v) => discovery::resource_list(&g, &v)
            .map(|d| axum::Json(d).into_response())
            .ok_or_else(|| ApiError::no_route(&path)),
        Route::Resource(t) if as_table.is_some() => {
            tables::serve(api, t, &query, as_table.expect("checked")).await
        }
        Route::Resource(t) => {
            let req = ResourceRequest {
                method,
                query: &query,
                content_type: &content_type,
                user_agent: user_agent.as_deref(),
                body: &body,
            };
            resource(api, t, req).await
        }
    }
}

/// Bodies past the limit are still read (and dropped) up to this size, so the client gets
/// its 413 instead of a connection reset in the middle of its write.
const DRAIN_BODY_BYTES: usize = 4 * MAX_BODY_BYTES;

async fn read_body(body: Body) -> ApiResult<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        seen += chunk.len();
        if seen <= MAX_BODY_BYTES {
            out.extend_from_slice(&chunk);
        } else if seen > DRAIN_BODY_BYTES {
            break;
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(ApiError::too_large(format!(
            "the request body is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// A request on a resource path, after routing.
pub struct ResourceRequest<'a> {
    /// The HTTP method.
    pub method: Method,
    /// The query parameters.
    pub query: &'a Query,
    /// `Content-Type` of the body.
    pub content_type: &'a str,
    /// `User-Agent`, which names the default field manager.
    pub user_agent: Option<&'a str>,
    /// The body (protobuf already turned into JSON).
    pub body: &'a [u8],
}

impl ResourceRequest<'_> {
    /// The write options of the query; `kind` names them in errors (`PatchOptions`, ...).
    pub fn options(&self, kind: &str) -> ApiResult<WriteOptions> {
        WriteOptions::from_query(self.query, kind, self.user_agent)
    }
}

async fn resource(api: &Arc<Api>, t: Target, r: ResourceRequest<'_>) -> ApiResult<Response> {
    let (q, content_type, body) = (r.query, r.content_type, r.body);
    let method = r.method.clone();
    let res = t.res;
    let ns = t.namespace.as_deref();
    match (t.name.as_deref(), t.sub.as_deref()) {
        (None, _) => match method {
            Method::GET if q.flag("watch") => watch::serve(api.clone(), res, ns, q).await,
            Method::GET => api.list(res, ns, q).await,
            Method::POST => {
                let opts = r.options("CreateOptions")?;
                api.create(res, ns, &opts, body).await
            }
            Method::DELETE if dry_run(q, body)? => api.list(res, ns, q).await,
            Method::DELETE => api.delete_collection(res, ns, q).await,
            m => Err(not_allowed(&m, res.plural)),
        },
        (Some(name), None) => match method {
            Method::GET => api.get(res, ns, name).await,
            Method::PUT => {
                let opts = r.options("UpdateOptions")?;
                api.update(res, ns, name, UpdateScope::Main, &opts, body).await
            }
            Method::PATCH => {
                let opts = r.options("PatchOptions")?;
                api.patch(res, ns, name, UpdateScope::Main, &opts, content_type, body).await
            }
            Method::DELETE if dry_run(q, body)? => api.get(res, ns, name).await,
            Method::DELETE => api.delete(res, ns, name, body).await,
            m => Err(not_allowed(&m, res.plural)),
        },
        (Some(name), Some("status")) if res.has_status => match method {
            Method::GET => api.get(res, ns, name).await,
            Method::PUT => {
                let opts = r.options("UpdateOptions")?;
                api.update(res, ns, name, UpdateScope::Status, &opts, body).await
            }
            Method::PATCH => {
                let opts = r.options("PatchOptions")?;
                api.patch(res, ns, name, UpdateScope::Status, &opts, content_type, body).await
            }
            m => Err(not_allowed(&m, &format!("{}/status", res.plural))),
        },
        (Some(name), Some("scale")) if res.has_scale => {
            scale::serve(api, res, ns, name, &r).await
        }
        (Some(name), Some("binding")) if res.plural == "pods" => {
            binding::serve(api, res, ns, name, &r).await
        }
        (Some(_), Some(sub @ ("log" | "exec" | "attach" | "portforward"))) if res.plural == "pods" => {
            Err(ApiError::unavailable(format!(
                "pods/{sub} is served by the node's kubelet, and no kubelet is connected to this cluster yet"
            )))
        }
        (Some(_), Some(sub)) => Err(ApiError::no_route(&format!("{}/{sub}", res.plural))),
    }
}

/// Whether a delete is a dry run (answered with what would be deleted, deleting nothing).
fn dry_run(q: &Query, body: &[u8]) -> ApiResult<bool> {
    rest::delete_dry_run(q, body).map_err(|detail| {
        ApiError::unprocessable(format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: {detail}"
        ))
    })
}

fn not_allowed(m: &Method, what: &str) -> ApiError {
    ApiError::method_not_allowed(format!(
        "the server does not allow this method ({m}) on the requested resource ({what})"
    ))
}

/// Creates the namespaces Kubernetes always has (`default`, `kube-system`, `kube-public`,
/// `kube-node-lease`) if missing. Safe to run from several replicas at once.
pub async fn ensure_system_namespaces(api: &Api) -> ApiResult<()> {
    let nsres = crate::resources::find("", "v1", "namespaces").expect("namespaces are served");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let body: Value =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let opts = WriteOptions {
            manager: "skiff-apiserver".into(),
            ..WriteOptions::default()
        };
        match api
            .create(nsres, None, &opts, body.to_string().as_bytes())
            .await
        {
            Ok(_) => tracing::info!(namespace = name, "created system namespace"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Serves until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    api: Arc<Api>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("failed to listen on {addr}: {e}"))?;
    tracing::info!(%addr, "skiff-apiserver listening");
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&limit=500&x",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert!(Query::parse(Some("watch=True")).flag("watch"));
        assert!(!Query::parse(Some("watch=false")).flag("watch"));
        assert_eq!(q.get("limit"), Some("500"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(Query::parse(Some("a=%zz")).get("a"), Some("%zz"));
    }
}
