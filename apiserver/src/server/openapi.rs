//! `/openapi/v3` over HTTP: the index of group-version documents and each document, served
//! as JSON with the caching Kubernetes uses (kubectl caches documents by their `hash`).
//!
//! A request whose `hash` is not the current one is redirected to the current URL, an
//! `If-None-Match` with the current ETag gets 304, and a document requested by its current
//! hash may be cached forever (its bytes can never change under that hash). The decision is
//! the pure [`reply`]; the handlers only read the request and write the answer.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Query;
use crate::openapi::Catalog;
use crate::status::ApiError;

/// How to answer a request for a document whose current hash is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 301 to the current URL: the client asked for an older version.
    Redirect(String),
    /// 304: the client's copy (by ETag) is current.
    NotModified,
    /// 200 with the document; `immutable` when it was asked for by its current hash.
    Document {
        /// Whether the answer may be cached forever.
        immutable: bool,
    },
}

/// Decides the answer for document `key` (`apis/apps/v1`) whose current hash is `hash`,
/// given the request's `hash` parameter and `If-None-Match` header.
pub fn reply(
    key: &str,
    hash: &str,
    asked_hash: Option<&str>,
    if_none_match: Option<&[u8]>,
) -> Reply {
    match asked_hash {
        Some(h) if h != hash => Reply::Redirect(format!("/openapi/v3/{key}?hash={hash}")),
        _ if if_none_match == Some(etag(hash).as_bytes()) => Reply::NotModified,
        asked => Reply::Document {
            immutable: asked.is_some(),
        },
    }
}

/// The ETag of a document: its hash, quoted.
fn etag(hash: &str) -> String {
    format!("\"{hash}\"")
}

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
    let query = Query::parse(req.uri().query());
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .map(|v| v.as_bytes());
    let immutable = match reply(key, &doc.hash, query.get("hash"), if_none_match) {
        Reply::Redirect(location) => {
            return (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
        Reply::NotModified => {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag(&doc.hash))]).into_response()
        }
        Reply::Document { immutable } => immutable,
    };
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let mut resp = (
        [
            (header::ETAG, etag(&doc.hash)),
            (header::CACHE_CONTROL, cache.to_string()),
        ],
        doc.bytes.clone(),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_hashes_redirect_and_current_ones_are_cached_forever() {
        // kubectl caches a document by the URL in the index; an old URL must lead to the new
        // document, never to a stale one.
        assert_eq!(
            reply("api/v1", "AB", Some("00"), None),
            Reply::Redirect("/openapi/v3/api/v1?hash=AB".into())
        );
        assert_eq!(
            reply("api/v1", "AB", Some("AB"), None),
            Reply::Document { immutable: true }
        );
        assert_eq!(
            reply("api/v1", "AB", None, None),
            Reply::Document { immutable: false }
        );
        assert_eq!(
            reply("api/v1", "AB", None, Some(b"\"AB\"")),
            Reply::NotModified
        );
        assert_eq!(
            reply("api/v1", "AB", None, Some(b"\"00\"")),
            Reply::Document { immutable: false }
        );
    }
}
