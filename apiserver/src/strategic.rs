//! Strategic merge patch (`application/strategic-merge-patch+json`), free of I/O: a JSON
//! merge patch in which lists of objects of the built-in types merge element by element on
//! their merge key (containers and volumes by `name`, container ports by `containerPort`,
//! ...), with the directives kubectl sends: `$patch` (replace / delete / merge),
//! `$setElementOrder/<list>`, `$retainKeys` and `$deleteFromPrimitiveList/<list>`.

use serde_json::{Map, Value};

use crate::status::{ApiError, ApiResult};

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// Objects merged by this key.
    MergeKey(&'static str),
    /// A set of primitives (e.g. `finalizers`): union.
    PrimitiveSet,
    /// Replaced as a whole (JSON merge patch behaviour).
    Replace,
}

/// The merge strategy of list field `field` whose parent object sits at `path` (field names
/// from the root, list indices omitted). Mirrors the `patchMergeKey`/`patchStrategy` tags of
/// the Kubernetes types served here.
pub(crate) fn strategy(path: &[String], field: &str) -> ListStrategy {
    let parent = path.last().map(String::as_str).unwrap_or("");
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => ListStrategy::MergeKey("name"),
        "ports"
            if matches!(
                parent,
                "containers" | "initContainers" | "ephemeralContainers"
            ) =>
        {
            ListStrategy::MergeKey("containerPort")
        }
        "ports" if parent == "spec" => ListStrategy::MergeKey("port"),
        "volumeMounts" => ListStrategy::MergeKey("mountPath"),
        "volumeDevices" => ListStrategy::MergeKey("devicePath"),
        "conditions" => ListStrategy::MergeKey("type"),
        "ownerReferences" => ListStrategy::MergeKey("uid"),
        "hostAliases" => ListStrategy::MergeKey("ip"),
        "topologySpreadConstraints" => ListStrategy::MergeKey("topologyKey"),
        "finalizers" => ListStrategy::PrimitiveSet,
        _ => ListStrategy::Replace,
    }
}

/// Applies a strategic merge patch to `original`.
pub fn apply(original: &Value, patch: &Value) -> ApiResult<Value> {
    let Value::Object(p) = patch else {
        return Err(ApiError::bad_request(
            "a strategic merge patch must be a JSON object",
        ));
    };
    let mut out = original.clone();
    if !out.is_object() {
        out = Value::Object(Map::new());
    }
    merge_object(&mut out, p, &mut Vec::new())?;
    Ok(out)
}

fn merge_object(
    target: &mut Value,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> ApiResult<()> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut clean = patch.clone();
            clean.remove("$patch");
            *target = Value::Object(strip_directives(&clean));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown $patch directive {other:?}"
            )))
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| ApiError::bad_request("$retainKeys must be a list of field names"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        target
            .as_object_mut()
            .expect("object")
            .retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, pv) in patch {
        if key == "$patch" || key == "$retainKeys" {
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = pv.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(list) {
                items.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            // Applied after the list itself is merged (below).
            let _ = list;
            continue;
        }
        let obj = target.as_object_mut().expect("object");
        if pv.is_null() {
            obj.remove(key);
            continue;
        }
        match pv {
            Value::Object(po) => {
                let mut child = obj.remove(key).unwrap_or(Value::Null);
                path.push(key.clone());
                merge_object(&mut child, po, path)?;
                path.pop();
                if !child.is_null() {
                    obj.insert(key.clone(), child);
                }
            }
            Value::Array(pa) => {
                let current = obj.remove(key);
                let merged = merge_list(current, pa, path, key)?;
                obj.insert(key.clone(), merged);
            }
            other => {
                obj.insert(key.clone(), other.clone());
            }
        }
    }
    for (key, order) in patch {
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            let obj = target.as_object_mut().expect("object");
            if let Some(Value::Array(items)) = obj.get_mut(list) {
                let strat = strategy(path, list);
                reorder(
                    items,
                    order.as_array().map(Vec::as_slice).unwrap_or(&[]),
                    strat,
                );
            }
        }
    }
    Ok(())
}

