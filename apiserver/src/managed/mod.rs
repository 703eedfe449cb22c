//! Field ownership (`metadata.managedFields`) and server-side apply, free of I/O.
//!
//! Every write records which manager set which fields, as Kubernetes' field manager does:
//! an update (create, PUT, non-apply PATCH) gives its manager the fields it changed and takes
//! them from everyone else; an apply (`application/apply-patch+yaml`) declares the manager's
//! whole intent: the fields in the configuration become the manager's, fields it applied
//! before and left out now are removed unless someone else owns them, and setting a field
//! another manager owns to a different value is a conflict (409) unless `force=true`, which
//! takes the field over.

pub mod fieldpath;

use serde_json::{json, Value};

use crate::object::UpdateScope;
use crate::resources::Resource;
use crate::status::ApiError;
use fieldpath::{FieldSet, Flat, Part, Path, Schema};

/// `operation` of an entry.
const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The manager's name (`kubectl`, `kubectl-client-side-apply`, ...).
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version the fields were set through.
    pub api_version: String,
    /// When the manager last changed its fields (RFC 3339).
    pub time: String,
    /// `status` or `scale` for writes through a subresource.
    pub subresource: Option<String>,
    /// The fields the manager owns.
    pub fields: FieldSet,
}

impl Entry {
    fn is(&self, who: &Actor<'_>, operation: &str) -> bool {
        self.manager == who.manager
            && self.operation == operation
            && self.subresource.as_deref() == who.subresource
            && (operation == APPLY || self.api_version == who.api_version)
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fieldpath::to_fields_v1(&self.fields),
        });
        if let Some(s) = &self.subresource {
            v["subresource"] = json!(s);
        }
        v
    }

    fn from_json(v: &Value) -> Option<Entry> {
        Some(Entry {
            manager: v.get("manager")?.as_str()?.to_string(),
            operation: v.get("operation")?.as_str()?.to_string(),
            api_version: v["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: v["time"].as_str().unwrap_or_default().to_string(),
            subresource: v["subresource"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            fields: fieldpath::from_fields_v1(v.get("fieldsV1")?),
        })
    }
}

/// Who is writing: the field manager of the request.
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    /// `?fieldManager=`, or the first word of the User-Agent.
    pub manager: &'a str,
    /// The resource's API version.
    pub api_version: String,
    /// The subresource written through (`status`, `scale`), if any.
    pub subresource: Option<&'a str>,
    /// Now, RFC 3339.
    pub now: &'a str,
}

/// The default field manager of a request without `fieldManager`: the User-Agent up to its
/// first `/` (`kubectl/v1.32.0 (linux/amd64) ...` is `kubectl`), as Kubernetes names it.
pub fn manager_from_user_agent(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("").trim();
    let name = ua.split('/').next().unwrap_or("").trim();
    if name.is_empty() {
        "unknown".into()
    } else {
        name.chars().take(128).collect()
    }
}

/// The entries recorded on `obj` (malformed entries are dropped).
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| a.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Writes `entries` to `obj`: Apply entries first, then by time and manager, as Kubernetes
/// orders them; entries that own nothing are dropped.
fn set_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (a.operation != APPLY, &a.time, &a.manager).cmp(&(
            b.operation != APPLY,
            &b.time,
            &b.manager,
        ))
    });
    let meta = crate::object::metadata_mut(obj);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

fn schema(res: &Resource) -> Schema<'static> {
    Schema::new(
        crate::openapi::all_schemas(),
        crate::openapi::schema_name(res),
    )
}

fn part(res: &Resource, scope: UpdateScope) -> Part {
    match scope {
        UpdateScope::Status => Part::Status,
        UpdateScope::Main => Part::Main {
            status_apart: res.has_status,
        },
    }
}

