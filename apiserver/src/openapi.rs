//! OpenAPI v3 documents of the served resources, free of I/O: one document per group-version
//! (what `/openapi/v3/api/v1` and `/openapi/v3/apis/<group>/<version>` serve) and the index
//! of them (`/openapi/v3`), each document named by a hash of its bytes.
//!
//! ```text
//!  resources.rs ──► k8s-openapi types (JsonSchema, `schemars` feature)
//!                        │ SchemaGenerator(openapi3): components.schemas, `allOf: [$ref]`
//!                        ▼
//!  + x-kubernetes-group-version-kind on each kind and its list
//!  + hand-built <Kind>List schemas (k8s-openapi's `List<T>` has no schema)
//!  + paths: collection / item / status URLs, get put post delete patch, each operation with
//!    its GVK and the `dryRun`, `fieldManager`, `fieldValidation` query parameters
//!                        ▼
//!  Catalog { per-GV bytes + SHA-512 hash } ──► server/openapi.rs (HTTP), fields.rs (checks)
//! ```
//!
//! kubectl reads these documents for three things: `--validate` looks for a PATCH operation
//! carrying the kind's GVK and a `fieldValidation` parameter and then lets the server check
//! fields; `kubectl explain` walks `components.schemas`; client-side `apply` would compute
//! strategic merge patches from the schemas if the PATCH request body listed
//! `application/strategic-merge-patch+json`. k8s-openapi's schemas lack the
//! `x-kubernetes-patch-merge-key` extensions such patches need, so that content type is not
//! listed and kubectl keeps using the Go types compiled into it, as it does without OpenAPI.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::JsonSchema;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::resources::{Resource, RESOURCES};

/// Where `$ref`s point: `#/components/schemas/<name>`.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// Schema name of `metav1.Status` (error responses).
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// Schema name of `metav1.DeleteOptions` (DELETE bodies).
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// Schema name of `metav1.Patch` (PATCH bodies, any shape).
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
/// Schema name of `metav1.ListMeta`.
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// Adds the schema of `res`'s kind (and everything it references) to `generator`; returns the
/// schema name, or `None` for a kind without a k8s-openapi type.
fn add_kind(generator: &mut SchemaGenerator, res: &Resource) -> Option<String> {
    fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> Option<String> {
        generator.subschema_for::<T>();
        Some(T::schema_name().into_owned())
    }
    match (res.group, res.version, res.kind) {
        ("", "v1", "Namespace") => add::<core::Namespace>(generator),
        ("", "v1", "Pod") => add::<core::Pod>(generator),
        ("", "v1", "Node") => add::<core::Node>(generator),
        ("", "v1", "Service") => add::<core::Service>(generator),
        ("", "v1", "Endpoints") => add::<core::Endpoints>(generator),
        ("", "v1", "ConfigMap") => add::<core::ConfigMap>(generator),
        ("", "v1", "Secret") => add::<core::Secret>(generator),
        ("", "v1", "Event") => add::<core::Event>(generator),
        ("", "v1", "ServiceAccount") => add::<core::ServiceAccount>(generator),
        ("apps", "v1", "Deployment") => add::<apps::Deployment>(generator),
        ("apps", "v1", "ReplicaSet") => add::<apps::ReplicaSet>(generator),
        ("apps", "v1", "DaemonSet") => add::<apps::DaemonSet>(generator),
        ("apps", "v1", "StatefulSet") => add::<apps::StatefulSet>(generator),
        ("batch", "v1", "Job") => add::<batch::Job>(generator),
        ("coordination.k8s.io", "v1", "Lease") => add::<coordination::Lease>(generator),
        _ => None,
    }
}

/// The schema name of a served resource's kind, e.g. `io.k8s.api.apps.v1.Deployment`.
///
/// # Panics
/// If a served resource has no k8s-openapi type: `RESOURCES` and `add_kind` must agree, which
/// a unit test checks.
pub fn schema_name(res: &Resource) -> &'static str {
    type Names = HashMap<(&'static str, &'static str, &'static str), String>;
    static NAMES: LazyLock<Names> = LazyLock::new(|| {
        let mut generator = generator();
        RESOURCES
            .iter()
            .map(|r| {
                let name = add_kind(&mut generator, r)
                    .unwrap_or_else(|| panic!("served kind {} has no schema", r.kind));
                ((r.group, r.version, r.kind), name)
            })
            .collect()
    });
    NAMES
        .get(&(res.group, res.version, res.kind))
        .unwrap_or_else(|| panic!("{} is not a served kind", res.kind))
}

fn generator() -> SchemaGenerator {
    SchemaGenerator::new(SchemaSettings::openapi3())
}

