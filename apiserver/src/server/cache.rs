//! The watch cache: one store watch per resource type feeds every watcher of that type
//! on this apiserver, so a thousand `kubectl get -w` or controller informers cost the store
//! one watch, as in Kubernetes' cacher.
//!
//! A resource's cache starts on its first watch request: it lists the resource, then
//! watches the store from the list's revision, keeping the current objects and a window of
//! the most recent changes. A watch request is served from the cache when it starts at
//! revision 0 (current state, then changes) or within the window; an older
//! `resourceVersion` falls back to a direct store watch, so clients never see a spurious
//! 410. If the store watch breaks, the cache relists and its watchers are ended with a
//! 410 ERROR event, after which clients relist and watch again (Kubernetes' contract).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use crate::resources::Resource;
use crate::store::{Change, Item, Store};

/// Changes kept per resource for watchers that start at a recent revision.
const WINDOW: usize = 4096;
/// Messages buffered per watcher before it counts as too slow (and is ended with 410).
const SUBSCRIBER_BUFFER: usize = 8192;
/// Wait before relisting after the store watch broke.
const RELIST_BACKOFF: Duration = Duration::from_millis(500);

/// What a cache tells its watchers.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A change at a revision after the subscriber's start.
    Change(Arc<Change>),
    /// The cache lost its store watch and relisted: watchers must start over.
    Reset,
}

/// A watcher's start: what it is sent first, and the live feed after it.
pub struct Subscription {
    /// For `resourceVersion=0`: the current objects (ADDED events).
    pub initial: Vec<Item>,
    /// Changes after the requested revision that happened before subscribing.
    pub backlog: Vec<Arc<Change>>,
    /// The revision the initial state and backlog are at.
    pub revision: i64,
    /// Live changes after `revision`.
    pub live: broadcast::Receiver<Msg>,
}

struct State {
    objects: BTreeMap<String, Item>,
    window: VecDeque<Arc<Change>>,
    /// The revision the objects are at.
    revision: i64,
    /// The window holds every change in `(window_start, revision]`.
    window_start: i64,
}

/// The cache of one resource type.
pub struct ResourceCache {
    state: Mutex<Option<State>>,
    tx: broadcast::Sender<Msg>,
    ready: watch::Sender<bool>,
}

/// The revision a change happened at.
pub fn revision_of(c: &Change) -> i64 {
    match c {
        Change::Put { item, .. } => item.mod_revision,
        Change::Delete { revision, .. } => *revision,
        Change::Compacted(r) => *r,
    }
}

/// The store key a change is about.
pub fn key_of(c: &Change) -> &str {
    match c {
        Change::Put { item, .. } => &item.key,
        Change::Delete { prev, .. } => &prev.key,
        Change::Compacted(_) => "",
    }
}