/// Records an update by `who` from `old` (`None` for a create) to `new` in `new`'s
/// `managedFields`. A request that changed `managedFields` itself sets them (that is how
/// clients reset or migrate ownership); otherwise the stored ones are carried on.
pub fn track_update(
    res: &Resource,
    scope: UpdateScope,
    old: Option<&Value>,
    new: &mut Value,
    who: &Actor<'_>,
) {
    let sent_own = match (new["metadata"].get("managedFields"), old) {
        (Some(sent), Some(o)) => Some(sent) != o["metadata"].get("managedFields"),
        (sent, None) => sent.is_some(),
        (None, Some(_)) => false,
    };
    let base = if sent_own {
        entries(new)
    } else {
        old.map(entries).unwrap_or_default()
    };
    let schema = schema(res);
    let part = part(res, scope);
    let empty = Value::Null;
    let before = fieldpath::flatten(old.unwrap_or(&empty), &schema, part);
    let after = fieldpath::flatten(new, &schema, part);
    let changed = fieldpath::changed(&before, &after);
    let mut list = base;
    if !changed.is_empty() {
        for e in list.iter_mut() {
            e.fields.retain(|p| !changed.contains(p));
        }
        let gained: FieldSet = changed
            .into_iter()
            .filter(|p| after.contains_key(p))
            .collect();
        let mine = match list.iter().position(|e| e.is(who, UPDATE)) {
            Some(i) => &mut list[i],
            None => {
                list.push(Entry {
                    manager: who.manager.to_string(),
                    operation: UPDATE.into(),
                    api_version: who.api_version.clone(),
                    time: who.now.to_string(),
                    subresource: who.subresource.map(str::to_string),
                    fields: FieldSet::new(),
                });
                list.last_mut().expect("just pushed")
            }
        };
        mine.fields.extend(gained);
        mine.time = who.now.to_string();
    }
    set_entries(new, list);
}

/// One field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner, as Kubernetes prints it: `"kubectl-edit" using apps/v1` for an update,
    /// `"other"` for an apply.
    pub owner: String,
    /// The field, as Kubernetes prints it: `.spec.replicas`.
    pub field: String,
}

