//! The nested services of an axum router (`Router::nest_service`, and so
//! `ServeDir`): axum gives a request under one of them no `MatchedPath` (it
//! has one only for the nest's own path), so the layer matches such a
//! request against the nests' templates itself, with axum's own matcher.

use std::fmt;
use std::sync::Arc;

use axum::Router;

/// How axum spells the tail of a nested service's template.
const AXUM_NEST_TAIL: &str = "/{*__private__axum_nest_tail_param}";
/// How serverwatch labels it: `/static/{*rest}`.
const NEST_TAIL_LABEL: &str = "/{*rest}";

/// The nested services' templates, matched as axum matches them.
pub(crate) struct NestedServices {
    matcher: matchit::Router<Arc<str>>,
    templates: Vec<Arc<str>>,
}

impl fmt::Debug for NestedServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.templates).finish()
    }
}

impl NestedServices {
    /// The nested services of `router`; `None` when it has none.
    pub(crate) fn of<S>(router: &Router<S>) -> Option<Self> {
        let mut nested = Self {
            matcher: matchit::Router::new(),
            templates: Vec::new(),
        };
        for path in route_paths(&format!("{router:?}")) {
            let Some(prefix) = path.strip_suffix(AXUM_NEST_TAIL) else {
                continue;
            };
            let label: Arc<str> = format!("{prefix}{NEST_TAIL_LABEL}").into();
            // axum accepted the same template among others, so it cannot
            // conflict here.
            if nested.matcher.insert(path, Arc::clone(&label)).is_ok() {
                nested.templates.push(label);
            }
        }
        (!nested.templates.is_empty()).then_some(nested)
    }

    /// The template of the nested service `path` is under, if any.
    pub(crate) fn template(&self, path: &str) -> Option<&Arc<str>> {
        self.matcher.at(path).ok().map(|m| m.value)
    }
}

/// The templates of the routes (not the fallbacks) of a router, from its
/// `Debug` text: axum has no API that lists them, and its `Debug` output
/// does, as string literals. Literals with escapes are left out: no route
/// template needs one.
pub(crate) fn route_paths(debug: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = debug;
    while let Some(quote) = rest.find('"') {
        // The fallbacks come after the routes.
        if rest[..quote].contains("fallback_router:") {
            break;
        }
        let literal = &rest[quote + 1..];
        let mut end = None;
        let mut escaped = false;
        let mut chars = literal.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    escaped = true;
                    chars.next();
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let text = &literal[..end];
        if !escaped && text.starts_with('/') {
            paths.push(text.to_owned());
        }
        rest = &literal[end + 1..];
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[test]
    fn the_templates_of_nested_services_are_read_from_the_router() {
        let inner = Router::new().route("/x", get(|| async { "x" }));
        let router: Router = Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .nest_service(
                "/static",
                tower::service_fn(|_| async {
                    Ok::<_, std::convert::Infallible>(axum::response::Response::new(
                        axum::body::Body::empty(),
                    ))
                }),
            )
            .nest_service("/t/{tenant}/files", inner.clone())
            .nest("/api", inner)
            .fallback(|| async { "fallback" });
        let nested = NestedServices::of(&router).unwrap();
        assert_eq!(
            nested.template("/static/css/site.css").map(|t| &**t),
            Some("/static/{*rest}")
        );
        assert_eq!(
            nested.template("/t/42/files/a%20b").map(|t| &**t),
            Some("/t/{tenant}/files/{*rest}")
        );
        assert_eq!(nested.template("/api/x"), None);
        assert_eq!(nested.template("/other"), None);
        let mut paths = route_paths(&format!("{router:?}"));
        paths.sort();
        assert!(paths.contains(&"/items/{id}".to_owned()), "{paths:?}");
        assert!(
            !paths.iter().any(|p| p.contains("fallback")),
            "fallbacks are not routes: {paths:?}"
        );
        let plain: Router = Router::new().route("/a", get(|| async { "a" }));
        assert!(NestedServices::of(&plain).is_none());
    }
}
