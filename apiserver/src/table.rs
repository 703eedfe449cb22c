//! Server-side printing, free of I/O: the `meta.k8s.io` `Table` that human-readable
//! `kubectl get` asks for, with the columns and cells Kubernetes' own printers produce
//! (`pkg/printers/internalversion`).
//!
//! ```text
//!  Accept: application/json;as=Table;v=v1;g=meta.k8s.io  ──► requested() ─► TableVersion
//!  stored objects ─► printer(kind) ─► columns + cells ─► table() ─► {"kind":"Table", ...}
//! ```
//!
//! Cells hold every column, including the priority-1 ones shown only by `-o wide`: kubectl
//! drops those itself. `row.object` carries the object's metadata (or the object), from
//! which kubectl takes the NAMESPACE column of `-A` and the label columns of
//! `--show-labels` and `-L`. "Now" is a parameter, so AGE is testable.

mod apps;
mod core;

use serde_json::{json, Map, Value};

/// One column of a table, as `TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column header; kubectl prints it upper-cased.
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, ...
    pub ty: &'static str,
    /// OpenAPI format (`name` for the object's name column).
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0: always shown; 1: shown by `-o wide` only.
    pub priority: u8,
}

/// A column shown by plain `kubectl get`.
const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown by `kubectl get -o wide` only.
const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

/// The object-name column every kind starts with.
const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
};

/// The AGE column: time since `metadata.creationTimestamp`.
const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

/// Makes one row's cells from an object and "now" (Unix seconds).
pub type CellsFn = fn(&Value, i64) -> Vec<Value>;

/// How one kind is printed: its columns and a function making one row's cells (one cell
/// per column, in order) from an object and "now" (Unix seconds).
#[derive(Clone, Copy)]
pub struct Printer {
    /// The column definitions.
    pub columns: &'static [Column],
    /// The cells of one object.
    pub cells: CellsFn,
}

/// Kinds without their own printer get NAME and AGE, as Kubernetes' default printer.
const DEFAULT: Printer = Printer {
    columns: &[NAME, AGE],
    cells: |o, now| vec![json!(name(o)), json!(age(o, now))],
};

/// The printer of `kind`.
pub fn printer(kind: &str) -> Printer {
    core::printer(kind)
        .or_else(|| apps::printer(kind))
        .unwrap_or(DEFAULT)
}

/// The version of `meta.k8s.io` a client asked its Table in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableVersion {
    /// `meta.k8s.io/v1`.
    V1,
    /// `meta.k8s.io/v1beta1` (older kubectl).
    V1beta1,
}

impl TableVersion {
    /// `apiVersion` of the Table and of the PartialObjectMetadata in its rows.
    pub fn api_version(self) -> &'static str {
        match self {
            TableVersion::V1 => "meta.k8s.io/v1",
            TableVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// The Table version an `Accept` header asks for, if it asks for a Table: the first media
/// range with `as=Table;g=meta.k8s.io` and a version this server serves. A header that also
/// lists plain `application/json` after an unknown Table version gets JSON, never 406.
pub fn requested(accept: &str) -> Option<TableVersion> {
    accept.split(',').find_map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next()?;
        if !matches!(media, "application/json" | "*/*" | "application/*") {
            return None;
        }
        let (mut is_table, mut group_ok, mut version) = (false, false, None);
        for p in parts {
            match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("as", "Table")) => is_table = true,
                Some(("g", "meta.k8s.io")) => group_ok = true,
                Some(("v", "v1")) => version = Some(TableVersion::V1),
                Some(("v", "v1beta1")) => version = Some(TableVersion::V1beta1),
                _ => {}
            }
        }
        version.filter(|_| is_table && group_ok)
    })
}

/// What each row's `object` holds (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No `object`.
    None,
    /// `PartialObjectMetadata`: kind, apiVersion and metadata (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; `Err` names the accepted values.
    pub fn parse(v: Option<&str>) -> Result<IncludeObject, String> {
        match v {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(format!(
                "invalid includeObject {other:?}: must be None, Metadata or Object"
            )),
        }
    }
}

/// How to render a Table: which version, what each row carries, and "now" (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    /// The `meta.k8s.io` version asked for.
    pub version: TableVersion,
    /// What each row's `object` holds.
    pub include: IncludeObject,
    /// The time AGE and other durations are measured to, in Unix seconds.
    pub now: i64,
}

/// The `columnDefinitions` of `kind`.
pub fn column_definitions(kind: &str) -> Value {
    let cols: Vec<Value> = printer(kind)
        .columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.ty, "format": c.format,
                   "description": c.description, "priority": c.priority})
        })
        .collect();
    Value::Array(cols)
}

