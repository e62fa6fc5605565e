//! ARCHITECTURE.md says which module may use which; this test holds `src/`
//! to it. Every `crate::…` and `super::…` path outside comments is resolved
//! to the module it names and looked up in the table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The rows of the table: module → the modules it may use.
fn rules() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let rows: BTreeMap<String, Vec<String>> = text
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').collect();
            let module = cells.first()?.trim().strip_prefix('`')?.strip_suffix('`')?;
            let uses = cells
                .get(1)?
                .split(',')
                .filter_map(|m| Some(m.trim().strip_prefix('`')?.strip_suffix('`')?.to_owned()))
                .collect();
            Some((module.to_owned(), uses))
        })
        .collect();
    assert!(rows.len() >= 10, "the table in ARCHITECTURE.md: {rows:?}");
    rows
}

/// `src/a/b/mod.rs` → `a::b`, `src/lib.rs` → `lib`.
fn module_of(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap().with_extension("");
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The row that governs `module`: its own, else its closest parent's.
fn row_of<'a>(rules: &'a BTreeMap<String, Vec<String>>, module: &str) -> Option<&'a str> {
    let mut candidate = module;
    loop {
        if let Some((key, _)) = rules.get_key_value(candidate) {
            return Some(key);
        }
        candidate = candidate.rsplit_once("::")?.0;
    }
}

/// Whether `path` (a module path, items included) lies inside `module`.
fn within(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

/// The module paths a file refers to, without comments and tests.
fn references(module: &str, source: &str) -> Vec<String> {
    let tests = [
        "#[cfg(test)]\nmod tests",
        "#[cfg(test)]\npub(crate) mod tests",
    ]
    .iter()
    .filter_map(|marker| source.find(marker))
    .min()
    .unwrap_or(source.len());
    let code: String = source[..tests]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let parent = match module.rsplit_once("::") {
        Some((parent, _)) => parent.to_owned(),
        None => String::new(),
    };
    let mut found = Vec::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for (prefix, base) in [("crate::", String::new()), ("super::", parent)] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            let after = &rest[at + prefix.len()..];
            rest = after;
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let path: String = after.chars().take_while(|&c| ident(c)).collect();
            let path = path.trim_end_matches(':');
            // `use crate::{a, b::c}`: every item of the group.
            let items: Vec<String> = if path.is_empty() && after.starts_with('{') {
                let group = &after[1..after.find('}').unwrap_or(after.len())];
                group
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            } else if path.is_empty() {
                continue;
            } else {
                vec![path.to_owned()]
            };
            for item in items {
                let full = if base.is_empty() {
                    item
                } else {
                    format!("{base}::{item}")
                };
                found.push(full);
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_what_architecture_md_allows() {
    let rules = rules();
    let root = repo().join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&root, file);
        let Some(row) = row_of(&rules, &module) else {
            wrong.push(format!("{module}: no row in ARCHITECTURE.md"));
            continue;
        };
        let source = std::fs::read_to_string(file).unwrap();
        for path in references(&module, &source) {
            // Items of the crate root are the public handle and its re-exports.
            let target = if path.contains("::") || rules.contains_key(&path) {
                path.clone()
            } else {
                format!("lib::{path}")
            };
            let allowed = within(&target, row)
                || rules[row].iter().any(|m| within(&target, m))
                || target.starts_with(&format!("{module}::"));
            if !allowed {
                wrong.push(format!("{module} (row `{row}`) uses {target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not allowed by ARCHITECTURE.md:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_must() {
    let refs = references(
        "views::health",
        "use crate::state::State;\nuse super::auth::Access;\n// crate::not::this\nuse crate::{error::BuildError, instruments};\n",
    );
    assert_eq!(
        refs,
        [
            "state::State",
            "error::BuildError",
            "instruments",
            "views::auth::Access"
        ]
    );
}
