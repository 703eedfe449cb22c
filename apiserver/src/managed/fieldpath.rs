//! Field paths and field sets, free of I/O: which fields an object sets, spelled as
//! Kubernetes' `FieldsV1` (`f:<field>`, `k:<key JSON>` for an item of a list keyed by merge
//! keys, `v:<value JSON>` for an item of a set), plus the operations server-side apply needs
//! on an object at such a path (find, remove, merge).
//!
//! A [`FieldSet`] holds *member* paths. Leaves (scalars, atomic lists, empty structs) are
//! members; so are the nodes that exist as a whole and can be owned apart from their
//! children: maps (`labels`), and items of keyed lists and sets. Structs (`spec`) are not
//! members themselves, only their fields are. In `FieldsV1` a member that also has children
//! carries a `"."` entry.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::strategic::{strategy, ListStrategy};

/// One step of a path, spelled as a `FieldsV1` key.
pub type Element = String;
/// A path from the object's root.
pub type Path = Vec<Element>;
/// A set of member paths.
pub type FieldSet = BTreeSet<Path>;
/// The members of one object: a leaf's value, or `None` for a member that is a node (a map,
/// a list item).
pub type Flat<'a> = BTreeMap<Path, Option<&'a Value>>;

/// How the items of a list field are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// Items are objects identified by these fields (`containers` by `name`, container
    /// `ports` by `containerPort` and `protocol`).
    Keyed(Vec<&'static str>),
    /// Items are primitives forming a set (`finalizers`).
    Set,
    /// The list is one value, replaced as a whole.
    Atomic,
}

/// The list kind of field `field` under the named fields `names` (list indices omitted),
/// from the strategic-merge-patch keys of the built-in types. Ports are keyed by port and
/// protocol, as server-side apply keys them.
pub fn list_kind(names: &[String], field: &str) -> ListKind {
    match strategy(names, field) {
        ListStrategy::MergeKey("containerPort") => {
            ListKind::Keyed(vec!["containerPort", "protocol"])
        }
        ListStrategy::MergeKey("port") => ListKind::Keyed(vec!["port", "protocol"]),
        ListStrategy::MergeKey(k) => ListKind::Keyed(vec![k]),
        ListStrategy::PrimitiveSet => ListKind::Set,
        ListStrategy::Replace => ListKind::Atomic,
    }
}

/// The key fields of a keyed-list item, with Kubernetes' default for an absent `protocol`
/// (so an applied `containerPort: 80` names the same item as the stored, defaulted one).
/// `None` if the item is not an object or lacks a key field.
fn item_key(item: &Value, keys: &[&str]) -> Option<Map<String, Value>> {
    let obj = item.as_object()?;
    let mut out = Map::new();
    for &k in keys {
        match obj.get(k) {
            Some(v) if !v.is_null() => {
                out.insert(k.to_string(), v.clone());
            }
            _ if k == "protocol" => {
                out.insert(k.to_string(), Value::String("TCP".into()));
            }
            _ => return None,
        }
    }
    Some(out)
}

fn key_element(key: &Map<String, Value>) -> Element {
    // serde_json's Map keeps keys sorted, as Go's encoding of a map does.
    format!("k:{}", Value::Object(key.clone()))
}

/// Which part of an object a field set covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but identity, server-owned metadata and (for resources with a status
    /// subresource) `status`.
    Main {
        /// Whether `status` belongs to the status subresource (and is left out).
        status_apart: bool,
    },
    /// Only `status`.
    Status,
}

/// Metadata fields the server owns or that name the object; never part of a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Schema lookups for one object type.
pub struct Schema<'s> {
    schemas: &'s Map<String, Value>,
    root: Option<&'s Value>,
}

