//! The REST verbs on resources: create, get, list, update, patch, delete, deletecollection,
//! and the `status` subresource, over the store with optimistic concurrency.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

use super::{Api, Query};
use crate::fields::{FieldError, FieldProblem, FieldValidation};
use crate::managed::{self, Actor};
use crate::object::{self, CreateContext, UpdateScope};
use crate::resources::{Resource, RESOURCES};
use crate::status::{ApiError, ApiResult};
use crate::store::{Item, StoreError};

/// How many times a server-side read-modify-write (patch, delete with finalizers) retries on
/// a concurrent change before answering 409.
const MAX_RMW_ATTEMPTS: usize = 5;

/// A store failure as the client sees it.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(m) => {
            ApiError::unavailable(format!("the storage is unavailable: {m}"))
        }
        StoreError::Compacted(rev) => ApiError::expired(format!("too old resource version: {rev}")),
        StoreError::TooLarge(m) => {
            ApiError::too_large(format!("the object is larger than the store accepts: {m}"))
        }
        StoreError::RevisionMismatch => ApiError::internal("unexpected revision mismatch"),
    }
}

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode(item: &Item) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(&item.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", item.key)))?;
    object::metadata_mut(&mut v).insert(
        "resourceVersion".into(),
        json!(item.mod_revision.to_string()),
    );
    Ok(v)
}

/// Encodes an object for storage (without resourceVersion: the store revision is it).
fn encode(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    object::metadata_mut(&mut o).remove("resourceVersion");
    serde_json::to_vec(&o).expect("JSON values serialize")
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .expect("now is a valid timestamp")
        .to_string()
}

fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, axum::Json(v)).into_response()
}

fn rv_of(obj: &Value) -> ApiResult<Option<i64>> {
    match object::meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resourceVersion {s:?}: must be a decimal revision"
            ))
        }),
    }
}

/// The options of a create, update or patch, from its query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// What to do about unknown and duplicate fields.
    pub validation: FieldValidation,
    /// `dryRun=All`: validate and answer as if written, but store nothing.
    pub dry_run: bool,
    /// The field manager: `fieldManager`, or the first word of the User-Agent.
    pub manager: String,
    /// Whether `fieldManager` was given (server-side apply requires it).
    pub manager_given: bool,
    /// `force=true`: a server-side apply takes over the fields it conflicts on.
    pub force: bool,
}

/// The longest `fieldManager` Kubernetes accepts.
const MAX_MANAGER_BYTES: usize = 128;

impl WriteOptions {
    /// Parses `fieldValidation`, `dryRun`, `fieldManager` and `force`; `options_kind`
    /// (`CreateOptions`, ...) names the options in the 422 an unsupported value gets, as
    /// Kubernetes does. Without `fieldManager` the manager is named after `user_agent`.
    pub fn from_query(
        q: &Query,
        options_kind: &str,
        user_agent: Option<&str>,
    ) -> ApiResult<WriteOptions> {
        let invalid = |detail: String| {
            ApiError::unprocessable(format!(
                "{options_kind}.meta.k8s.io \"\" is invalid: {detail}"
            ))
        };
        let validation =
            FieldValidation::parse(q.get("fieldValidation")).map_err(|e| invalid(e.to_string()))?;
        let given = q.get("fieldManager").filter(|m| !m.is_empty());
        if given.is_some_and(|m| m.len() > MAX_MANAGER_BYTES) {
            return Err(invalid(format!(
                "fieldManager: Too long: may not be more than {MAX_MANAGER_BYTES} bytes"
            )));
        }
        let force = match q.get("force") {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid value for force: {other:?}: must be true or false"
                )))
            }
        };
        Ok(WriteOptions {
            validation,
            dry_run: parse_dry_run(q).map_err(invalid)?,
            manager: given.map_or_else(
                || managed::manager_from_user_agent(user_agent),
                str::to_string,
            ),
            manager_given: given.is_some(),
            force,
        })
    }

    /// The writer of a change through `subresource`.
    fn actor<'a>(
        &'a self,
        res: &Resource,
        subresource: Option<&'a str>,
        now: &'a str,
    ) -> Actor<'a> {
        Actor {
            manager: &self.manager,
            api_version: res.api_version(),
            subresource,
            now,
        }
    }
}

