//! The `escaping=` of a Prometheus 3 scrape: how names that are not
//! classic Prometheus names are written. Asked for with `allow-utf-8`,
//! names are the OpenTelemetry ones, dots kept (`http.server.request.duration`,
//! the OpenTelemetry-Prometheus compatibility specification's preferred
//! form), quoted where the text needs it; `dots` and `values` write those
//! names escaped, as Prometheus's `model.EscapeName` does; `underscores`,
//! and a scrape that asks nothing, get the classic names.

use std::borrow::Cow;
use std::fmt::Write as _;

/// An escaping scheme of the Prometheus 3 content negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Escaping {
    AllowUtf8,
    /// The classic names: what a scrape that asks nothing gets.
    #[default]
    Underscores,
    Dots,
    Values,
}

impl Escaping {
    /// The scheme named in an `escaping=` parameter.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        [
            Escaping::AllowUtf8,
            Escaping::Underscores,
            Escaping::Dots,
            Escaping::Values,
        ]
        .into_iter()
        .find(|e| value.eq_ignore_ascii_case(e.as_str()))
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }

    /// The name written for a name whose OpenTelemetry spelling is `otel`
    /// and classic Prometheus spelling is `classic`.
    pub(crate) fn name<'a>(self, otel: &'a str, classic: &'a str) -> Cow<'a, str> {
        match self {
            Escaping::Underscores => Cow::Borrowed(classic),
            Escaping::AllowUtf8 => Cow::Borrowed(otel),
            Escaping::Dots | Escaping::Values => self.escape(otel),
        }
    }

    /// A name (given in UTF-8) as this scheme writes it.
    pub(crate) fn escape(self, name: &str) -> Cow<'_, str> {
        match self {
            Escaping::AllowUtf8 => Cow::Borrowed(name),
            Escaping::Underscores => Cow::Owned(
                name.chars()
                    .map(|c| if is_classic_char(c) { c } else { '_' })
                    .collect(),
            ),
            Escaping::Dots => {
                let mut out = String::with_capacity(name.len() + 8);
                for c in name.chars() {
                    match c {
                        '_' => out.push_str("__"),
                        '.' => out.push_str("_dot_"),
                        c if is_classic_char(c) => out.push(c),
                        _ => out.push('_'),
                    }
                }
                Cow::Owned(out)
            }
            Escaping::Values if is_classic(name) => Cow::Borrowed(name),
            Escaping::Values => {
                let mut out = String::with_capacity(name.len() + 16);
                out.push_str("U__");
                for c in name.chars() {
                    match c {
                        '_' => out.push_str("__"),
                        c if is_classic_char(c) => out.push(c),
                        // Writing into a String cannot fail.
                        c => {
                            let _ = write!(out, "_{:x}_", u32::from(c));
                        }
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

fn is_classic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Whether `name` is a classic Prometheus name, written without quotes.
pub(crate) fn is_classic(name: &str) -> bool {
    name.chars().all(is_classic_char) && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_as_prometheus_escapes_them() {
        let name = "http.server.request_duration";
        assert_eq!(
            Escaping::Dots.escape(name),
            "http_dot_server_dot_request__duration"
        );
        assert_eq!(
            Escaping::Values.escape(name),
            "U__http_2e_server_2e_request__duration"
        );
        assert_eq!(Escaping::Values.escape("plain_name"), "plain_name");
        assert_eq!(
            Escaping::Underscores.escape(name),
            "http_server_request_duration"
        );
        assert_eq!(Escaping::AllowUtf8.escape(name), name);
        assert!(is_classic("a_b:c") && !is_classic("a.b") && !is_classic("1a"));
        assert_eq!(Escaping::parse("Allow-UTF-8"), Some(Escaping::AllowUtf8));
        assert_eq!(Escaping::parse("other"), None);
    }
}
