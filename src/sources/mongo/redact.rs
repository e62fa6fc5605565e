//! Keeps credentials out of everything serverwatch shows: the password and
//! user name taken from the client's options, and the user-info part of any
//! connection string that appears in a driver message.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What is percent-encoded in a URI's user-info: all but RFC 3986's
/// unreserved characters.
const URI_USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Known secrets, replaced by `***` wherever they appear.
#[derive(Clone, Default)]
pub(crate) struct Secrets(Vec<String>);

/// Never the secrets themselves: the builder and the watch are `Debug`, and
/// a user may well log them.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// Adds a secret, and its percent-encoded spelling (as in a URI).
    pub(crate) fn add(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        // As a URI's user-info spells it: everything but the unreserved
        // characters percent-encoded.
        let encoded = utf8_percent_encode(secret, URI_USERINFO).to_string();
        for s in [secret.to_owned(), encoded] {
            if !self.0.contains(&s) {
                self.0.push(s);
            }
        }
        // Longest first, so that no secret is left half-replaced.
        self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = strip_userinfo(text);
        for secret in &self.0 {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }
}

/// `mongodb://user:pass@host` → `mongodb://***@host`, for any scheme.
fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_uri_credentials_are_replaced() {
        let mut secrets = Secrets::default();
        secrets.add("p@ss word");
        let text = "auth failed for mongodb://alice:p%40ss%20word@db:27017/?x=1 (p@ss word)";
        let redacted = secrets.redact(text);
        assert_eq!(
            redacted,
            "auth failed for mongodb://***@db:27017/?x=1 (***)"
        );
        assert_eq!(format!("{secrets:?}"), "Secrets(2 redacted)");
        assert_eq!(
            strip_userinfo("see http://host:1/a@b"),
            "see http://host:1/a@b"
        );
    }
}