/// `{group, version, kind}` as Kubernetes writes it in `x-kubernetes-group-version-kind`.
fn gvk(res: &Resource, kind: &str) -> Value {
    json!({"group": res.group, "version": res.version, "kind": kind})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

/// `<Kind>List`, shaped like Kubernetes' own list schemas.
fn list_schema(res: &Resource, item: &str) -> Value {
    json!({
        "description": format!("{} is a list of {}.", res.list_kind(), res.kind),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            },
            "items": {
                "description": format!("Items is the list of {}.", res.kind),
                "type": "array",
                "items": {"allOf": [schema_ref(item)], "default": {}},
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string",
            },
            "metadata": {
                "description": "Standard list metadata.",
                "allOf": [schema_ref(LIST_META)],
                "default": {},
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(res, &res.list_kind())],
    })
}

/// All component schemas for `resources`: their kinds, lists, and what those reference, plus
/// `Status`, `DeleteOptions` and `Patch` for the operations.
fn schemas(resources: &[&Resource]) -> Map<String, Value> {
    let mut generator = generator();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::ListMeta>();
    let mut kinds = Vec::new();
    for res in resources {
        let name = add_kind(&mut generator, res)
            .unwrap_or_else(|| panic!("served kind {} has no schema", res.kind));
        kinds.push((*res, name));
    }
    let mut defs = generator.take_definitions(true);
    for (res, name) in kinds {
        let schema = defs
            .get_mut(&name)
            .and_then(Value::as_object_mut)
            .expect("a generated kind is among the definitions");
        schema.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([gvk(res, res.kind)]),
        );
        // k8s-openapi marks `metadata` required because its Rust field is not an Option;
        // Kubernetes does not (a create may name the object through `generateName`).
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|f| f != "metadata");
            if required.is_empty() {
                schema.remove("required");
            }
        }
        let list_name = format!("{name}List");
        defs.insert(list_name, list_schema(res, &name));
    }
    defs.insert(
        PATCH.into(),
        json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object",
        }),
    );
    defs
}

/// A query parameter, inline (kubectl's verifier reads inline parameters).
fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": schema,
        "uniqueItems": true,
    })
}

/// `dryRun`, `fieldManager` and `fieldValidation`: what writes accept and kubectl looks for.
fn write_params() -> Vec<Value> {
    vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
            json!({"type": "string"}),
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
            json!({"type": "string"}),
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
            json!({"type": "string", "enum": ["Ignore", "Strict", "Warn"]}),
        ),
    ]
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": json_content(schema_ref(schema))})
}

/// `readAppsV1NamespacedDeployment`, Kubernetes' operation id layout.
fn operation_id(verb: &str, res: &Resource, kind: &str) -> String {
    fn capitalized(s: &str) -> String {
        let mut cs = s.chars();
        cs.next()
            .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
            .unwrap_or_default()
    }
    let group = match res.group.split('.').next() {
        Some("") | None => "Core".to_string(),
        Some(first) => capitalized(first),
    };
    let version = capitalized(res.version);
    let scope = if res.namespaced { "Namespaced" } else { "" };
    format!("{verb}{group}{version}{scope}{kind}")
}

/// One operation with its action, GVK and parameters.
fn operation(res: &Resource, action: &str, description: String, id: String) -> Map<String, Value> {
    let mut op = Map::new();
    op.insert("description".into(), json!(description));
    op.insert("operationId".into(), json!(id));
    op.insert("x-kubernetes-action".into(), json!(action));
    op.insert("x-kubernetes-group-version-kind".into(), gvk(res, res.kind));
    op
}

/// The operations on a collection URL: list, create, deletecollection.
fn collection_item(res: &Resource, kind: &str) -> Value {
    let list = format!("{kind}List");
    let mut get = operation(
        res,
        "list",
        format!("list or watch objects of kind {}", res.kind),
        operation_id("list", res, res.kind),
    );
    get.insert(
        "responses".into(),
        json!({"200": response("OK", &list), "401": {"description": "Unauthorized"}}),
    );
    let mut post = operation(
        res,
        "post",
        format!("create a {}", res.kind),
        operation_id("create", res, res.kind),
    );
    post.insert("parameters".into(), json!(write_params()));
    post.insert(
        "requestBody".into(),
        json!({"content": {"*/*": {"schema": schema_ref(kind)}}, "required": true}),
    );
    post.insert(
        "responses".into(),
        json!({
            "200": response("OK", kind),
            "201": response("Created", kind),
            "202": response("Accepted", kind),
            "401": {"description": "Unauthorized"},
        }),
    );
    let mut delete = operation(
        res,
        "deletecollection",
        format!("delete collection of {}", res.kind),
        operation_id("deleteCollection", res, res.kind),
    );
    delete.insert(
        "requestBody".into(),
        json!({"content": {"*/*": {"schema": schema_ref(DELETE_OPTIONS)}}}),
    );
    delete.insert(
        "responses".into(),
        json!({"200": response("OK", STATUS), "401": {"description": "Unauthorized"}}),
    );
    json!({"get": get, "post": post, "delete": delete, "parameters": scope_params(res, false)})
}

