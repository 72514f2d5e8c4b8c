//! Request paths: discovery endpoints and resource URLs.

/// A resource URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// API group, empty for core.
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path (`None` for cluster-scoped or all-namespaces requests).
    pub namespace: Option<String>,
    /// Plural resource name.
    pub plural: String,
    /// Object name.
    pub name: Option<String>,
    /// Subresource.
    pub sub: Option<String>,
}

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    Resources(String, String),
    /// A resource URL.
    Resource(Target),
    /// `/openapi/v3`: the index of group/version documents.
    OpenApiV3Index,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
    OpenApiV3(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// Anything else.
    Unknown,
}

/// Parses a request path (without the query).
pub fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["api", v] => Route::Resources(String::new(), v.to_string()),
        ["apis", g, v] => Route::Resources(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => resource("", v, rest),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", "api", v] => Route::OpenApiV3(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3(g.to_string(), v.to_string()),
        ["openapi", "v2"] => Route::OpenApiV2,
        _ => Route::Unknown,
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let t = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(Target {
            group: group.into(),
            version: version.into(),
            namespace: namespace.map(String::from),
            plural: plural.into(),
            name: name.map(String::from),
            sub: sub.map(String::from),
        })
    };
    match rest {
        // The namespace object itself and its subresources.
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
            t(None, "namespaces", Some(ns), Some(sub))
        }
        ["namespaces", ns, plural] => t(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => t(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => t(Some(ns), plural, Some(name), Some(sub)),
        [plural] => t(None, plural, None, None),
        [plural, name] => t(None, plural, Some(name), None),
        [plural, name, sub] => t(None, plural, Some(name), Some(sub)),
        _ => Route::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(r: Route) -> Target {
        match r {
            Route::Resource(t) => t,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(route("/apis/apps/v1"), Route::Resources("apps".into(), "v1".into()));
        let t = target(route("/api/v1/namespaces/d/pods/p/status"));
        assert_eq!((t.namespace.as_deref(), t.plural.as_str()), (Some("d"), "pods"));
        assert_eq!((t.name.as_deref(), t.sub.as_deref()), (Some("p"), Some("status")));
        let t = target(route("/api/v1/namespaces/d"));
        assert_eq!((t.namespace, t.plural.as_str(), t.name.as_deref()), (None, "namespaces", Some("d")));
        let t = target(route("/api/v1/namespaces/d/status"));
        assert_eq!((t.plural.as_str(), t.sub.as_deref()), ("namespaces", Some("status")));
        let t = target(route("/apis/apps/v1/deployments"));
        assert_eq!((t.namespace, t.name), (None, None));
        assert_eq!(route("/apis/a/b/c/d/e/f/g"), Route::Unknown);
    }
}
