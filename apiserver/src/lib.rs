//! skiff-apiserver: the Kubernetes API over skiff-store, for the real kubectl, the Python
//! `kubernetes` package and the `kube` crate.
//!
//! ```text
//!  server/        HTTP: routing, discovery, REST verbs, watch streams   (I/O)
//!  bench.rs       skiff-apiserver-bench: creates, lists, watch delays    (I/O)
//!  store.rs       etcd v3 calls: Range, Txn on mod_revision, Watch       (I/O)
//!  object.rs      metadata rules on create/update                        (pure)
//!  defaults.rs    defaulting of built-in types                           (pure)
//!  validation.rs  validation of built-in types                           (pure)
//!  protobuf.rs    kubectl generators' protobuf bodies → JSON             (pure)
//!  openapi.rs     OpenAPI v3 documents of the served types               (pure)
//!  fields.rs      unknown/duplicate fields (`fieldValidation`)           (pure)
//!  managed/       managedFields and server-side apply                    (pure)
//!  patch.rs       JSON patch / merge patch / dispatch                    (pure)
//!  strategic.rs   strategic merge patch                                  (pure)
//!  selectors.rs   label and field selectors                              (pure)
//!  resources.rs   the served resource types                              (pure)
//!  status.rs      metav1.Status errors                                   (pure)
//!  table.rs       Table output of `kubectl get`: columns and cells       (pure)
//! ```
//!
//! The apiserver is stateless: every replica reads and writes the store, and objects carry
//! the store's `mod_revision` as their `resourceVersion`, so several replicas behave as one.

pub mod bench;
pub mod defaults;
pub mod fields;
pub mod managed;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod strategic;
pub mod table;
pub mod validation;