impl ResourceCache {
    fn new() -> Arc<ResourceCache> {
        let (tx, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let (ready, _) = watch::channel(false);
        Arc::new(ResourceCache {
            state: Mutex::new(None),
            tx,
            ready,
        })
    }

    /// Subscribes from `rv` (0: the current state) for keys under `prefix`. `None` when
    /// `rv` is older than the window (the caller watches the store directly).
    pub async fn subscribe(&self, prefix: &str, rv: i64) -> Option<Subscription> {
        let mut ready = self.ready.subscribe();
        if tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
            .await
            .is_err()
        {
            return None;
        }
        let guard = self.state.lock().expect("cache lock poisoned");
        let st = guard.as_ref()?;
        if rv != 0 && rv < st.window_start {
            return None;
        }
        let initial = if rv == 0 {
            st.objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect()
        } else {
            Vec::new()
        };
        let backlog = if rv == 0 {
            Vec::new()
        } else {
            st.window
                .iter()
                .filter(|c| revision_of(c) > rv && key_of(c).starts_with(prefix))
                .cloned()
                .collect()
        };
        Some(Subscription {
            initial,
            backlog,
            revision: if rv == 0 {
                st.revision
            } else {
                rv.max(st.window_start)
            },
            // Subscribing under the lock: the feed publishes under it too, so nothing falls
            // between the snapshot above and the live feed.
            live: self.tx.subscribe(),
        })
    }

    fn apply(&self, change: Change) {
        let change = Arc::new(change);
        let mut guard = self.state.lock().expect("cache lock poisoned");
        let Some(st) = guard.as_mut() else { return };
        let rev = revision_of(&change);
        match change.as_ref() {
            Change::Put { item, .. } => {
                st.objects.insert(item.key.clone(), item.clone());
            }
            Change::Delete { prev, .. } => {
                st.objects.remove(&prev.key);
            }
            Change::Compacted(_) => return,
        }
        st.revision = st.revision.max(rev);
        st.window.push_back(change.clone());
        while st.window.len() > WINDOW {
            if let Some(old) = st.window.pop_front() {
                st.window_start = revision_of(&old);
            }
        }
        let _ = self.tx.send(Msg::Change(change));
    }

    /// Lists, then follows the store; relists whenever the store watch ends.
    async fn feed(self: Arc<Self>, store: Store, prefix: String) {
        loop {
            match store.list(&prefix, None, 0, 0).await {
                Ok(page) => {
                    let objects = page.items.into_iter().map(|i| (i.key.clone(), i)).collect();
                    {
                        let mut guard = self.state.lock().expect("cache lock poisoned");
                        if guard.is_some() {
                            let _ = self.tx.send(Msg::Reset);
                        }
                        *guard = Some(State {
                            objects,
                            window: VecDeque::new(),
                            revision: page.revision,
                            window_start: page.revision,
                        });
                    }
                    self.ready.send_replace(true);
                    tracing::debug!(prefix, revision = page.revision, "watch cache listed");
                    match store.watch(&prefix, page.revision + 1).await {
                        Ok(changes) => {
                            futures::pin_mut!(changes);
                            while let Some(c) = changes.next().await {
                                match c {
                                    Ok(Change::Compacted(_)) | Err(_) => break,
                                    Ok(c) => self.apply(c),
                                }
                            }
                            tracing::info!(prefix, "watch cache lost its store watch; relisting");
                        }
                        Err(e) => {
                            tracing::warn!(prefix, error = %e, "watch cache cannot watch the store")
                        }
                    }
                }
                Err(e) => tracing::warn!(prefix, error = %e, "watch cache cannot list the store"),
            }
            tokio::time::sleep(RELIST_BACKOFF).await;
        }
    }
}

/// The caches of all resource types of one apiserver.
pub struct Caches {
    store: Store,
    caches: Mutex<HashMap<String, Arc<ResourceCache>>>,
}

impl Caches {
    /// No cache runs until its resource is first watched.
    pub fn new(store: Store) -> Caches {
        Caches {
            store,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The cache of `res`, started on first use.
    pub fn get(&self, res: &Resource) -> Arc<ResourceCache> {
        let prefix = res.prefix(None);
        let mut caches = self.caches.lock().expect("caches lock poisoned");
        caches
            .entry(prefix.clone())
            .or_insert_with(|| {
                let cache = ResourceCache::new();
                tokio::spawn(cache.clone().feed(self.store.clone(), prefix));
                cache
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, rev: i64) -> Item {
        Item {
            key: key.into(),
            value: b"{}".to_vec(),
            mod_revision: rev,
        }
    }

    fn seeded() -> Arc<ResourceCache> {
        let c = ResourceCache::new();
        *c.state.lock().unwrap() = Some(State {
            objects: [("/r/pods/a/x".to_string(), item("/r/pods/a/x", 5))].into(),
            window: VecDeque::new(),
            revision: 5,
            window_start: 5,
        });
        c.ready.send_replace(true);
        c
    }

    #[tokio::test]
    async fn subscribers_get_state_backlog_and_live_changes_without_gaps() {
        let c = seeded();
        c.apply(Change::Put {
            item: item("/r/pods/a/y", 6),
            prev: None,
        });
        c.apply(Change::Put {
            item: item("/r/pods/b/z", 7),
            prev: None,
        });
        // From 0: the current objects under the prefix, at the cache's revision.
        let s = c.subscribe("/r/pods/a/", 0).await.unwrap();
        assert_eq!(s.revision, 7);
        assert_eq!(s.initial.len(), 2);
        // From 5: the window's changes after 5 under the prefix.
        let mut s = c.subscribe("/r/pods/", 5).await.unwrap();
        let revs: Vec<i64> = s.backlog.iter().map(|c| revision_of(c)).collect();
        assert_eq!(revs, vec![6, 7]);
        // Older than the window: not served from the cache.
        assert!(c.subscribe("/r/pods/", 4).await.is_none());
        // Live.
        c.apply(Change::Delete {
            prev: item("/r/pods/a/x", 5),
            revision: 8,
        });
        match s.live.recv().await.unwrap() {
            Msg::Change(ch) => assert_eq!(revision_of(&ch), 8),
            Msg::Reset => panic!("unexpected reset"),
        }
        assert_eq!(c.state.lock().unwrap().as_ref().unwrap().objects.len(), 2);
    }

    #[tokio::test]
    async fn the_window_is_bounded() {
        let c = seeded();
        for r in 0..(WINDOW as i64 + 10) {
            c.apply(Change::Put {
                item: item("/r/pods/a/x", 6 + r),
                prev: None,
            });
        }
        let st = c.state.lock().unwrap();
        let st = st.as_ref().unwrap();
        assert_eq!(st.window.len(), WINDOW);
        assert_eq!(st.window_start, 6 + 9);
    }
}