fn merge_list(
    current: Option<Value>,
    patch: &[Value],
    path: &mut Vec<String>,
    field: &str,
) -> ApiResult<Value> {
    // A `{"$patch": "replace"}` element replaces the whole list with the other elements.
    let replace = patch
        .iter()
        .any(|v| v.get("$patch").and_then(Value::as_str) == Some("replace"));
    let strat = strategy(path, field);
    let mut items = match current {
        Some(Value::Array(a)) if !replace => a,
        _ => Vec::new(),
    };
    match strat {
        ListStrategy::Replace => {
            return Ok(Value::Array(
                patch
                    .iter()
                    .filter(|v| v.get("$patch").is_none())
                    .map(|v| match v {
                        Value::Object(o) => Value::Object(strip_directives(o)),
                        v => v.clone(),
                    })
                    .collect(),
            ))
        }
        ListStrategy::PrimitiveSet => {
            for v in patch.iter().filter(|v| v.get("$patch").is_none()) {
                if !items.contains(v) {
                    items.push(v.clone());
                }
            }
        }
        ListStrategy::MergeKey(mk) => {
            path.push(field.to_string());
            for pv in patch {
                let Value::Object(po) = pv else {
                    path.pop();
                    return Err(ApiError::bad_request(format!(
                        "{field}: expected objects with merge key {mk:?} in the patch list"
                    )));
                };
                if po.get("$patch").and_then(Value::as_str) == Some("replace") && po.len() == 1 {
                    continue;
                }
                let Some(k) = po.get(mk) else {
                    path.pop();
                    return Err(ApiError::bad_request(format!(
                        "{field}: a patch element is missing its merge key {mk:?}"
                    )));
                };
                let pos = items.iter().position(|it| it.get(mk) == Some(k));
                if po.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        items.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => merge_object(&mut items[i], po, path)?,
                    None => items.push(Value::Object(strip_directives(po))),
                }
            }
            path.pop();
        }
    }
    Ok(Value::Array(items))
}

/// Orders `items` as `order` lists them (by merge key, or by value for primitives); items
/// not named keep their relative order after the named ones.
fn reorder(items: &mut Vec<Value>, order: &[Value], strat: ListStrategy) {
    let key_of = |v: &Value| -> Value {
        match strat {
            ListStrategy::MergeKey(mk) => v.get(mk).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(&key_of).collect();
    let mut named: Vec<Value> = Vec::new();
    for w in &wanted {
        if let Some(i) = items.iter().position(|it| key_of(it) == *w) {
            named.push(items.remove(i));
        }
    }
    named.append(items);
    *items = named;
}

fn strip_directives(o: &Map<String, Value>) -> Map<String, Value> {
    o.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| {
            let v = match v {
                Value::Object(inner) => Value::Object(strip_directives(inner)),
                v => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "sidecar", "image": "side:1"}
        ]}}}})
    }

    #[test]
    fn containers_merge_by_name_and_ports_by_container_port() {
        let p = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:2", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}
        ]}}}});
        let out = apply(&deploy(), &p).unwrap();
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().unwrap().len(), 2, "the sidecar is kept");
        assert_eq!(cs[0]["image"], "app:2");
        assert_eq!(
            cs[0]["env"].as_array().unwrap().len(),
            2,
            "untouched lists stay"
        );
        assert_eq!(
            cs[0]["ports"][0],
            json!({"containerPort": 80, "name": "http", "protocol": "TCP"})
        );
        assert_eq!(cs[0]["ports"][1]["containerPort"], 443);
    }

    #[test]
    fn directives() {
        // Delete one container, one env entry, and set the order.
        let p = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [
            {"name": "sidecar", "$patch": "delete"},
            {"name": "app", "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}],
             "$setElementOrder/env": [{"name": "C"}, {"name": "B"}]}
        ]}}}});
        let out = apply(&deploy(), &p).unwrap();
        let cs = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(cs.len(), 1);
        let env: Vec<&str> = cs[0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(env, vec!["C", "B"]);
        assert!(cs[0].get("$setElementOrder/env").is_none());

        // $patch: replace on a map and on a list; null deletes a field.
        let p = json!({"spec": {"replicas": null, "template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}}});
        let out = apply(&deploy(), &p).unwrap();
        assert!(out["spec"].get("replicas").is_none());
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );
        let out = apply(
            &json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            &json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));

        // $retainKeys and primitive lists.
        let out = apply(
            &json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        ).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let out = apply(
            &json!({"metadata": {"finalizers": ["a", "b"]}}),
            &json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
        ).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced_and_bad_patches_refused() {
        let out = apply(
            &json!({"spec": {"args": ["a", "b"]}}),
            &json!({"spec": {"args": ["c"]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["args"], json!(["c"]));
        let e = apply(
            &deploy(),
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
        assert!(apply(&deploy(), &json!([1])).is_err());
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let out = apply(
            &svc,
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
        );
    }
}
