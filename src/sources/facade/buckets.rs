//! Which classic bounds a facade histogram gets: the builder's settings
//! ([`Builder::metrics_histogram_buckets`](crate::Builder::metrics_histogram_buckets)),
//! each for a full name, a prefix or a suffix.

/// The `metrics`-facade histograms that a
/// [`metrics_histogram_buckets`](crate::Builder::metrics_histogram_buckets)
/// setting is for, by the name given to `histogram!`. A plain `&str` or
/// `String` is a full name.
///
/// When several match a name, the full name wins, then the longest prefix
/// or suffix; between equals, the one given last.
///
/// ```
/// use serverwatch::MetricMatcher;
///
/// let builder = serverwatch::ServerWatch::builder()
///     .metrics_histogram_buckets(MetricMatcher::Suffix(".items".into()), [1.0, 10.0, 100.0])
///     .metrics_histogram_buckets(MetricMatcher::Prefix("checkout.".into()), [1.0, 5.0])
///     // "checkout.items" takes these: a full name wins.
///     .metrics_histogram_buckets("checkout.items", [1.0, 2.0, 5.0, 10.0]);
/// let err = serverwatch::ServerWatch::builder()
///     .metrics_histogram_buckets(MetricMatcher::Prefix(String::new()), [1.0])
///     .build()
///     .unwrap_err();
/// assert_eq!(err.setting(), "metrics_histogram_buckets");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricMatcher {
    /// The name exactly.
    Full(String),
    /// Every name that starts with this.
    Prefix(String),
    /// Every name that ends with this.
    Suffix(String),
}

impl From<&str> for MetricMatcher {
    fn from(name: &str) -> Self {
        MetricMatcher::Full(name.to_owned())
    }
}

impl From<String> for MetricMatcher {
    fn from(name: String) -> Self {
        MetricMatcher::Full(name)
    }
}

impl MetricMatcher {
    pub(super) fn pattern(&self) -> &str {
        match self {
            MetricMatcher::Full(p) | MetricMatcher::Prefix(p) | MetricMatcher::Suffix(p) => p,
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            MetricMatcher::Full(full) => name == full,
            MetricMatcher::Prefix(prefix) => name.starts_with(prefix.as_str()),
            MetricMatcher::Suffix(suffix) => name.ends_with(suffix.as_str()),
        }
    }
}

/// The bounds of `name`: those of the full name, else of the longest
/// prefix or suffix that matches it; between equals, the last given.
pub(super) fn bounds_for<'a>(
    rules: &'a [(MetricMatcher, Vec<f64>)],
    name: &str,
) -> Option<&'a [f64]> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, (matcher, _))| matcher.matches(name))
        .max_by_key(|(order, (matcher, _))| {
            let full = matches!(matcher, MetricMatcher::Full(_));
            (full, matcher.pattern().len(), *order)
        })
        .map(|(_, (_, bounds))| bounds.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetricMatcher::{Full, Prefix, Suffix};

    #[test]
    fn a_full_name_wins_then_the_longest_pattern_then_the_last_given() {
        let rules = vec![
            (Prefix("db.".into()), vec![1.0]),
            (Suffix(".latency".into()), vec![2.0]),
            (Prefix("db.query.".into()), vec![3.0]),
            (Full("db.query.latency".into()), vec![4.0]),
            (Suffix(".size".into()), vec![5.0]),
            (Prefix("rpc.x".into()), vec![6.0]),
        ];
        let of = |name| bounds_for(&rules, name).map(|b| b[0]);
        assert_eq!(of("db.query.latency"), Some(4.0));
        assert_eq!(of("db.query.rows"), Some(3.0));
        assert_eq!(
            of("db.latency"),
            Some(2.0),
            "`.latency` is longer than `db.`"
        );
        assert_eq!(of("db.x"), Some(1.0));
        assert_eq!(of("rpc.x.size"), Some(6.0), "equal lengths: the last given");
        assert_eq!(of("rpc.size"), Some(5.0));
        assert_eq!(of("queue.depth"), None);
        let again = [
            (MetricMatcher::from("a"), vec![1.0]),
            (MetricMatcher::from("a".to_owned()), vec![2.0]),
        ];
        assert_eq!(bounds_for(&again, "a"), Some([2.0].as_slice()));
    }
}
