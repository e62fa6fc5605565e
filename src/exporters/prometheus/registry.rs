//! An app's own `prometheus_client` registry on `/metrics`, after
//! serverwatch's families, in every format. Its names are written as the
//! app registered them (`Registry::with_prefix` is how to prefix them).

use std::fmt::Write as _;

use prometheus_client::registry::Registry;

use super::Format;

/// The registry's exposition in `format`: delimited protobuf messages, or
/// text without `# EOF`.
pub(super) fn encode(registry: &Registry, format: Format) -> Vec<u8> {
    if format == Format::Protobuf {
        // Writing into a Vec cannot fail, nor can a registry's metrics.
        return prometheus_client::encoding::prometheus_protobuf::encode_to_vec(registry)
            .unwrap_or_default();
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode_registry(&mut text, registry);
    match format {
        Format::Prometheus => classic_from_openmetrics(&text).into_bytes(),
        Format::OpenMetrics | Format::Protobuf => text.into_bytes(),
    }
}

/// The family names the registry puts on `/metrics` (as in its `# TYPE`
/// lines), for the builder to check against serverwatch's.
pub(crate) fn families(registry: &Registry) -> Vec<String> {
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode_registry(&mut text, registry);
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// OpenMetrics text, as prometheus-client writes it (the only text format
/// it writes), in the classic format: counters and infos named after their
/// samples, no `# UNIT`, no exemplars, no `_created` samples (the classic
/// format has none of them).
fn classic_from_openmetrics(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help: Option<(&str, &str)> = None;
    let mut kind = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, given) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            kind = given;
            let (classic, classic_kind) = match given {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), given),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some((_, text)) = help.take().filter(|(n, _)| *n == name) {
                let _ = writeln!(out, "# HELP {classic} {text}");
            }
            let _ = writeln!(out, "# TYPE {classic} {classic_kind}");
        } else if !line.starts_with('#') && !line.is_empty() {
            let sample = line.split(" # ").next().unwrap_or(line);
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            if name.ends_with("_created") && matches!(kind, "counter" | "histogram" | "summary") {
                continue;
            }
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::{counter::Counter, info::Info};

    #[test]
    fn a_registry_is_respelled_for_the_classic_format() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        counter.inc_by(3);
        registry.register("orders", "Orders placed", counter);
        registry.register("release", "The release", Info::new(vec![("name", "blue")]));
        assert_eq!(
            String::from_utf8(encode(&registry, Format::Prometheus)).unwrap(),
            "# HELP orders_total Orders placed.\n# TYPE orders_total counter\norders_total 3\n\
             # HELP release_info The release.\n# TYPE release_info gauge\n\
             release_info{name=\"blue\"} 1\n"
        );
        let om = String::from_utf8(encode(&registry, Format::OpenMetrics)).unwrap();
        assert!(om.starts_with("# HELP orders"), "{om}");
        assert!(!om.contains("# EOF"), "{om}");
        assert_eq!(families(&registry), ["orders", "release"]);
    }
}