/// The operations on an object URL (`status` selects the status subresource).
fn object_item(res: &Resource, kind: &str, status: bool) -> Value {
    let (what, suffix) = if status {
        (format!("status of the specified {}", res.kind), "Status")
    } else {
        (format!("the specified {}", res.kind), "")
    };
    let id = |verb: &str| operation_id(verb, res, &format!("{}{suffix}", res.kind));
    let ok = json!({"200": response("OK", kind), "401": {"description": "Unauthorized"}});
    let mut get = operation(res, "get", format!("read {what}"), id("read"));
    get.insert("responses".into(), ok.clone());
    let mut put = operation(res, "put", format!("replace {what}"), id("replace"));
    put.insert("parameters".into(), json!(write_params()));
    put.insert(
        "requestBody".into(),
        json!({"content": {"*/*": {"schema": schema_ref(kind)}}, "required": true}),
    );
    put.insert("responses".into(), ok.clone());
    let mut patch = operation(
        res,
        "patch",
        format!("partially update {what}"),
        id("patch"),
    );
    patch.insert("parameters".into(), json!(write_params()));
    let body = json!({"schema": schema_ref(PATCH)});
    patch.insert(
        "requestBody".into(),
        json!({
            "content": {
                "application/json-patch+json": body,
                "application/merge-patch+json": body,
            },
            "required": true,
        }),
    );
    patch.insert("responses".into(), ok);
    let mut item = json!({"get": get, "put": put, "patch": patch});
    if !status {
        let mut delete = operation(res, "delete", format!("delete {what}"), id("delete"));
        delete.insert("parameters".into(), json!([write_params()[0]]));
        delete.insert(
            "requestBody".into(),
            json!({"content": {"*/*": {"schema": schema_ref(DELETE_OPTIONS)}}}),
        );
        delete.insert(
            "responses".into(),
            json!({
                "200": response("OK", STATUS),
                "202": response("Accepted", STATUS),
                "401": {"description": "Unauthorized"},
            }),
        );
        item["delete"] = Value::Object(delete);
    }
    item["parameters"] = scope_params(res, true);
    item
}