/// The 409 an apply with conflicts gets, worded as Kubernetes words it.
pub fn conflict_error(res: &Resource, name: &str, conflicts: &[Conflict]) -> ApiError {
    let n = conflicts.len();
    let mut by_owner: Vec<(&str, Vec<&str>)> = Vec::new();
    for c in conflicts {
        match by_owner.iter_mut().find(|(o, _)| *o == c.owner) {
            Some((_, fields)) => fields.push(&c.field),
            None => by_owner.push((&c.owner, vec![&c.field])),
        }
    }
    let mut message = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let sections: Vec<String> = by_owner
        .iter()
        .map(|(owner, fields)| match fields.as_slice() {
            [one] => format!("conflict with {owner}: {one}"),
            many => format!(
                "conflicts with {owner}:\n{}",
                many.iter()
                    .map(|f| format!("- {f}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        })
        .collect();
    message.push_str(&sections.join("\n"));
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.owner), "field": c.field}))
        .collect();
    ApiError {
        message,
        details: Some(
            json!({"name": name, "group": res.group, "kind": res.plural, "causes": causes}),
        ),
        ..ApiError::conflict(res, name)
    }
}

fn owner_label(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if let Some(sub) = &e.subresource {
        s.push_str(&format!(" with subresource {sub:?}"));
    }
    if e.operation == UPDATE {
        s.push_str(&format!(" using {}", e.api_version));
    }
    s
}

/// Applies configuration `config` by `who` to `live` (`None` when the object does not exist
/// yet). Returns the object to store, with its `managedFields`, or the conflicts.
pub fn apply(
    res: &Resource,
    scope: UpdateScope,
    live: Option<&Value>,
    config: &Value,
    who: &Actor<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let schema = schema(res);
    let part = part(res, scope);
    let config_flat = fieldpath::flatten(config, &schema, part);
    let config_set: FieldSet = config_flat.keys().cloned().collect();
    let empty = Value::Null;
    let live_flat = fieldpath::flatten(live.unwrap_or(&empty), &schema, part);
    let mut list = live.map(entries).unwrap_or_default();

    let conflicts = conflicts_of(&list, who, &config_flat, &live_flat);
    if !conflicts.is_empty() && !force {
        return Err(conflicts
            .iter()
            .map(|(i, p)| Conflict {
                owner: owner_label(&list[*i]),
                field: fieldpath::display(p),
            })
            .collect());
    }
    for (i, p) in &conflicts {
        list[*i].fields.remove(p);
    }

    let mut merged = match live {
        Some(l) => l.clone(),
        None => {
            let mut skeleton = json!({"metadata": {}});
            for k in ["apiVersion", "kind"] {
                if let Some(v) = config.get(k) {
                    skeleton[k] = v.clone();
                }
            }
            skeleton
        }
    };
    let mut config_part = config.clone();
    if scope == UpdateScope::Main && res.has_status {
        config_part.as_object_mut().map(|o| o.remove("status"));
    }
    fieldpath::merge(&mut merged, &config_part);

    // Fields this manager applied before and no longer applies go, unless owned elsewhere.
    let mine = list.iter().position(|e| e.is(who, APPLY));
    let previous = mine.map(|i| list[i].fields.clone()).unwrap_or_default();
    let mut keep = config_set.clone();
    for (i, e) in list.iter().enumerate() {
        if Some(i) != mine {
            keep.extend(e.fields.iter().cloned());
        }
    }
    let dropped: FieldSet = previous.difference(&keep).cloned().collect();
    fieldpath::prune(&mut merged, &dropped, &keep);

    let entry = Entry {
        manager: who.manager.to_string(),
        operation: APPLY.into(),
        api_version: config["apiVersion"]
            .as_str()
            .unwrap_or(&who.api_version)
            .to_string(),
        time: who.now.to_string(),
        subresource: who.subresource.map(str::to_string),
        fields: config_set,
    };
    match mine {
        Some(i) => list[i] = entry,
        None => list.push(entry),
    }
    set_entries(&mut merged, list);
    Ok(merged)
}

/// The (entry index, field) pairs where another manager owns a field the configuration
/// sets to a value different from the live one.
fn conflicts_of(
    list: &[Entry],
    who: &Actor<'_>,
    config: &Flat<'_>,
    live: &Flat<'_>,
) -> Vec<(usize, Path)> {
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if e.manager == who.manager {
            continue;
        }
        for p in e.fields.iter() {
            if let Some(v) = config.get(p) {
                if live.get(p) != Some(v) {
                    out.push((i, p.clone()));
                }
            }
        }
    }
    out
}

