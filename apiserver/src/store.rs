//! The apiserver's only way to the data: etcd v3 calls against skiff-store (or etcd), the
//! way Kubernetes' `storage/etcd3` makes them. Reads are Range, writes are Txns comparing
//! `mod_revision` (optimistic concurrency), watches are prefix watches with `prev_kv`.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KvClient, Txn, TxnOp,
    TxnOpResponse, WatchClient, WatchOptions,
};
use futures::{Stream, StreamExt};

/// Keys per Range when a whole collection is read: lists and the watch cache's initial list
/// are read in pages at one revision, as Kubernetes' reflector and storage do, so no single
/// response grows with the collection.
const LIST_PAGE: i64 = 500;
/// Largest store response accepted (the etcd-client default is 4 MiB; one page of large
/// objects, or one watch response, may be bigger).
const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// How long one store call may take before the apiserver answers 503.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of a call whose connection could not be made (another member is tried).
const CONNECT_RETRIES: u32 = 8;

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object exists (create) or does not exist / changed (update, delete).
    #[error("the object's revision did not match")]
    RevisionMismatch,
    /// The requested revision was compacted.
    #[error("required revision has been compacted (compact revision {0})")]
    Compacted(i64),
    /// The store refused the request as larger than its `--max-request-bytes`.
    #[error("the store refused the request as too large: {0}")]
    TooLarge(String),
    /// No store member answered in time, or the store refused the call.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The store key.
    pub key: String,
    /// The object's JSON bytes.
    pub value: Vec<u8>,
    /// The revision the object was last written at (its resourceVersion).
    pub mod_revision: i64,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    /// Objects in key order.
    pub items: Vec<Item>,
    /// The revision the list was read at.
    pub revision: i64,
    /// Whether more keys follow the last one.
    pub more: bool,
}

/// A change to a watched key.
#[derive(Debug, Clone)]
pub enum Change {
    /// Created or updated.
    Put {
        /// The new object.
        item: Item,
        /// The object before, if the key existed.
        prev: Option<Item>,
    },
    /// Deleted; `prev` is the object before deletion, `revision` the deletion revision.
    Delete {
        /// The deleted object as it was.
        prev: Item,
        /// Revision of the deletion.
        revision: i64,
    },
    /// The watch cannot continue from this revision (compacted).
    Compacted(i64),
}

/// A cloneable handle on the store.
#[derive(Clone)]
pub struct Store {
    kv: KvClient,
    watcher: WatchClient,
}

fn unavailable(e: etcd_client::Error) -> StoreError {
    let text = e.to_string();
    if text.contains("required revision has been compacted") {
        StoreError::Compacted(0)
    } else if text.contains("request is too large") {
        StoreError::TooLarge(text)
    } else {
        StoreError::Unavailable(text)
    }
}

/// Whether an error proves the request never reached a store member (the connection could
/// not be made), so retrying it — even a write — cannot apply it twice.
fn never_sent(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.contains("tcp connect error") || m.contains("Connection refused"))
}

/// Calls the store, retrying on another member while the connection cannot be made (the
/// client balances over all members; a dead one fails fast with a connect error).
async fn call<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut attempt = 0;
    loop {
        match timed(f()).await {
            Err(e) if never_sent(&e) && attempt < CONNECT_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
            }
            r => return r,
        }
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from the store within {CALL_TIMEOUT:?}"
        ))),
    }
}

/// The smallest key after every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn item(kv: &etcd_client::KeyValue) -> Item {
    Item {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
    }
}