fn scope_params(res: &Resource, named: bool) -> Value {
    let mut params = Vec::new();
    if named {
        params.push(path_param("name", &format!("name of the {}", res.kind)));
    }
    if res.namespaced {
        params.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    params.push(query_param(
        "pretty",
        "If 'true', then the output is pretty printed.",
        json!({"type": "string"}),
    ));
    Value::Array(params)
}

/// The URL paths of `res`: collection, object and (if served) status.
fn paths_of(res: &Resource, kind: &str, paths: &mut Map<String, Value>) {
    let base = if res.namespaced {
        format!(
            "{}/namespaces/{{namespace}}/{}",
            res.path_prefix(),
            res.plural
        )
    } else {
        format!("{}/{}", res.path_prefix(), res.plural)
    };
    paths.insert(base.clone(), collection_item(res, kind));
    paths.insert(format!("{base}/{{name}}"), object_item(res, kind, false));
    if res.has_status {
        paths.insert(
            format!("{base}/{{name}}/status"),
            object_item(res, kind, true),
        );
    }
}

/// The OpenAPI 3.0 document of one group-version (`group` is "" for the core group), or
/// `None` if nothing is served there.
pub fn document(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&Resource> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let schemas = schemas(&resources);
    let mut paths = Map::new();
    for res in &resources {
        paths_of(res, schema_name(res), &mut paths);
    }
    let (major, minor) = (
        crate::server::discovery::KUBE_MAJOR,
        crate::server::discovery::KUBE_MINOR,
    );
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{major}.{minor}.0")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The component schemas of every served kind, for field checks.
pub fn all_schemas() -> &'static Map<String, Value> {
    static ALL: LazyLock<Map<String, Value>> = LazyLock::new(|| {
        let all: Vec<&Resource> = RESOURCES.iter().collect();
        schemas(&all)
    });
    &ALL
}

/// One served document: its bytes and the hash that names them.
#[derive(Debug, Clone)]
pub struct Served {
    /// The JSON bytes.
    pub bytes: Vec<u8>,
    /// Upper-case hex SHA-512 of `bytes`, as Kubernetes names document versions.
    pub hash: String,
}

impl Served {
    fn new(doc: &Value) -> Served {
        let bytes = serde_json::to_vec(doc).expect("JSON values serialize");
        let hash = hash(&bytes);
        Served { bytes, hash }
    }
}

/// Upper-case hex SHA-512.
pub fn hash(bytes: &[u8]) -> String {
    Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Every group-version document keyed by its path under `/openapi/v3/` (`api/v1`,
/// `apis/apps/v1`), built once: the served types are fixed at compile time.
#[derive(Debug)]
pub struct Catalog {
    /// Documents by path.
    pub docs: BTreeMap<String, Served>,
}

impl Catalog {
    /// Builds the documents of every served group-version.
    pub fn build() -> Catalog {
        let mut docs = BTreeMap::new();
        let mut gvs: Vec<(&str, &str)> = Vec::new();
        for r in RESOURCES {
            if !gvs.contains(&(r.group, r.version)) {
                gvs.push((r.group, r.version));
            }
        }
        for (g, v) in gvs {
            let key = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            let doc = document(g, v).expect("a group-version of a served resource has a document");
            docs.insert(key, Served::new(&doc));
        }
        Catalog { docs }
    }

    /// The catalog of this build.
    pub fn get() -> &'static Catalog {
        static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::build);
        &CATALOG
    }

    /// `/openapi/v3`: each document's `serverRelativeURL`, carrying its hash.
    pub fn index(&self) -> Value {
        let paths: Map<String, Value> = self
            .docs
            .iter()
            .map(|(path, d)| {
                (
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", d.hash)}),
                )
            })
            .collect();
        json!({"paths": paths})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn every_served_resource_has_a_schema() {
        for res in RESOURCES {
            let name = schema_name(res);
            assert!(name.ends_with(&format!(".{}", res.kind)), "{name}");
            assert!(all_schemas().contains_key(name), "{name}");
        }
    }

    #[test]
    fn kinds_carry_their_gvk_and_reference_object_meta() {
        // kubectl explain finds a kind's schema by x-kubernetes-group-version-kind.
        let doc = document("apps", "v1").unwrap();
        let d = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        assert!(d["description"].as_str().unwrap().contains("Deployment"));
        assert!(d.get("required").is_none(), "metadata is not required");
        assert_eq!(
            d["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        let strategy = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentStrategy"];
        assert!(strategy["properties"]["rollingUpdate"].is_object());
        assert!(strategy["properties"]["type"].is_object());
        let list = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "DeploymentList"
        );
        // Every $ref resolves inside the same document.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"").skip(1) {
            let target = part.split('"').next().unwrap();
            let name = target.strip_prefix(REF_PREFIX).unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling {target}"
            );
        }
    }

    #[test]
    fn patch_operations_offer_field_validation_for_their_gvk() {
        // This is what kubectl's --validate=strict looks for before sending fieldValidation.
        let doc = document("", "v1").unwrap();
        let item = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["dryRun", "fieldManager", "fieldValidation"]);
        assert_eq!(patch["operationId"], "patchCoreV1NamespacedPod");
        assert!(patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none());
        for verb in ["get", "put", "delete"] {
            assert_eq!(item[verb]["x-kubernetes-group-version-kind"]["kind"], "Pod");
        }
        let ns = &doc["paths"]["/api/v1/namespaces/{name}"];
        assert_eq!(ns["patch"]["operationId"], "patchCoreV1Namespace");
        assert!(doc["paths"]["/api/v1/namespaces/{name}/status"]["put"].is_object());
        assert!(doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}/status"].is_null());
        assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"].is_object());
    }

    #[test]
    fn each_group_version_has_only_its_own_paths() {
        let apps = document("apps", "v1").unwrap();
        assert!(apps["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| p.starts_with("/apis/apps/v1/")));
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.core.v1.Pod")
            .is_none());
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.core.v1.PodTemplateSpec")
            .is_some());
        assert!(document("apps", "v2").is_none());
        let lease = find("coordination.k8s.io", "v1", "leases").unwrap();
        assert_eq!(
            operation_id("list", lease, "Lease"),
            "listCoordinationV1NamespacedLease"
        );
    }

    #[test]
    fn the_index_names_documents_by_a_hash_of_their_bytes() {
        let catalog = Catalog::get();
        let index = catalog.index();
        let core = &catalog.docs["api/v1"];
        assert_eq!(
            index["paths"]["api/v1"]["serverRelativeURL"],
            format!("/openapi/v3/api/v1?hash={}", core.hash)
        );
        assert!(index["paths"]["apis/apps/v1"].is_object());
        assert!(index["paths"]["apis/batch/v1"].is_object());
        assert_eq!(core.hash, hash(&core.bytes));
        assert_eq!(core.hash.len(), 128);
        assert_ne!(core.hash, catalog.docs["apis/apps/v1"].hash);
        assert_ne!(hash(b"{}"), hash(b"{ }"));
    }
}
