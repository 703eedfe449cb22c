//! `/openapi/v3` over HTTP: the index of group-version documents and each document, served
//! as JSON with the caching Kubernetes uses (kubectl caches documents by their `hash`).
//!
//! A request whose `hash` is not the current one is redirected to the current URL, an
//! `If-None-Match` with the current ETag gets 304, and a document requested by its current
//! hash may be cached forever (its bytes can never change under that hash).

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Query;
use crate::openapi::Catalog;
use crate::status::ApiError;

/// `GET /openapi/v3`.
pub async fn index() -> Response {
    axum::Json(Catalog::get().index()).into_response()
}

/// `GET /openapi/v3/<api/v1 | apis/group/version>`.
pub async fn document(req: Request) -> Response {
    let path = req.uri().path();
    let key = path
        .trim_start_matches("/openapi/v3/")
        .trim_end_matches('/');
    let Some(doc) = Catalog::get().docs.get(key) else {
        return ApiError::no_route(path).into_response();
    };
    let etag = format!("\"{}\"", doc.hash);
    let query = Query::parse(req.uri().query());
    match query.get("hash") {
        Some(h) if h != doc.hash => {
            let location = format!("/openapi/v3/{key}?hash={}", doc.hash);
            return (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, location)],
            )
                .into_response();
        }
        _ => {}
    }
    let cache = if query.get("hash").is_some() {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let headers = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, cache.to_string()),
    ];
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mut resp = (headers, doc.bytes.clone()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
