//! The nested services of an axum router (`Router::nest_service`, and so
//! `ServeDir`): axum gives a request under one of them no `MatchedPath` (it
//! has one only for the nest's own path), so the layer is told where they
//! are mounted and matches such a request against their templates itself,
//! with axum's own matcher.

use std::fmt;
use std::sync::Arc;

/// How serverwatch labels the tail of a nested service's template:
/// `/static/{*rest}`.
const NEST_TAIL: &str = "/{*rest}";

/// The nested services' templates, matched as axum matches them.
pub(crate) struct NestedServices {
    matcher: matchit::Router<Arc<str>>,
    /// Where the services are mounted, each once, in the order given.
    paths: Vec<String>,
}

impl fmt::Debug for NestedServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.paths).finish()
    }
}

impl NestedServices {
    /// The services of `base` and those mounted at `paths`; `None` when
    /// there are none.
    ///
    /// # Panics
    ///
    /// When a path is not one axum nests a service at, or conflicts with
    /// another: the message names it.
    #[track_caller]
    pub(crate) fn with_paths(
        base: Option<&Self>,
        paths: impl IntoIterator<Item = String>,
    ) -> Option<Self> {
        let mut nested = Self {
            matcher: matchit::Router::new(),
            paths: Vec::new(),
        };
        let known = base.into_iter().flat_map(|base| base.paths.iter().cloned());
        for path in known.chain(paths) {
            nested.insert(path);
        }
        (!nested.paths.is_empty()).then_some(nested)
    }

    #[track_caller]
    fn insert(&mut self, path: String) {
        check_path(&path);
        // The same nest named twice (by the watch and by the layer) is one.
        if self.paths.contains(&path) {
            return;
        }
        let template: Arc<str> = format!("{path}{NEST_TAIL}").into();
        if let Err(e) = self.matcher.insert(&*template, Arc::clone(&template)) {
            panic!("serverwatch: the nested service path {path:?} cannot be matched: {e}");
        }
        self.paths.push(path);
    }

    /// The template of the nested service `path` is under, if any.
    pub(crate) fn template(&self, path: &str) -> Option<&Arc<str>> {
        self.matcher.at(path).ok().map(|m| m.value)
    }
}

/// Panics, naming `path`, unless a service can be nested there: axum
/// refuses the root and wildcards, and a trailing `/` would make a template
/// with an empty segment.
#[track_caller]
pub(crate) fn check_path(path: &str) {
    let problem = if !path.starts_with('/') {
        "must start with '/'"
    } else if path == "/" {
        "cannot be the root: axum nests no service there (a fallback service's requests are \
         `unmatched`)"
    } else if path.ends_with('/') {
        "must not end with '/'"
    } else if path.contains("{*") {
        "must not hold a wildcard: serverwatch adds `/{*rest}` itself"
    } else {
        return;
    };
    panic!("serverwatch: the nested service path {path:?} {problem}");
}

#[cfg(test)]
mod tests {
    use std::panic::catch_unwind;

    use super::*;

    fn nested(paths: &[&str]) -> Option<NestedServices> {
        NestedServices::with_paths(None, paths.iter().map(|p| (*p).to_owned()))
    }

    #[test]
    fn a_request_under_a_nest_gets_its_template() {
        let nested = nested(&["/static", "/t/{tenant}/files"]).unwrap();
        let template = |path| nested.template(path).map(|t| &**t);
        assert_eq!(template("/static/css/site.css"), Some("/static/{*rest}"));
        assert_eq!(
            template("/t/42/files/a%20b"),
            Some("/t/{tenant}/files/{*rest}")
        );
        // axum gives the nest's own path a `MatchedPath`.
        assert_eq!(template("/static"), None);
        assert_eq!(template("/staticx/a"), None);
        assert_eq!(template("/other"), None);
    }

    #[test]
    fn paths_add_up_and_each_counts_once() {
        let first = nested(&["/static", "/static"]).unwrap();
        let both = NestedServices::with_paths(Some(&first), ["/assets".to_owned()]).unwrap();
        assert_eq!(first.paths, ["/static"]);
        assert_eq!(both.paths, ["/static", "/assets"]);
        assert!(both.template("/static/a").is_some());
        assert!(nested(&[]).is_none());
    }

    #[test]
    fn a_path_no_service_can_be_nested_at_panics_with_its_name() {
        for path in ["static", "/", "/static/", "/static/{*rest}", "/a/{b"] {
            let payload = catch_unwind(|| nested(&[path])).expect_err(path);
            let message = payload.downcast_ref::<String>().unwrap();
            assert!(message.contains(&format!("{path:?}")), "{message}");
        }
    }
}
