//! skiff-apiserver: the Kubernetes API over skiff-store, for the real kubectl, the Python
//! `kubernetes` package and the `kube` crate.
//!
//! ```text
//!  server/        HTTP: routing, discovery, REST verbs, watch streams   (I/O)
//!  store.rs       etcd v3 calls: Range, Txn on mod_revision, Watch       (I/O)
//!  object.rs      metadata rules on create/update                        (pure)
//!  defaults.rs    defaulting of built-in types                           (pure)
//!  validation.rs  validation of built-in types                           (pure)
//!  patch.rs       JSON patch / merge patch                               (pure)
//!  selectors.rs   label and field selectors                              (pure)
//!  resources.rs   the served resource types                              (pure)
//!  status.rs      metav1.Status errors                                   (pure)
//! ```
//!
//! The apiserver is stateless: every replica reads and writes the store, and objects carry
//! the store's `mod_revision` as their `resourceVersion`, so several replicas behave as one.

pub mod defaults;
pub mod metrics;
pub mod object;
pub mod patch;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod validation;