impl<'s> Schema<'s> {
    /// The schema named `root` in `schemas` (unknown names walk without a schema: every
    /// object is then a struct).
    pub fn new(schemas: &'s Map<String, Value>, root: &str) -> Schema<'s> {
        Schema {
            schemas,
            root: schemas.get(root),
        }
    }

    fn resolve(&self, s: Option<&'s Value>) -> Option<&'s Value> {
        crate::fields::resolve(self.schemas, s?)
    }

    /// Whether `schema` describes a map (string keys to values) rather than a struct.
    fn is_map(&self, schema: Option<&'s Value>) -> bool {
        self.resolve(schema).is_some_and(|s| {
            s.get("properties").is_none()
                && s.get("additionalProperties").is_some_and(Value::is_object)
        })
    }

    /// The schema of field or map key `key` of an object with schema `schema`.
    fn child(&self, schema: Option<&'s Value>, key: &str) -> Option<&'s Value> {
        let s = self.resolve(schema)?;
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            return props.get(key);
        }
        s.get("additionalProperties").filter(|a| a.is_object())
    }

    /// The schema of an item of a list with schema `schema`.
    fn item(&self, schema: Option<&'s Value>) -> Option<&'s Value> {
        self.resolve(schema)?.get("items")
    }
}

/// The members of `obj` within `part`, each with its leaf value.
pub fn flatten<'a>(obj: &'a Value, schema: &Schema<'_>, part: Part) -> Flat<'a> {
    let mut out = Flat::new();
    let Some(root) = obj.as_object() else {
        return out;
    };
    for (k, v) in root {
        let wanted = match part {
            Part::Status => k == "status",
            Part::Main { status_apart } => {
                let identity = matches!(k.as_str(), "apiVersion" | "kind");
                let subresource_owned = status_apart && k == "status";
                !(identity || subresource_owned)
            }
        };
        if !wanted || v.is_null() {
            continue;
        }
        let mut path = vec![format!("f:{k}")];
        let mut names = vec![k.clone()];
        let child = schema.child(schema.root, k);
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for (mk, mv) in meta
                    .iter()
                    .filter(|(mk, _)| !SERVER_METADATA.contains(&mk.as_str()))
                {
                    path.push(format!("f:{mk}"));
                    names.push(mk.clone());
                    walk(
                        schema,
                        schema.child(child, mk),
                        mv,
                        &mut path,
                        &mut names,
                        &mut out,
                    );
                    path.pop();
                    names.pop();
                }
            }
            continue;
        }
        walk(schema, child, v, &mut path, &mut names, &mut out);
    }
    out
}

fn walk<'a, 's>(
    schema: &Schema<'s>,
    node: Option<&'s Value>,
    value: &'a Value,
    path: &mut Path,
    names: &mut Vec<String>,
    out: &mut Flat<'a>,
) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            let is_map = schema.is_map(node);
            if is_map {
                out.insert(path.clone(), None);
            }
            let before = out.len();
            for (k, v) in map {
                path.push(format!("f:{k}"));
                names.push(k.clone());
                walk(schema, schema.child(node, k), v, path, names, out);
                path.pop();
                names.pop();
            }
            if !is_map && out.len() == before {
                // An empty struct is a value of its own (`securityContext: {}`).
                out.insert(path.clone(), Some(value));
            }
        }
        Value::Array(items) => {
            let field = names.last().cloned().unwrap_or_default();
            let parents = &names[..names.len().saturating_sub(1)];
            match list_kind(parents, &field) {
                ListKind::Keyed(keys) => {
                    let item_schema = schema.item(node);
                    let keyed: Option<Vec<_>> = items.iter().map(|i| item_key(i, &keys)).collect();
                    let Some(keyed) = keyed else {
                        // An item without its key cannot be tracked alone: the list is one value.
                        out.insert(path.clone(), Some(value));
                        return;
                    };
                    for (item, key) in items.iter().zip(keyed) {
                        path.push(key_element(&key));
                        out.insert(path.clone(), None);
                        if let Value::Object(fields) = item {
                            for (k, v) in fields {
                                path.push(format!("f:{k}"));
                                names.push(k.clone());
                                walk(schema, schema.child(item_schema, k), v, path, names, out);
                                path.pop();
                                names.pop();
                            }
                        }
                        path.pop();
                    }
                }
                ListKind::Set => {
                    for item in items {
                        path.push(format!("v:{item}"));
                        out.insert(path.clone(), Some(item));
                        path.pop();
                    }
                }
                ListKind::Atomic => {
                    out.insert(path.clone(), Some(value));
                }
            }
        }
        _ => {
            out.insert(path.clone(), Some(value));
        }
    }
}

/// The paths whose value differs between `a` and `b` (added, removed or changed).
pub fn changed(a: &Flat<'_>, b: &Flat<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    for (p, v) in a {
        if b.get(p) != Some(v) {
            out.insert(p.clone());
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            out.insert(p.clone());
        }
    }
    out
}

/// `set` as `FieldsV1` JSON.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn emit(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), emit(c));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let mut n = &mut root;
        for e in path {
            n = n.children.entry(e.clone()).or_default();
        }
        n.member = true;
    }
    emit(&root)
}

