//! The sample lines of an exposition (the classic Prometheus text or
//! OpenMetrics) read into name, label set and value, so that tests compare
//! label sets, never the order labels happen to be written in.

use std::collections::BTreeMap;

/// One sample line of an exposition (classic text or OpenMetrics).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// The exemplar OpenMetrics may put after the value (`# {…} v`).
    pub exemplar: Option<Exemplar>,
}

/// An exemplar: its label set (`trace_id`, …) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The value of the label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// Whether every `(name, value)` pair is among the sample's labels.
    pub fn has_labels(&self, wanted: &[(&str, &str)]) -> bool {
        wanted
            .iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// The value of the one sample named `name` with the `labels`; fails the
/// test when there is none or more than one.
pub fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && s.has_labels(labels))
        .collect();
    match found.as_slice() {
        [one] => one.value,
        other => panic!("want one {name}{labels:?}, found {other:?}"),
    }
}

pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses the sample lines of an exposition (comments and blank lines are
/// skipped; label values may hold braces, spaces and escapes). A small,
/// independent reader, so that the values one format carries can be checked
/// against another.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| parse_sample_line(line).unwrap_or_else(|e| panic!("{e} in line {line:?}")))
        .collect()
}

fn parse_sample_line(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let (mut labels, rest) = parse_labels(&line[name_end..])?;
    // A quoted (UTF-8) name is the first item inside the braces.
    let name = match labels.remove("") {
        Some(quoted) if name_end == 0 => quoted,
        _ => line[..name_end].to_owned(),
    };
    // The value, then an optional timestamp and exemplar (`# {...} v`).
    let (rest, exemplar) = match rest.split_once(" # ") {
        Some((rest, exemplar)) => (rest, Some(parse_exemplar(exemplar)?)),
        None => (rest, None),
    };
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("no value after the labels")?;
    let value = parse_value(value).ok_or_else(|| format!("bad value {value:?}"))?;
    Ok(Sample {
        name,
        labels,
        value,
        exemplar,
    })
}

/// `{labels…} value [timestamp]` after the ` # ` of a sample line.
fn parse_exemplar(text: &str) -> Result<Exemplar, String> {
    let (labels, rest) = parse_labels(text)?;
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("an exemplar without value")?;
    let value = parse_value(value).ok_or_else(|| format!("bad exemplar value {value:?}"))?;
    Ok(Exemplar { labels, value })
}

/// The label set at the start of `text` (`{…}`, or none), and what follows.
/// Keys may be quoted (`"http.route"="…"`); a quoted item without `=` (the
/// metric name of the UTF-8 syntax) is given under the key `""`.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    if let Some(mut l) = rest.strip_prefix('{') {
        loop {
            l = l.trim_start_matches(',');
            if let Some(after) = l.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = if let Some(quoted) = l.strip_prefix('"') {
                let (key, after) = quoted.split_once('"').ok_or("unterminated quoted name")?;
                match after.strip_prefix("=\"") {
                    Some(after) => (key, after),
                    None => {
                        labels.insert(String::new(), key.to_owned());
                        l = after;
                        continue;
                    }
                }
            } else {
                l.split_once("=\"").ok_or("label without =\"")?
            };
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.to_owned(), value);
            l = &after[end + 1..];
        }
    }
    Ok((labels, rest))
}

/// The samples of `text` named `name` (exactly: `x_count` is not `x`).
pub fn samples_named(text: &str, name: &str) -> Vec<Sample> {
    parse_samples(text)
        .into_iter()
        .filter(|s| s.name == name)
        .collect()
}

/// A label set written as pairs, to compare with [`Sample::labels`].
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
