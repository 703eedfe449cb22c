//! `?watch=true`: a stream of `{"type": ..., "object": ...}` lines, one per change, fed by
//! the resource's watch cache (`super::cache`) or, for an old start revision, a store watch.
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

use super::cache::{key_of, revision_of, Msg};
use super::rest::{decode, store_error};
use super::{Api, Query};
use crate::resources::Resource;
use crate::selectors::Selector;
use crate::status::{ApiError, ApiResult};
use crate::store::Change;
use crate::table::TableOptions;

/// Interval between bookmarks for watchers that allow them (Kubernetes: about a minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Default and maximum watch duration when the client gives no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How a watcher's events carry their objects: as stored, or (for `kubectl get -w`) as
/// one-row Tables whose column definitions come with the first event only.
struct Encoder {
    kind: &'static str,
    table: Option<TableOptions>,
    columns_sent: bool,
}

impl Encoder {
    /// The line of one ADDED/MODIFIED/DELETED event.
    fn event(&mut self, ty: &str, obj: &Value) -> Vec<u8> {
        let Some(opts) = self.table else {
            return line(ty, obj);
        };
        let opts = TableOptions {
            now: super::tables::unix_now(),
            ..opts
        };
        let meta = super::tables::object_rv(obj);
        let t = crate::table::table(
            self.kind,
            std::slice::from_ref(obj),
            meta,
            &opts,
            !self.columns_sent,
        );
        self.columns_sent = true;
        line(ty, &t)
    }
}

fn line(kind: &str, object: &Value) -> Vec<u8> {
    let mut l = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON");
    l.push(b'\n');
    l
}

/// The event a change becomes for this watcher, if any.
fn event(change: &Change, filter: &Selector) -> ApiResult<Option<(&'static str, Value)>> {
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
    serve_as(api, res, ns, q, None).await
}

/// Serves one watch request, with events' objects as one-row Tables when `table` is given.
pub async fn serve_as(
    api: Arc<Api>,
    res: &'static Resource,
    ns: Option<&str>,
    q: &Query,
    table: Option<TableOptions>,
) -> ApiResult<Response> {
    let mut enc = Encoder {
        kind: res.kind,
        table,
        columns_sent: false,
    };
    let filter = q.selector()?;
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
    // Served from this apiserver's watch cache when possible, else by a store watch.
    let cache = api.caches.get(res);
    let mut initial: Vec<Vec<u8>> = Vec::new();
    let mut feed = match cache.subscribe(&prefix, rv).await {
        Some(sub) => {
            for item in &sub.initial {
                let obj = decode(item)?;
                if filter.matches(&obj) {
                    initial.push(enc.event("ADDED", &obj));
                }
            }
            Feed::Cached {
                backlog: sub.backlog.into(),
                live: sub.live,
                prefix: prefix.clone(),
                after: sub.revision,
            }
        }
        None => {
            let from = if rv == 0 {
                let page = api
                    .store
                    .list(&prefix, None, 0, 0)
                    .await
                    .map_err(store_error)?;
                for item in &page.items {
                    let obj = decode(item)?;
                    if filter.matches(&obj) {
                        initial.push(enc.event("ADDED", &obj));
                    }
                }
                page.revision
            } else {
                rv
            };
            match api.store.watch(&prefix, from + 1).await {
                Ok(s) => Feed::Direct(Box::pin(s)),
                Err(crate::store::StoreError::Compacted(_)) => Feed::Expired,
                Err(e) => return Err(store_error(e)),
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let kind = res.kind;
    let api_version = res.api_version();
    tokio::spawn(async move {
        for l in initial {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
        bookmark.tick().await;
        let mut last_rev = rv;
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
                next = feed.next() => {
                    let l = match next {
                        Next::End => return,
                        Next::Expired => {
                            let _ = tx.send(Ok(line("ERROR", &expired(rv)))).await;
                            return;
                        }
                        Next::Error(e) => {
                            let _ = tx.send(Ok(line("ERROR", &e.status()))).await;
                            return;
                        }
                        Next::Change(c) => {
                            last_rev = revision_of(&c).max(last_rev);
                            match event(&c, &filter) {
                                Ok(Some((t, obj))) => Some(enc.event(t, &obj)),
                                Ok(None) => None,
                                Err(e) => Some(line("ERROR", &e.status())),
                            }
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

/// Where a watcher's changes come from.
enum Feed {
    /// This apiserver's watch cache.
    Cached {
        backlog: std::collections::VecDeque<Arc<Change>>,
        live: tokio::sync::broadcast::Receiver<Msg>,
        prefix: String,
        after: i64,
    },
    /// A store watch of its own (a start revision older than the cache's window).
    Direct(
        std::pin::Pin<
            Box<dyn futures::Stream<Item = Result<Change, crate::store::StoreError>> + Send>,
        >,
    ),
    /// The start revision was compacted.
    Expired,
}

/// The next thing a watcher hears.
enum Next {
    Change(Arc<Change>),
    /// Too old (compacted, or the watcher fell behind the cache): the client relists.
    Expired,
    Error(ApiError),
    End,
}

impl Feed {
    async fn next(&mut self) -> Next {
        match self {
            Feed::Expired => Next::Expired,
            Feed::Direct(s) => match s.next().await {
                None => Next::End,
                Some(Ok(Change::Compacted(_))) => Next::Expired,
                Some(Ok(c)) => Next::Change(Arc::new(c)),
                Some(Err(e)) => Next::Error(store_error(e)),
            },
            Feed::Cached {
                backlog,
                live,
                prefix,
                after,
            } => {
                if let Some(c) = backlog.pop_front() {
                    return Next::Change(c);
                }
                loop {
                    match live.recv().await {
                        Ok(Msg::Change(c)) => {
                            if key_of(&c).starts_with(prefix.as_str()) && revision_of(&c) > *after {
                                return Next::Change(c);
                            }
                        }
                        Ok(Msg::Reset)
                        | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            return Next::Expired
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return Next::End,
                    }
                }
            }
        }
    }
}