/// The set a `FieldsV1` JSON value describes (anything malformed is skipped).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn read(v: &Value, path: &mut Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, c) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            read(c, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    read(v, &mut Vec::new(), &mut out);
    out.remove(&Vec::new());
    out
}

/// A path as Kubernetes prints it in a conflict: `.spec.containers[name="web"].image`.
pub fn display(path: &[Element]) -> String {
    let mut s = String::new();
    for e in path {
        if let Some(f) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = e.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = e.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else {
            s.push_str(&format!("[{e}]"));
        }
    }
    s
}

/// The index of the item of `items` that element `e` (`k:` or `v:`) names.
fn find_item(items: &[Value], e: &str) -> Option<usize> {
    if let Some(k) = e.strip_prefix("k:") {
        let want: Map<String, Value> = serde_json::from_str(k).ok()?;
        let keys: Vec<&str> = want.keys().map(String::as_str).collect();
        return items
            .iter()
            .position(|i| item_key(i, &keys).as_ref() == Some(&want));
    }
    let want: Value = serde_json::from_str(e.strip_prefix("v:")?).ok()?;
    items.iter().position(|i| *i == want)
}

/// Removes the node at `path` from `obj`; false if there is none.
pub fn remove(obj: &mut Value, path: &[Element]) -> bool {
    let Some((last, parent_path)) = path.split_last() else {
        return false;
    };
    let mut node = obj;
    for e in parent_path {
        let next = match node {
            Value::Object(m) => e.strip_prefix("f:").and_then(|f| m.get_mut(f)),
            Value::Array(items) => find_item(items, e).and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match node {
        Value::Object(m) => last.strip_prefix("f:").and_then(|f| m.remove(f)).is_some(),
        Value::Array(items) => match find_item(items, last) {
            Some(i) => {
                items.remove(i);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Removes from `obj` every path of `dropped` that has no path of `keep` at or under it,
/// deepest first, so a map or list item goes only when nothing in it is still owned.
pub fn prune(obj: &mut Value, dropped: &FieldSet, keep: &FieldSet) {
    let mut paths: Vec<&Path> = dropped.iter().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in paths {
        let kept_under = keep
            .range(p.clone()..)
            .next()
            .is_some_and(|k| k.starts_with(p));
        if !kept_under {
            remove(obj, p);
        }
    }
}

/// Merges an applied configuration into `live`: objects field by field, keyed lists item by
/// item (new items appended), sets by union, everything else replaced. Nulls in the
/// configuration are skipped.
pub fn merge(live: &mut Value, config: &Value) {
    merge_at(live, config, &mut Vec::new());
}

fn merge_at(live: &mut Value, config: &Value, names: &mut Vec<String>) {
    let (Value::Object(l), Value::Object(c)) = (&mut *live, config) else {
        *live = config.clone();
        return;
    };
    for (k, cv) in c {
        if cv.is_null() {
            continue;
        }
        names.push(k.clone());
        match (l.get_mut(k), cv) {
            (Some(lv @ Value::Object(_)), Value::Object(_)) => merge_at(lv, cv, names),
            (Some(Value::Array(litems)), Value::Array(citems)) => {
                merge_list(litems, citems, names);
            }
            _ => {
                l.insert(k.clone(), cv.clone());
            }
        }
        names.pop();
    }
}

fn merge_list(live: &mut Vec<Value>, config: &[Value], names: &mut Vec<String>) {
    let field = names.last().cloned().unwrap_or_default();
    let parents = names[..names.len() - 1].to_vec();
    match list_kind(&parents, &field) {
        ListKind::Keyed(keys) => {
            let keyed_live: Option<Vec<_>> = live.iter().map(|i| item_key(i, &keys)).collect();
            let keyed_config: Option<Vec<_>> = config.iter().map(|i| item_key(i, &keys)).collect();
            let (Some(live_keys), Some(config_keys)) = (keyed_live, keyed_config) else {
                *live = config.to_vec();
                return;
            };
            let mut live_keys = live_keys;
            for (citem, ckey) in config.iter().zip(config_keys) {
                match live_keys.iter().position(|k| *k == ckey) {
                    Some(i) => merge_at(&mut live[i], citem, names),
                    None => {
                        live.push(citem.clone());
                        live_keys.push(ckey);
                    }
                }
            }
        }
        ListKind::Set => {
            for c in config {
                if !live.contains(c) {
                    live.push(c.clone());
                }
            }
        }
        ListKind::Atomic => *live = config.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_schema() -> Schema<'static> {
        let res = crate::resources::find("apps", "v1", "deployments").unwrap();
        Schema::new(
            crate::openapi::all_schemas(),
            crate::openapi::schema_name(res),
        )
    }

    fn p(elems: &[&str]) -> Path {
        elems.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn members_of_a_deployment() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "uid": "u", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "template": {"spec": {
                "containers": [{"name": "nginx", "image": "nginx:1", "args": ["a", "b"],
                                "ports": [{"containerPort": 80}], "securityContext": {}}]}}},
            "status": {"replicas": 1}});
        let flat = flatten(&d, &deployment_schema(), Part::Main { status_apart: true });
        let set: FieldSet = flat.keys().cloned().collect();
        let c = r#"k:{"name":"nginx"}"#;
        let expect: FieldSet = [
            p(&["f:metadata", "f:labels"]),
            p(&["f:metadata", "f:labels", "f:app"]),
            p(&["f:spec", "f:replicas"]),
            p(&["f:spec", "f:template", "f:spec", "f:containers", c]),
            p(&[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                c,
                "f:name",
            ]),
            p(&[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                c,
                "f:image",
            ]),
            p(&[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                c,
                "f:args",
            ]),
            p(&[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                c,
                "f:ports",
                r#"k:{"containerPort":80,"protocol":"TCP"}"#,
            ]),
            p(&[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                c,
                "f:ports",
                r#"k:{"containerPort":80,"protocol":"TCP"}"#,
                "f:containerPort",
            ]),
            p(&[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                c,
                "f:securityContext",
            ]),
        ]
        .into_iter()
        .collect();
        assert_eq!(set, expect);
        let status = flatten(&d, &deployment_schema(), Part::Status);
        assert_eq!(
            status.keys().cloned().collect::<Vec<_>>(),
            vec![p(&["f:status", "f:replicas"])]
        );
    }

    #[test]
    fn fields_v1_round_trips_with_dot_for_member_nodes() {
        let set: FieldSet = [
            p(&["f:metadata", "f:labels"]),
            p(&["f:metadata", "f:labels", "f:app"]),
            p(&["f:spec", "f:replicas"]),
        ]
        .into_iter()
        .collect();
        let v = to_fields_v1(&set);
        assert_eq!(
            v,
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}})
        );
        assert_eq!(from_fields_v1(&v), set);
    }

    #[test]
    fn display_paths_as_kubernetes_does() {
        assert_eq!(
            display(&p(&[
                "f:spec",
                "f:containers",
                r#"k:{"name":"web"}"#,
                "f:image"
            ])),
            r#".spec.containers[name="web"].image"#
        );
        assert_eq!(
            display(&p(&["f:metadata", "f:finalizers", r#"v:"a""#])),
            r#".metadata.finalizers[="a"]"#
        );
    }

    #[test]
    fn merge_keyed_lists_and_prune_unowned() {
        let mut live = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "b", "image": "b:1"}]}, "metadata": {"finalizers": ["x"]}});
        merge(
            &mut live,
            &json!({"spec": {"containers": [{"name": "a", "image": "a:2", "ports": [{"containerPort": 80}]},
                                          {"name": "c", "image": "c:1"}]},
                    "metadata": {"finalizers": ["y"]}}),
        );
        assert_eq!(live["spec"]["containers"][0]["image"], "a:2");
        assert_eq!(
            live["spec"]["containers"][0]["ports"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(live["spec"]["containers"][2]["name"], "c");
        assert_eq!(live["metadata"]["finalizers"], json!(["x", "y"]));
        let b = r#"k:{"name":"b"}"#;
        let remove: FieldSet = [
            p(&["f:spec", "f:containers", b]),
            p(&["f:spec", "f:containers", b, "f:image"]),
            p(&["f:spec", "f:containers", r#"k:{"name":"a"}"#]),
        ]
        .into_iter()
        .collect();
        let keep: FieldSet = [p(&[
            "f:spec",
            "f:containers",
            r#"k:{"name":"a"}"#,
            "f:image",
        ])]
        .into_iter()
        .collect();
        prune(&mut live, &remove, &keep);
        let names: Vec<&str> = live["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["a", "c"],
            "b is gone; a stays because its image is still owned"
        );
    }
}
