//! ARCHITECTURE.md says which module may use which; this test holds `src/`
//! to it. Every file is parsed (with `syn`, so `use` groups at any depth
//! and paths inside expressions, types and patterns all count), every
//! `crate::…`, `super::…` and `self::…` path outside the tests is resolved
//! to the module it names, and that module is looked up in the table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

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
    assert!(rows.len() >= 8, "the table in ARCHITECTURE.md: {rows:?}");
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

/// Every path of a `use` tree, groups flattened: `a::{b, c::{d, e}}` gives
/// `a::b`, `a::c::d` and `a::c::e`.
fn use_paths(tree: &syn::UseTree, prefix: &str, out: &mut Vec<String>) {
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}::{name}")
        }
    };
    match tree {
        syn::UseTree::Path(p) => use_paths(&p.tree, &join(&p.ident.to_string()), out),
        syn::UseTree::Name(n) => out.push(join(&n.ident.to_string())),
        syn::UseTree::Rename(r) => out.push(join(&r.ident.to_string())),
        syn::UseTree::Glob(_) => out.push(prefix.to_owned()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_paths(t, prefix, out)),
    }
}

/// The paths a file names, tests left out.
#[derive(Default)]
struct Paths(Vec<String>);

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let is_test = item.attrs.iter().any(|a| {
            a.path().is_ident("cfg")
                && a.parse_args::<syn::Meta>()
                    .is_ok_and(|m| m.path().is_ident("test"))
        });
        if !is_test {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        use_paths(&item.tree, "", &mut self.0);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let text: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.0.push(text.join("::"));
        syn::visit::visit_path(self, path);
    }
}

/// The crate modules (and items in them) that the file of `module` refers
/// to, resolved from `crate::`, `super::` and `self::`.
fn references(module: &str, source: &str) -> Vec<String> {
    let file = syn::parse_file(source).unwrap_or_else(|e| panic!("{module}: {e}"));
    let mut paths = Paths::default();
    paths.visit_file(&file);
    let here: Vec<&str> = if module == "lib" {
        Vec::new()
    } else {
        module.split("::").collect()
    };
    paths
        .0
        .iter()
        .filter_map(|path| {
            let mut segments = path.split("::");
            let mut at: Vec<&str> = match segments.next()? {
                "crate" => Vec::new(),
                "self" => here.clone(),
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => return None,
            };
            for segment in segments {
                match segment {
                    "super" => {
                        at.pop();
                    }
                    "self" => {}
                    name => at.push(name),
                }
            }
            Some(at.join("::"))
        })
        .filter(|path| !path.is_empty())
        .collect()
}

#[test]
fn nested_use_groups_are_read_at_every_depth() {
    let source = "use crate::{a::{b, c::{d as e, f::*}}, g};\n\
                  use super::h;\n\
                  fn x() { crate::i::j(); }\n\
                  #[cfg(test)]\nmod tests { use crate::k; }";
    let found: BTreeSet<String> = references("m::n", source).into_iter().collect();
    let expected: BTreeSet<String> = ["a::b", "a::c::d", "a::c::f", "g", "m::h", "i::j"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn every_module_uses_only_what_architecture_md_allows() {
    let rules = rules();
    let root = repo().join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&root, f)).collect();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&root, file);
        let Some(row) = row_of(&rules, &module) else {
            wrong.push(format!("{module}: no row in ARCHITECTURE.md"));
            continue;
        };
        let allowed = &rules[row];
        let source = std::fs::read_to_string(file).unwrap();
        for path in references(&module, &source) {
            // The module the path names: its longest prefix that is a file.
            let target = modules
                .iter()
                .filter(|m| within(&path, m))
                .max_by_key(|m| m.len())
                .cloned()
                .unwrap_or_else(|| "lib".to_owned());
            let fine = within(&target, row)
                || within(&target, &module)
                || allowed
                    .iter()
                    .any(|a| within(&path, a) || within(&target, a));
            if !fine {
                wrong.push(format!("{module} uses {path} (its row: `{row}`)"));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "uses that ARCHITECTURE.md does not allow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_model_and_the_core_use_no_source_and_no_exporter() {
    let rules = rules();
    for layer in ["model", "source", "part"] {
        let allowed = &rules[layer];
        for forbidden in ["sources", "exporters", "record", "builder", "lib"] {
            assert!(
                !allowed.iter().any(|a| within(a, forbidden)),
                "ARCHITECTURE.md lets `{layer}` use `{allowed:?}`"
            );
        }
    }
}