impl Store {
    /// Connects to the store members (`http://host:port` URLs); calls fail over between them.
    pub async fn connect(endpoints: &[String]) -> Result<Store, StoreError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(unavailable)?;
        Ok(Store {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watcher: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
        })
    }

    /// The object at `key`, if any, and the store revision of the read.
    pub async fn get(&self, key: &str) -> Result<(Option<Item>, i64), StoreError> {
        let r = call(|| {
            let mut c = self.kv.clone();
            async move { c.get(key, None).await }
        })
        .await?;
        let rev = r.header().map_or(0, |h| h.revision());
        Ok((r.kvs().first().map(item), rev))
    }

    /// Up to `limit` objects (0 = all) under `prefix`, from `start` (a key under the prefix,
    /// inclusive) on, as of `revision` (0 = now). A whole collection is read in pages of
    /// [`LIST_PAGE`] keys, all at the first page's revision.
    pub async fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: i64,
    ) -> Result<Page, StoreError> {
        if limit > 0 {
            return self
                .range(prefix, start.unwrap_or(prefix), limit, revision)
                .await;
        }
        let mut page = self
            .range(prefix, start.unwrap_or(prefix), LIST_PAGE, revision)
            .await?;
        while page.more {
            let Some(last) = page.items.last() else { break };
            let next = format!("{}\0", last.key);
            let more = self.range(prefix, &next, LIST_PAGE, page.revision).await?;
            page.items.extend(more.items);
            page.more = more.more;
        }
        Ok(page)
    }

    /// One Range of up to `limit` keys under `prefix` from `from` on.
    async fn range(
        &self,
        prefix: &str,
        from: &str,
        limit: i64,
        revision: i64,
    ) -> Result<Page, StoreError> {
        let c = self.kv.clone();
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(limit)
            .with_revision(revision);
        let r = call(|| {
            let mut c = c.clone();
            let opts = opts.clone();
            async move { c.get(from, Some(opts)).await }
        })
        .await
        .map_err(|e| match e {
            StoreError::Compacted(_) => StoreError::Compacted(revision),
            e => e,
        })?;
        Ok(Page {
            items: r.kvs().iter().map(item).collect(),
            revision: r.header().map_or(0, |h| h.revision()),
            more: r.more(),
        })
    }

    /// Writes `value` at `key` if the key's mod_revision is `expected` (0: the key must not
    /// exist). Returns the new revision.
    pub async fn put_if(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: i64,
    ) -> Result<i64, StoreError> {
        let c = self.kv.clone();
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, None)]);
        let r = call(|| {
            let mut c = c.clone();
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
        if !r.succeeded() {
            return Err(StoreError::RevisionMismatch);
        }
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// Deletes `key` if its mod_revision is `expected`. Returns the deletion revision.
    pub async fn delete_if(&self, key: &str, expected: i64) -> Result<i64, StoreError> {
        let c = self.kv.clone();
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)]);
        let r = call(|| {
            let mut c = c.clone();
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
        if !r.succeeded() {
            return Err(StoreError::RevisionMismatch);
        }
        let deleted = r
            .op_responses()
            .iter()
            .any(|op| matches!(op, TxnOpResponse::Delete(d) if d.deleted() > 0));
        if !deleted {
            return Err(StoreError::RevisionMismatch);
        }
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// The store's current revision.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        let c = self.kv.clone();
        let r = call(|| {
            let mut c = c.clone();
            async move {
                c.get("/registry/", Some(GetOptions::new().with_count_only()))
                    .await
            }
        })
        .await?;
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// Changes under `prefix` from revision `from` on (inclusive), in order.
    pub async fn watch(
        &self,
        prefix: &str,
        from: i64,
    ) -> Result<impl Stream<Item = Result<Change, StoreError>> + Send + use<>, StoreError> {
        let c = self.watcher.clone();
        let opts = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(from)
            .with_prev_key();
        let mut ws = call(|| {
            let mut c = c.clone();
            let opts = opts.clone();
            async move { c.watch(prefix, Some(opts)).await }
        })
        .await?;
        let created = timed(ws.message()).await?;
        if created.is_none() {
            return Err(StoreError::Unavailable("the store closed the watch".into()));
        }
        let stream = futures::stream::unfold(Some(ws), |ws| async move {
            let mut ws = ws?;
            loop {
                let resp = match ws.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => return None,
                    Err(e) => return Some((vec![Err(unavailable(e))], None)),
                };
                if resp.compact_revision() > 0 {
                    return Some((vec![Ok(Change::Compacted(resp.compact_revision()))], None));
                }
                if resp.canceled() {
                    let reason = resp.cancel_reason().to_string();
                    return Some((vec![Err(StoreError::Unavailable(reason))], None));
                }
                if resp.events().is_empty() {
                    continue;
                }
                let changes = resp
                    .events()
                    .iter()
                    .filter_map(|e| {
                        let kv = e.kv()?;
                        Some(Ok(match e.event_type() {
                            EventType::Put => Change::Put {
                                item: item(kv),
                                prev: e.prev_kv().map(item),
                            },
                            EventType::Delete => Change::Delete {
                                prev: e.prev_kv().map(item)?,
                                revision: kv.mod_revision(),
                            },
                        }))
                    })
                    .collect::<Vec<_>>();
                return Some((changes, Some(ws)));
            }
        })
        .flat_map(futures::stream::iter);
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