/// One row: the object's cells, its completion conditions (pods) and its `object`.
pub fn row(kind: &str, obj: &Value, opts: &TableOptions) -> Value {
    let p = printer(kind);
    let cells = (p.cells)(obj, opts.now);
    assert_eq!(
        cells.len(),
        p.columns.len(),
        "the {kind} printer must give one cell per column"
    );
    let mut row = json!({ "cells": cells });
    match opts.include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial_metadata(obj, opts.version),
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    if let Some(conditions) = core::row_conditions(kind, obj) {
        row["conditions"] = conditions;
    }
    row
}

/// `PartialObjectMetadata` of an object (its metadata only).
pub fn partial_metadata(obj: &Value, version: TableVersion) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": version.api_version(),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A Table of `objects` of `kind`; `metadata` is the list metadata (`resourceVersion`,
/// `continue`). Without `with_columns`, `columnDefinitions` is empty: watch events after the
/// first carry rows only, as Kubernetes sends them.
pub fn table(
    kind: &str,
    objects: &[Value],
    metadata: Map<String, Value>,
    opts: &TableOptions,
    with_columns: bool,
) -> Value {
    let columns = if with_columns {
        column_definitions(kind)
    } else {
        json!([])
    };
    let rows: Vec<Value> = objects.iter().map(|o| row(kind, o, opts)).collect();
    json!({
        "kind": "Table",
        "apiVersion": opts.version.api_version(),
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Kubernetes' `HumanDuration`: a short, rounded-down duration (`45s`, `3m12s`, `15m`,
/// `5h3m`, `20h`, `2d3h`, `30d`, `2y45d`, `9y`). More than a second in the future is
/// `<invalid>` (clock skew); up to a second in the future is `0s`.
pub fn human_duration(secs: i64) -> String {
    const MIN: i64 = 60;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;
    let with_rest = |major: i64, unit: &str, minor: i64, minor_unit: &str| {
        if minor == 0 {
            format!("{major}{unit}")
        } else {
            format!("{major}{unit}{minor}{minor_unit}")
        }
    };
    let (minutes, hours, days) = (secs / MIN, secs / HOUR, secs / DAY);
    match secs {
        s if s < -1 => "<invalid>".to_string(),
        s if s < 0 => "0s".to_string(),
        s if s < 2 * MIN => format!("{s}s"),
        _ if minutes < 10 => with_rest(minutes, "m", secs % MIN, "s"),
        _ if minutes < 3 * 60 => format!("{minutes}m"),
        _ if hours < 8 => with_rest(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 8 * 24 => with_rest(days, "d", hours % 24, "h"),
        _ if hours < 2 * 365 * 24 => format!("{days}d"),
        _ if hours < 8 * 365 * 24 => with_rest(secs / YEAR, "y", days % 365, "d"),
        _ => format!("{}y", secs / YEAR),
    }
}

/// Parses an RFC 3339 timestamp to Unix seconds.
fn parse_time(ts: &str) -> Option<i64> {
    ts.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// The time since a timestamp field, or `<unknown>` when it is absent or unreadable.
fn since(ts: &Value, now: i64) -> String {
    match ts.as_str().and_then(parse_time) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

/// AGE: the time since `metadata.creationTimestamp`.
fn age(obj: &Value, now: i64) -> String {
    since(&obj["metadata"]["creationTimestamp"], now)
}

/// `metadata.name`.
fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

/// A string field, or `default` when absent or empty.
fn str_or<'a>(v: &'a Value, default: &'a str) -> &'a str {
    v.as_str().filter(|s| !s.is_empty()).unwrap_or(default)
}

/// An integer field, 0 when absent (Go's zero value, which Kubernetes prints).
fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The number of entries of an object or array field.
fn count(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }
}

/// `k=v,...` of a string map sorted by key, or `<none>` (Kubernetes' `FormatLabels`).
fn format_map(v: &Value) -> String {
    let mut pairs: Vec<String> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

/// A `LabelSelector` (`matchLabels` + `matchExpressions`) in selector syntax, requirements
/// sorted by key, or `<none>` (Kubernetes' `FormatLabelSelector`).
fn format_label_selector(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("").to_string();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        values.sort_unstable();
        let text = match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        };
        reqs.push((key, text));
    }
    reqs.sort();
    if reqs.is_empty() {
        "<none>".to_string()
    } else {
        reqs.into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// CONTAINERS and IMAGES of a pod template: names and images joined with commas.
fn containers_and_images(template: &Value) -> (String, String) {
    let containers = template["spec"]["containers"].as_array();
    let field = |f: &str| {
        containers
            .into_iter()
            .flatten()
            .map(|c| c[f].as_str().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    (field("name"), field("image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_round_like_kubernetes() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (192, "3m12s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 3 * 60, "5h3m"),
            (20 * 3600 + 59, "20h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (3 * 86400, "3d"),
            (30 * 86400, "30d"),
            (2 * 365 * 86400 + 45 * 86400, "2y45d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn accept_headers_pick_the_table_version_or_none() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(requested(kubectl), Some(TableVersion::V1));
        assert_eq!(
            requested("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"),
            Some(TableVersion::V1beta1)
        );
        assert_eq!(
            requested("application/json;as=Table;v=v2;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
            Some(TableVersion::V1beta1)
        );
        assert_eq!(requested("application/json"), None);
        assert_eq!(requested("application/json;as=Table;v=v1;g=apps"), None);
        assert_eq!(
            requested("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
            None
        );
        assert_eq!(requested(""), None);
    }

    #[test]
    fn include_object_defaults_to_metadata() {
        assert_eq!(IncludeObject::parse(None), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("None")), Ok(IncludeObject::None));
        assert_eq!(
            IncludeObject::parse(Some("Object")),
            Ok(IncludeObject::Object)
        );
        assert!(IncludeObject::parse(Some("all")).is_err());
    }

    fn cm() -> Value {
        json!({"kind": "ConfigMap", "apiVersion": "v1",
               "metadata": {"name": "cfg", "namespace": "shop", "labels": {"app": "web"},
                            "creationTimestamp": "2026-11-23T13:00:00Z", "resourceVersion": "7"},
               "data": {"a": "1", "b": "2"}})
    }

    fn opts(include: IncludeObject) -> TableOptions {
        TableOptions {
            version: TableVersion::V1,
            include,
            now: parse_time("2026-11-23T13:03:12Z").unwrap(),
        }
    }

    #[test]
    fn tables_carry_columns_rows_and_row_metadata() {
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!("9"));
        let t = table(
            "ConfigMap",
            &[cm()],
            meta,
            &opts(IncludeObject::Metadata),
            true,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"]["resourceVersion"], "9");
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["rows"][0]["cells"], json!(["cfg", 2, "3m12s"]));
        let obj = &t["rows"][0]["object"];
        assert_eq!(obj["kind"], "PartialObjectMetadata");
        assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(obj["metadata"]["namespace"], "shop");
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
        assert!(obj.get("data").is_none());
    }

    #[test]
    fn include_object_chooses_what_rows_carry() {
        let whole = row("ConfigMap", &cm(), &opts(IncludeObject::Object));
        assert_eq!(whole["object"]["data"]["a"], "1");
        let none = row("ConfigMap", &cm(), &opts(IncludeObject::None));
        assert!(none.get("object").is_none());
        let beta = TableOptions {
            version: TableVersion::V1beta1,
            ..opts(IncludeObject::Metadata)
        };
        let t = table("ConfigMap", &[cm()], Map::new(), &beta, false);
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(t["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(t["columnDefinitions"], json!([]));
    }

    #[test]
    fn unknown_kinds_get_name_and_age() {
        let t = table(
            "Widget",
            &[cm()],
            Map::new(),
            &opts(IncludeObject::None),
            true,
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 2);
        assert_eq!(t["rows"][0]["cells"], json!(["cfg", "3m12s"]));
    }

    #[test]
    fn missing_timestamps_print_unknown() {
        assert_eq!(since(&Value::Null, 0), "<unknown>");
        assert_eq!(since(&json!("yesterday"), 0), "<unknown>");
    }

    #[test]
    fn selectors_print_sorted_in_selector_syntax() {
        let sel = json!({"matchLabels": {"app": "web", "tier": "front"},
                         "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                              {"key": "zz", "operator": "DoesNotExist"}]});
        assert_eq!(
            format_label_selector(&sel),
            "app=web,env in (dev,prod),tier=front,!zz"
        );
        assert_eq!(format_label_selector(&Value::Null), "<none>");
        assert_eq!(format_map(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(format_map(&json!({})), "<none>");
    }

    /// Test helper shared by the per-kind tests: the cells of `obj` at `now`.
    pub(super) fn cells(kind: &str, obj: &Value, now: &str) -> Vec<Value> {
        let p = printer(kind);
        let c = (p.cells)(obj, parse_time(now).unwrap());
        assert_eq!(c.len(), p.columns.len(), "{kind}: one cell per column");
        c
    }

    /// Test helper: the column names of `kind` with their priorities.
    pub(super) fn headers(kind: &str) -> Vec<(&'static str, u8)> {
        printer(kind)
            .columns
            .iter()
            .map(|c| (c.name, c.priority))
            .collect()
    }
}