/// How a write records field ownership in `metadata.managedFields`.
pub enum Ownership<'a> {
    /// An update (create, PUT, non-apply PATCH) by `opts.manager` through `subresource`.
    Update {
        /// The request's options (its field manager).
        opts: &'a WriteOptions,
        /// `status`, `scale`, `binding`, or `None` for the main resource.
        subresource: Option<&'a str>,
    },
    /// A server-side apply, whose `managedFields` were computed with the merge.
    Applied(Option<Value>),
}

impl Ownership<'_> {
    /// Records the write from `old` (`None` on create) to `new`.
    fn record(&self, res: &Resource, scope: UpdateScope, old: Option<&Value>, new: &mut Value) {
        match self {
            Ownership::Update { opts, subresource } => {
                let now = now();
                let who = opts.actor(res, *subresource, &now);
                managed::track_update(res, scope, old, new, &who);
            }
            Ownership::Applied(fields) => {
                let meta = object::metadata_mut(new);
                match fields {
                    Some(f) => meta.insert("managedFields".into(), f.clone()),
                    None => meta.remove("managedFields"),
                };
            }
        }
    }
}

fn subresource_of(scope: UpdateScope) -> Option<&'static str> {
    match scope {
        UpdateScope::Main => None,
        UpdateScope::Status => Some("status"),
    }
}

/// `dryRun`: absent, empty or `All`.
pub fn parse_dry_run(q: &Query) -> Result<bool, String> {
    match q.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(format!(
            "dryRun: Unsupported value: {other:?}: supported values: \"All\""
        )),
    }
}

/// Whether a DELETE is a dry run: `dryRun=All` in the query, or `"dryRun": ["All"]` in its
/// DeleteOptions body (where client-go puts it). A body that is not JSON is left for the
/// delete itself to refuse.
pub fn delete_dry_run(q: &Query, body: &[u8]) -> Result<bool, String> {
    let in_query = parse_dry_run(q)?;
    let Ok(opts) = serde_json::from_slice::<Value>(body) else {
        return Ok(in_query);
    };
    let mut in_body = false;
    for v in opts["dryRun"].as_array().into_iter().flatten() {
        match v.as_str() {
            Some("All") => in_body = true,
            _ => {
                return Err(format!(
                    "dryRun: Unsupported value: {v}: supported values: \"All\""
                ))
            }
        }
    }
    Ok(in_query || in_body)
}

/// How a strict field-validation failure reads: decoding a whole object names the kind, as
/// Kubernetes' create and update handlers do; a patch reports the bare decoding error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoding {
    Object,
    Patch,
}

/// Checks `obj` for unknown and duplicate fields (dropping unknown ones); returns the
/// warnings to send, or the 400 a `Strict` request gets.
fn check_fields(
    res: &Resource,
    opts: &WriteOptions,
    obj: &mut Value,
    body: Option<&[u8]>,
    how: Decoding,
) -> ApiResult<Vec<FieldProblem>> {
    let schemas = crate::openapi::all_schemas();
    let root = crate::openapi::schema_name(res);
    crate::fields::check(opts.validation, schemas, root, obj, body).map_err(|e| match (e, how) {
        (e @ FieldError::Strict(_), Decoding::Object) => ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}",
            kind = res.kind,
            version = res.version
        )),
        (e, _) => ApiError::bad_request(e.to_string()),
    })
}

