//! `?watch=true`: a stream of `{"type": ..., "object": ...}` lines, one per change, fed by a
//! store watch on the resource's key prefix.
//!
//! `resourceVersion` empty or `"0"` starts with ADDED events for the current objects, then
//! streams changes after the list; `resourceVersion=N` streams changes after N, or sends one
//! ERROR event (410 Expired) if N was compacted. Selectors apply to the object before and
//! after a change, so an object leaving the selection arrives as DELETED and one entering
//! it as ADDED, as Kubernetes does. Bookmarks are sent every minute when allowed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::rest::{decode, store_error};
use super::{Api, Query};
use crate::resources::Resource;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::Change;

/// Interval between bookmarks for watchers that allow them (Kubernetes: about a minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Default and maximum watch duration when the client gives no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

fn line(kind: &str, object: &Value) -> Vec<u8> {
    let mut l = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON");
    l.push(b'\n');
    l
}

/// The event a change becomes for this watcher, if any.
fn event(change: &Change, filter: &Filter) -> ApiResult<Option<(&'static str, Value)>> {
    Ok(match change {
        Change::Put { item, prev } => {
            let new = decode(item)?;
            let was = match prev {
                Some(p) => filter.matches(&decode(p)?),
                None => false,
            };
            match (was, filter.matches(&new)) {
                (false, true) => Some(("ADDED", new)),
                (true, true) => Some(("MODIFIED", new)),
                (true, false) => Some(("DELETED", new)),
                (false, false) => None,
            }
        }
        Change::Delete { prev, revision } => {
            let mut old = decode(prev)?;
            if !filter.matches(&old) {
                return Ok(None);
            }
            old["metadata"]["resourceVersion"] = json!(revision.to_string());
            Some(("DELETED", old))
        }
        Change::Compacted(_) => None,
    })
}

fn expired(rv: i64) -> Value {
    ApiError::expired(format!("too old resource version: {rv}")).status()
}

/// Serves one watch request.
pub async fn serve(
    api: Arc<Api>,
    res: &'static Resource,
    ns: Option<&str>,
    q: &Query,
) -> ApiResult<Response> {
    let filter = Filter {
        labels: LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))?,
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let timeout = match q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()) {
        Some(t) if t > 0 => Duration::from_secs(t).min(DEFAULT_TIMEOUT),
        _ => DEFAULT_TIMEOUT,
    };
    let prefix = res.prefix(ns);
    let rv: i64 = match q.get("resourceVersion") {
        None | Some("") | Some("0") => 0,
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
    };
    // The initial state for rv=0, then changes after it.
    let mut initial: Vec<Vec<u8>> = Vec::new();
    let from = if rv == 0 {
        let page = api
            .store
            .list(&prefix, None, 0, 0)
            .await
            .map_err(store_error)?;
        for item in &page.items {
            let obj = decode(item)?;
            if filter.matches(&obj) {
                initial.push(line("ADDED", &obj));
            }
        }
        page.revision + 1
    } else {
        rv + 1
    };
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let store = api.store.clone();
    let kind = res.kind;
    let api_version = res.api_version();
    tokio::spawn(async move {
        for l in initial {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        let changes = match store.watch(&prefix, from).await {
            Ok(s) => s,
            Err(crate::store::StoreError::Compacted(_)) => {
                let _ = tx.send(Ok(line("ERROR", &expired(rv)))).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Ok(line("ERROR", &store_error(e).status()))).await;
                return;
            }
        };
        futures::pin_mut!(changes);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
        bookmark.tick().await;
        let mut last_rev = from - 1;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = bookmark.tick(), if bookmarks => {
                    let obj = json!({"kind": kind, "apiVersion": api_version,
                                     "metadata": {"resourceVersion": last_rev.to_string()}});
                    if tx.send(Ok(line("BOOKMARK", &obj))).await.is_err() {
                        return;
                    }
                }
                change = changes.next() => {
                    let l = match change {
                        None => return,
                        Some(Ok(Change::Compacted(_))) => Some(line("ERROR", &expired(rv))),
                        Some(Ok(c)) => {
                            last_rev = revision_of(&c).max(last_rev);
                            match event(&c, &filter) {
                                Ok(Some((t, obj))) => Some(line(t, &obj)),
                                Ok(None) => None,
                                Err(e) => Some(line("ERROR", &e.status())),
                            }
                        }
                        Some(Err(e)) => {
                            let _ = tx.send(Ok(line("ERROR", &store_error(e).status()))).await;
                            return;
                        }
                    };
                    if let Some(l) = l {
                        if tx.send(Ok(l)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .expect("valid response"))
}

fn revision_of(c: &Change) -> i64 {
    match c {
        Change::Put { item, .. } => item.mod_revision,
        Change::Delete { revision, .. } => *revision,
        Change::Compacted(r) => *r,
    }
}
