//! Request paths to targets, free of I/O: `/api/v1/namespaces/default/pods/web/status` is the
//! `status` subresource of pod `web` in namespace `default`.

use crate::resources::{self, Resource};

/// What a resource path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resource type.
    pub res: &'static Resource,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object name, for item paths.
    pub name: Option<String>,
    /// The subresource (`status`, `scale`, `binding`, `log`, `exec`), for subresource paths.
    pub sub: Option<String>,
}

/// A parsed API path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: every group.
    Groups,
    /// `/apis/<group>`: one group.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`: the resources of one group version.
    Resources(String, String),
    /// A collection, object or subresource.
    Resource(Target),
}

/// Parses the path after `/api` or `/apis` (`core` tells which), e.g. `["v1", "pods"]`.
/// `None`: no such resource.
pub fn parse(core: bool, segs: &[&str]) -> Option<Route> {
    let (group, version, rest) = if core {
        match segs {
            [] => return Some(Route::CoreVersions),
            [v, rest @ ..] => ("", *v, rest),
        }
    } else {
        match segs {
            [] => return Some(Route::Groups),
            [g] => return Some(Route::Group(g.to_string())),
            [g, v, rest @ ..] => (*g, *v, rest),
        }
    };
    if rest.is_empty() {
        return Some(Route::Resources(group.into(), version.into()));
    }
    // Namespaced paths: namespaces/<ns>/<plural>[/<name>[/<sub>]], when <plural> is a
    // namespaced resource of this group version; otherwise `namespaces/<name>[/<sub>]` is
    // the namespace object itself.
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(res) = resources::find(group, version, plural).filter(|r| r.namespaced) {
            return item(res, Some(ns), tail);
        }
    }
    let [plural, tail @ ..] = rest else {
        return None;
    };
    let res = resources::find(group, version, plural)?;
    item(res, None, tail)
}

fn item(res: &'static Resource, ns: Option<&str>, tail: &[&str]) -> Option<Route> {
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] => (Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(Route::Resource(Target {
        res,
        namespace: ns.map(String::from),
        name,
        sub,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(core: bool, path: &str) -> Target {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match parse(core, &segs) {
            Some(Route::Resource(t)) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse(true, &[]), Some(Route::CoreVersions));
        assert_eq!(parse(false, &[]), Some(Route::Groups));
        assert_eq!(parse(false, &["apps"]), Some(Route::Group("apps".into())));
        assert_eq!(
            parse(true, &["v1"]),
            Some(Route::Resources("".into(), "v1".into()))
        );
    }

    #[test]
    fn resource_paths() {
        let t = target(true, "v1/namespaces/default/pods/web/status");
        assert_eq!(t.res.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.sub.as_deref(), Some("status"));
        let t = target(true, "v1/pods");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = target(true, "v1/namespaces/prod");
        assert_eq!(t.res.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("prod"));
        let t = target(true, "v1/namespaces/prod/status");
        assert_eq!(
            (t.name.as_deref(), t.sub.as_deref()),
            (Some("prod"), Some("status"))
        );
        let t = target(false, "apps/v1/namespaces/d/deployments/web/scale");
        assert_eq!(t.res.kind, "Deployment");
        assert_eq!(t.sub.as_deref(), Some("scale"));
        let t = target(true, "v1/nodes/n1");
        assert_eq!(t.res.kind, "Node");
        assert!(parse(true, &["v1", "nope"]).is_none());
        assert!(parse(false, &["apps", "v1", "pods"]).is_none());
        assert!(parse(true, &["v1", "pods", "a", "b", "c"]).is_none());
    }
}