/// A `Warning` header value: `299 - "<text>"` with quotes and backslashes escaped and
/// anything but printable ASCII replaced, so every text makes a valid header.
pub fn warning_value(text: &str) -> String {
    let mut out = String::from("299 - \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c == ' ' || c.is_ascii_graphic() => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// Adds one `Warning` header per problem (kubectl prints each as `Warning: <text>`).
fn with_warnings(mut resp: Response, warnings: &[FieldProblem]) -> Response {
    for w in warnings {
        let value = HeaderValue::from_str(&warning_value(&w.to_string()))
            .expect("escaped printable ASCII is a valid header value");
        resp.headers_mut().append(header::WARNING, value);
    }
    resp
}

impl Api {
    /// Fails unless `ns` exists and is not terminating (creates in a namespace).
    async fn check_namespace(&self, ns: &str) -> ApiResult<()> {
        let nsres = crate::resources::find("", "v1", "namespaces").expect("namespaces are served");
        let (item, _) = self
            .store
            .get(&nsres.key(None, ns))
            .await
            .map_err(store_error)?;
        let Some(item) = item else {
            return Err(ApiError::not_found(nsres, ns));
        };
        let obj = decode(&item)?;
        if object::meta_str(&obj, "deletionTimestamp").is_some()
            || obj["status"]["phase"] == "Terminating"
        {
            return Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// Reads one object; 404 if absent.
    pub async fn read(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<(Value, i64)> {
        let (item, _) = self
            .store
            .get(&res.key(ns, name))
            .await
            .map_err(store_error)?;
        let item = item.ok_or_else(|| ApiError::not_found(res, name))?;
        Ok((decode(&item)?, item.mod_revision))
    }

    /// POST on a collection.
    pub async fn create(
        &self,
        res: &Resource,
        ns: Option<&str>,
        opts: &WriteOptions,
        body: &[u8],
    ) -> ApiResult<Response> {
        let mut obj = object::parse_body(body)?;
        let warnings = check_fields(res, opts, &mut obj, Some(body), Decoding::Object)?;
        let owner = Ownership::Update {
            opts,
            subresource: None,
        };
        let resp = self.insert(res, ns, obj, opts.dry_run, &owner).await?;
        Ok(with_warnings(resp, &warnings))
    }

    /// Stores a new object (a create, or a server-side apply of an absent object) and
    /// answers 201 with it.
    async fn insert(
        &self,
        res: &Resource,
        ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
        owner: &Ownership<'_>,
    ) -> ApiResult<Response> {
        let ctx = CreateContext {
            namespace: ns,
            uid: new_uid(),
            now: now(),
        };
        let name = object::prepare_create(res, &mut obj, &ctx)?;
        crate::defaults::apply(res, &mut obj);
        crate::validation::validate(res, &obj)?;
        owner.record(res, UpdateScope::Main, None, &mut obj);
        if res.namespaced {
            let ns = object::meta_str(&obj, "namespace")
                .unwrap_or("default")
                .to_string();
            self.check_namespace(&ns).await?;
        }
        let ns = object::meta_str(&obj, "namespace").map(str::to_string);
        let key = res.key(ns.as_deref(), &name);
        if dry_run {
            let (existing, _) = self.store.get(&key).await.map_err(store_error)?;
            if existing.is_some() {
                return Err(ApiError::already_exists(res, &name));
            }
            return Ok(json_response(StatusCode::CREATED, &obj));
        }
        let rev = match self.store.put_if(&key, encode(&obj), 0).await {
            Ok(rev) => rev,
            Err(StoreError::RevisionMismatch) => return Err(ApiError::already_exists(res, &name)),
            Err(e) => return Err(store_error(e)),
        };
        object::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
        tracing::debug!(resource = res.plural, name, rev, "created");
        Ok(json_response(StatusCode::CREATED, &obj))
    }

    /// GET on an object.
    pub async fn get(&self, res: &Resource, ns: Option<&str>, name: &str) -> ApiResult<Response> {
        let (obj, _) = self.read(res, ns, name).await?;
        Ok(json_response(StatusCode::OK, &obj))
    }

    /// GET on a collection (not a watch).
    pub async fn list(&self, res: &Resource, ns: Option<&str>, q: &Query) -> ApiResult<Response> {
        let list = self.list_value(res, ns, q).await?;
        Ok(json_response(StatusCode::OK, &list))
    }

    /// The list a collection GET answers: one page of the objects matching the selectors,
    /// with `metadata.resourceVersion` and, when more remain, `metadata.continue`.
    pub async fn list_value(
        &self,
        res: &Resource,
        ns: Option<&str>,
        q: &Query,
    ) -> ApiResult<Value> {
        let selector = q.selector()?;
        let limit: i64 = match q.get("limit") {
            None | Some("") => 0,
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        };
        let prefix = res.prefix(ns);
        let (start, revision) = match q.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let (rev, start) = decode_continue(token, &prefix)?;
                (Some(start), rev)
            }
            None => (None, 0),
        };
        let page = self
            .store
            .list(&prefix, start.as_deref(), limit.max(0), revision)
            .await
            .map_err(|e| match e {
                StoreError::Compacted(_) => ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                e => store_error(e),
            })?;
        let list_rev = if revision > 0 {
            revision
        } else {
            page.revision
        };
        let mut items = Vec::new();
        for item in &page.items {
            let obj = decode(item)?;
            if selector.matches(&obj) {
                items.push(obj);
            }
        }
        let mut meta = json!({"resourceVersion": list_rev.to_string()});
        if page.more {
            if let Some(last) = page.items.last() {
                meta["continue"] = json!(encode_continue(list_rev, &format!("{}\0", last.key)));
            }
        }
        Ok(json!({
            "kind": res.list_kind(),
            "apiVersion": res.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    /// PUT on an object or its `status`.
    pub async fn update(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        scope: UpdateScope,
        opts: &WriteOptions,
        body: &[u8],
    ) -> ApiResult<Response> {
        let mut obj = object::parse_body(body)?;
        let warnings = check_fields(res, opts, &mut obj, Some(body), Decoding::Object)?;
        let wanted_rv = rv_of(&obj)?;
        let (old, old_rev) = self.read(res, ns, name).await?;
        if wanted_rv.is_some_and(|rv| rv != old_rev) {
            return Err(ApiError::conflict(res, name));
        }
        let owner = Ownership::Update {
            opts,
            subresource: subresource_of(scope),
        };
        let saved = self
            .write_update(
                res,
                ns,
                name,
                &mut obj,
                &old,
                old_rev,
                scope,
                opts.dry_run,
                &owner,
            )
            .await?;
        Ok(with_warnings(
            json_response(StatusCode::OK, &saved),
            &warnings,
        ))
    }

    /// Validates and stores `new` over `old` (read at `old_rev`), recording field ownership
    /// as `owner` says; returns the stored object. With `dry_run` nothing is stored and the
    /// validated object is returned.
    // The arguments are the update's identity, both versions and two orthogonal switches;
    // a struct would only be built to be taken apart again here.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_update(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        new: &mut Value,
        old: &Value,
        old_rev: i64,
        scope: UpdateScope,
        dry_run: bool,
        owner: &Ownership<'_>,
    ) -> ApiResult<Value> {
        object::prepare_update(res, new, old, scope)?;
        crate::defaults::apply(res, new);
        crate::validation::validate(res, new)?;
        crate::validation::validate_update(res, new, old)?;
        owner.record(res, scope, Some(old), new);
        if dry_run {
            return Ok(new.clone());
        }
        let key = res.key(ns, name);
        // Removing the last finalizer of an object being deleted completes the deletion.
        if object::meta_str(new, "deletionTimestamp").is_some() && finalizers(new).is_empty() {
            return match self.store.delete_if(&key, old_rev).await {
                Ok(_) => Ok(new.clone()),
                Err(StoreError::RevisionMismatch) => Err(ApiError::conflict(res, name)),
                Err(e) => Err(store_error(e)),
            };
        }
        let rev = match self.store.put_if(&key, encode(new), old_rev).await {
            Ok(rev) => rev,
            Err(StoreError::RevisionMismatch) => return Err(ApiError::conflict(res, name)),
            Err(e) => return Err(store_error(e)),
        };
        object::metadata_mut(new).insert("resourceVersion".into(), json!(rev.to_string()));
        Ok(new.clone())
    }

    /// PATCH on an object or its `status`: JSON patch, merge patch or strategic merge patch
    /// applied to the current object and stored with a revision check (retried on concurrent
    /// writes), or a server-side apply.
    pub async fn patch(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        scope: UpdateScope,
        opts: &WriteOptions,
        content_type: &str,
        body: &[u8],
    ) -> ApiResult<Response> {
        let kind = content_type.split(';').next().unwrap_or("").trim();
        if kind == crate::patch::APPLY_PATCH {
            return self
                .server_side_apply(res, ns, name, scope, opts, body)
                .await;
        }
        if opts.force {
            return Err(ApiError::unprocessable(
                "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
            ));
        }
        let owner = Ownership::Update {
            opts,
            subresource: subresource_of(scope),
        };
        // Merge patches are partial objects, so their repeated keys have object paths.
        let object_shaped = matches!(
            kind,
            "application/merge-patch+json" | "application/strategic-merge-patch+json"
        );
        for attempt in 0..MAX_RMW_ATTEMPTS {
            let (old, old_rev) = self.read(res, ns, name).await?;
            let mut new = crate::patch::apply(kind, &old, body)?;
            let warnings = check_fields(
                res,
                opts,
                &mut new,
                object_shaped.then_some(body),
                Decoding::Patch,
            )?;
            // A patch that names a resourceVersion is a precondition (the stored object's
            // own version passes through a merge patch unchanged).
            if rv_of(&new)?.is_some_and(|rv| rv != old_rev) {
                return Err(ApiError::conflict(res, name));
            }
            match self
                .write_update(
                    res,
                    ns,
                    name,
                    &mut new,
                    &old,
                    old_rev,
                    scope,
                    opts.dry_run,
                    &owner,
                )
                .await
            {
                Err(e) if e.reason == "Conflict" && attempt + 1 < MAX_RMW_ATTEMPTS => continue,
                Err(e) => return Err(e),
                Ok(saved) => {
                    let resp = json_response(StatusCode::OK, &saved);
                    return Ok(with_warnings(resp, &warnings));
                }
            }
        }
        Err(ApiError::conflict(res, name))
    }

    /// PATCH with `application/apply-patch+yaml`: merges the manager's configuration into
    /// the object (creating it if absent), removes what the manager applied before and left
    /// out, and answers 409 on fields another manager owns unless `force=true`.
    async fn server_side_apply(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        scope: UpdateScope,
        opts: &WriteOptions,
        body: &[u8],
    ) -> ApiResult<Response> {
        if !opts.manager_given {
            return Err(ApiError::unprocessable(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let mut config = managed::parse_config(body)?;
        let warnings = check_fields(res, opts, &mut config, Some(body), Decoding::Object)?;
        check_apply_identity(res, ns, name, &mut config)?;
        let now = now();
        let who = opts.actor(res, subresource_of(scope), &now);
        let merge = |live: Option<&Value>| {
            managed::apply(res, scope, live, &config, &who, opts.force)
                .map_err(|c| managed::conflict_error(res, name, &c))
        };
        for attempt in 0..MAX_RMW_ATTEMPTS {
            let (live, rev) = match self.read(res, ns, name).await {
                Ok(found) => found,
                Err(e) if e.code == 404 && scope == UpdateScope::Main => {
                    let obj = merge(None)?;
                    let owner = Ownership::Applied(obj["metadata"].get("managedFields").cloned());
                    match self.insert(res, ns, obj, opts.dry_run, &owner).await {
                        Err(e) if e.reason == "AlreadyExists" && attempt + 1 < MAX_RMW_ATTEMPTS => {
                            continue
                        }
                        Err(e) => return Err(e),
                        Ok(resp) => return Ok(with_warnings(resp, &warnings)),
                    }
                }
                Err(e) => return Err(e),
            };
            if rv_of(&config)?.is_some_and(|rv| rv != rev) {
                return Err(ApiError::conflict(res, name));
            }
            let mut merged = merge(Some(&live))?;
            let owner = Ownership::Applied(merged["metadata"].get("managedFields").cloned());
            match self
                .write_update(
                    res,
                    ns,
                    name,
                    &mut merged,
                    &live,
                    rev,
                    scope,
                    opts.dry_run,
                    &owner,
                )
                .await
            {
                Err(e) if e.reason == "Conflict" && attempt + 1 < MAX_RMW_ATTEMPTS => continue,
                Err(e) => return Err(e),
                Ok(saved) => {
                    let resp = json_response(StatusCode::OK, &saved);
                    return Ok(with_warnings(resp, &warnings));
                }
            }
        }
        Err(ApiError::conflict(res, name))
    }

    /// DELETE on an object: objects with finalizers get a deletionTimestamp and stay until
    /// the finalizers are removed; a namespace takes its contents with it.
    pub async fn delete(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        body: &[u8],
    ) -> ApiResult<Response> {
        let opts: Value = if body.is_empty() {
            json!({})
        } else {
            object::parse_body(body)?
        };
        let precondition_rv = opts["preconditions"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok());
        let propagation = opts["propagationPolicy"]
            .as_str()
            .unwrap_or("Background")
            .to_string();
        if !matches!(propagation.as_str(), "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "invalid propagationPolicy {propagation:?}: must be Background, Foreground or Orphan"
            )));
        }
        for _ in 0..MAX_RMW_ATTEMPTS {
            let (mut obj, rev) = self.read(res, ns, name).await?;
            if precondition_rv.is_some_and(|p| p != rev) {
                return Err(ApiError::conflict(res, name));
            }
            if res.plural == "namespaces" {
                self.delete_namespace_contents(name).await?;
            }
            let key = res.key(ns, name);
            if !finalizers(&obj).is_empty() {
                if object::meta_str(&obj, "deletionTimestamp").is_some() {
                    return Ok(json_response(StatusCode::OK, &obj));
                }
                let meta = object::metadata_mut(&mut obj);
                meta.insert("deletionTimestamp".into(), json!(now()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
                let mut annotations = meta
                    .get("annotations")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                annotations["skiff.dev/propagation-policy"] = json!(propagation);
                meta.insert("annotations".into(), annotations);
                match self.store.put_if(&key, encode(&obj), rev).await {
                    Ok(new_rev) => {
                        object::metadata_mut(&mut obj)
                            .insert("resourceVersion".into(), json!(new_rev.to_string()));
                        return Ok(json_response(StatusCode::OK, &obj));
                    }
                    Err(StoreError::RevisionMismatch) => continue,
                    Err(e) => return Err(store_error(e)),
                }
            }
            match self.store.delete_if(&key, rev).await {
                Ok(_) => return Ok(json_response(StatusCode::OK, &obj)),
                Err(StoreError::RevisionMismatch) => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(ApiError::conflict(res, name))
    }

    /// DELETE on a collection: deletes every object matching the selectors.
    pub async fn delete_collection(
        &self,
        res: &Resource,
        ns: Option<&str>,
        q: &Query,
    ) -> ApiResult<Response> {
        let selector = q.selector()?;
        let page = self
            .store
            .list(&res.prefix(ns), None, 0, 0)
            .await
            .map_err(store_error)?;
        let mut deleted = Vec::new();
        for item in &page.items {
            let obj = decode(item)?;
            if !selector.matches(&obj) {
                continue;
            }
            let name = object::meta_str(&obj, "name")
                .unwrap_or_default()
                .to_string();
            let obj_ns = object::meta_str(&obj, "namespace").map(str::to_string);
            match self.delete(res, obj_ns.as_deref(), &name, b"").await {
                Ok(_) => deleted.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let list = json!({
            "kind": res.list_kind(),
            "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": page.revision.to_string()},
            "items": deleted,
        });
        Ok(json_response(StatusCode::OK, &list))
    }

    /// Deletes every namespaced object in namespace `ns` (the namespace lifecycle that
    /// Kubernetes runs in a controller, done inline until controllers exist).
    async fn delete_namespace_contents(&self, ns: &str) -> ApiResult<()> {
        for res in RESOURCES.iter().filter(|r| r.namespaced) {
            let page = self
                .store
                .list(&res.prefix(Some(ns)), None, 0, 0)
                .await
                .map_err(store_error)?;
            for item in page.items {
                match self.store.delete_if(&item.key, item.mod_revision).await {
                    Ok(_) | Err(StoreError::RevisionMismatch) => {}
                    Err(e) => return Err(store_error(e)),
                }
            }
        }
        Ok(())
    }
}

/// An applied configuration must name its type and may name only this object.
fn check_apply_identity(
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    config: &mut Value,
) -> ApiResult<()> {
    for field in ["apiVersion", "kind"] {
        if config[field].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(format!(
                "invalid object: {field} must be set in an apply patch"
            )));
        }
    }
    object::check_type(res, config)?;
    let meta = object::metadata_mut(config);
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("name".into(), json!(name));
        }
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
    }
    match (meta.get("namespace").and_then(Value::as_str), ns) {
        (Some(given), Some(url)) if !given.is_empty() && given != url => {
            Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        _ => Ok(()),
    }
}

fn finalizers(obj: &Value) -> Vec<Value> {
    obj["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// An opaque continue token: the list revision and the next key.
fn encode_continue(rev: i64, next_key: &str) -> String {
    let raw = json!({"rv": rev, "start": next_key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = v["rv"].as_i64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((rev, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_collection() {
        let t = encode_continue(42, "/registry/pods/default/b\0");
        assert_eq!(
            decode_continue(&t, "/registry/pods/default/").unwrap(),
            (42, "/registry/pods/default/b\0".to_string())
        );
        assert!(decode_continue(&t, "/registry/secrets/").is_err());
        assert!(decode_continue("garbage", "/").is_err());
    }

    #[test]
    fn write_options_parse_and_refuse_unknown_values() {
        // kubectl sends dryRun in the query for writes and in the DeleteOptions body for
        // deletes; both must be honoured, or a "dry run" deletes for real.
        let q = Query::parse(Some("fieldValidation=Strict&dryRun=All"));
        assert_eq!(
            WriteOptions::from_query(&q, "CreateOptions", Some("kubectl/v1.32")).unwrap(),
            WriteOptions {
                validation: FieldValidation::Strict,
                dry_run: true,
                manager: "kubectl".into(),
                manager_given: false,
                force: false,
            }
        );
        assert_eq!(
            WriteOptions::from_query(
                &Query::parse(Some("fieldManager=me&force=true")),
                "PatchOptions",
                None
            )
            .unwrap(),
            WriteOptions {
                manager: "me".into(),
                manager_given: true,
                force: true,
                ..WriteOptions::default()
            }
        );
        let e = WriteOptions::from_query(&Query::parse(Some("dryRun=Some")), "PatchOptions", None)
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.starts_with(
                "PatchOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \"Some\""
            ),
            "{}",
            e.message
        );
        let none = Query::parse(None);
        assert_eq!(
            delete_dry_run(&none, br#"{"kind":"DeleteOptions","dryRun":["All"]}"#),
            Ok(true)
        );
        assert_eq!(
            delete_dry_run(&none, br#"{"propagationPolicy":"Background"}"#),
            Ok(false)
        );
        assert_eq!(delete_dry_run(&none, b""), Ok(false));
        assert_eq!(
            delete_dry_run(&Query::parse(Some("dryRun=All")), b""),
            Ok(true)
        );
        assert!(delete_dry_run(&none, br#"{"dryRun":["Some"]}"#).is_err());
    }

    #[test]
    fn warnings_are_escaped_into_valid_headers() {
        assert_eq!(
            warning_value("unknown field \"spec.foo\""),
            r#"299 - "unknown field \"spec.foo\"""#
        );
        assert_eq!(warning_value("a\\b\u{e9}\n"), r#"299 - "a\\b??""#);
    }

    #[test]
    fn uids_look_like_uuids() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        assert_ne!(u, new_uid());
    }
}