/// Parses an apply body: JSON, or YAML (`application/apply-patch+yaml` allows either).
pub fn parse_config(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(json_err) => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::bad_request("the apply patch is neither JSON nor UTF-8 YAML")
            })?;
            serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            })?
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the apply patch must be an object"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy() -> &'static Resource {
        crate::resources::find("apps", "v1", "deployments").unwrap()
    }

    fn actor(manager: &str) -> Actor<'_> {
        Actor {
            manager,
            api_version: "apps/v1".into(),
            subresource: None,
            now: "2026-11-23T10:00:00Z",
        }
    }

    fn config(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn apply_creates_then_owns_and_conflicts_with_an_updater() {
        let created = apply(
            deploy(),
            UpdateScope::Main,
            None,
            &config(2, "a:1"),
            &actor("kubectl"),
            false,
        )
        .unwrap();
        let e = entries(&created);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].manager.as_str(), e[0].operation.as_str()),
            ("kubectl", "Apply")
        );
        assert!(e[0]
            .fields
            .contains(&vec!["f:spec".to_string(), "f:replicas".to_string()]));

        // Someone scales it: they take spec.replicas.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        track_update(
            deploy(),
            UpdateScope::Main,
            Some(&created),
            &mut scaled,
            &actor("kubectl-scale"),
        );
        let e = entries(&scaled);
        assert_eq!(e.len(), 2);
        let replicas = vec!["f:spec".to_string(), "f:replicas".to_string()];
        assert!(!e[0].fields.contains(&replicas) && e[1].fields.contains(&replicas));

        // Re-applying the same configuration now conflicts on replicas...
        let err = apply(
            deploy(),
            UpdateScope::Main,
            Some(&scaled),
            &config(2, "a:1"),
            &actor("kubectl"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                owner: "\"kubectl-scale\" using apps/v1".into(),
                field: ".spec.replicas".into()
            }]
        );
        let msg = conflict_error(deploy(), "web", &err).message;
        assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas");
        // ...unless it applies the live value (shared ownership) or forces.
        let shared = apply(
            deploy(),
            UpdateScope::Main,
            Some(&scaled),
            &config(5, "a:1"),
            &actor("kubectl"),
            false,
        )
        .unwrap();
        assert!(entries(&shared)
            .iter()
            .all(|e| e.fields.contains(&replicas)));
        let forced = apply(
            deploy(),
            UpdateScope::Main,
            Some(&scaled),
            &config(2, "a:2"),
            &actor("kubectl"),
            true,
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 2);
        assert_eq!(
            forced["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:2"
        );
        let e = entries(&forced);
        assert_eq!(
            e.len(),
            1,
            "kubectl-scale lost its only field and its entry: {e:?}"
        );
    }

    #[test]
    fn fields_left_out_of_a_later_apply_are_removed_unless_owned_elsewhere() {
        let mut c = config(1, "a:1");
        c["metadata"]["labels"]["tier"] = json!("front");
        c["metadata"]["annotations"] = json!({"note": "x"});
        let live = apply(
            deploy(),
            UpdateScope::Main,
            None,
            &c,
            &actor("kubectl"),
            false,
        )
        .unwrap();
        // Another manager adds a label of its own.
        let mut other = live.clone();
        other["metadata"]["labels"]["extra"] = json!("1");
        track_update(
            deploy(),
            UpdateScope::Main,
            Some(&live),
            &mut other,
            &actor("kubectl-label"),
        );
        let again = apply(
            deploy(),
            UpdateScope::Main,
            Some(&other),
            &config(1, "a:1"),
            &actor("kubectl"),
            false,
        )
        .unwrap();
        assert_eq!(
            again["metadata"]["labels"],
            json!({"app": "web", "extra": "1"})
        );
        assert!(again["metadata"].get("annotations").is_none(), "{again}");
    }

    #[test]
    fn status_apply_touches_only_status() {
        let live = apply(
            deploy(),
            UpdateScope::Main,
            None,
            &config(1, "a:1"),
            &actor("kubectl"),
            false,
        )
        .unwrap();
        assert!(live.get("status").is_none());
        let mut who = actor("controller");
        who.subresource = Some("status");
        let s = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 1}});
        let out = apply(deploy(), UpdateScope::Status, Some(&live), &s, &who, false).unwrap();
        assert_eq!(out["status"]["replicas"], 1);
        let e = entries(&out);
        assert_eq!(e.len(), 2);
        assert!(e.iter().any(|e| e.subresource.as_deref() == Some("status")));
    }

    #[test]
    fn managers_from_user_agents_and_yaml_bodies() {
        assert_eq!(
            manager_from_user_agent(Some("kubectl/v1.32.0 (linux/amd64) kubernetes/abc")),
            "kubectl"
        );
        assert_eq!(manager_from_user_agent(None), "unknown");
        let v = parse_config(
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: '1'\n",
        )
        .unwrap();
        assert_eq!(v["data"]["a"], "1");
        assert_eq!(parse_config(b"[1]").unwrap_err().code, 400);
        assert_eq!(parse_config(b"a: [").unwrap_err().code, 400);
    }
}
