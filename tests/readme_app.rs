//! What a newcomer copies: the README's "Add it to your app" blocks, put in
//! a fresh crate beside a checkout of serverwatch, build as they stand; and
//! that crate's serverwatch (built without `otlp`, as the README's line
//! gives it) warns once at `build()` when the environment asks for OTLP.
//!
//! The crates live in `target/readme-check/` and share a target directory
//! there, so that only the first run compiles their dependencies. Their
//! lock file is the repository's, so that they build offline with the
//! versions CI uses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the fresh crates and their shared target directory are.
fn check_dir() -> PathBuf {
    repo().join("target").join("readme-check")
}

/// The first fenced block after `heading` whose info string starts with
/// `lang`.
fn block(text: &str, heading: &str, lang: &str) -> String {
    let section = text
        .split_once(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"))
        .1;
    let start = section
        .find(&format!("```{lang}"))
        .unwrap_or_else(|| panic!("no ```{lang} block after {heading:?}"));
    let body = &section[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

/// A crate at `crates/<name>` (beside `crates/serverwatch`, a link to this
/// repository, as the README says to lay them out), with `dependencies`
/// and `main`. The tests of this binary, and other runs of it, may make
/// their crates at the same moment: every file is put in place whole.
fn fresh_crate(name: &str, dependencies: &str, main: &str) -> PathBuf {
    let crates = check_dir().join("crates");
    std::fs::create_dir_all(&crates).unwrap();
    link_checkout(&crates.join("serverwatch"));
    let dir = crates.join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         # A workspace of its own, whatever the directories above it hold.\n[workspace]\n\n\
         {dependencies}"
    );
    put(&dir.join("Cargo.toml"), manifest.as_bytes());
    put(&dir.join("src/main.rs"), main.as_bytes());
    put(
        &dir.join("Cargo.lock"),
        &std::fs::read(repo().join("Cargo.lock")).unwrap(),
    );
    dir
}

/// Makes `checkout` a link to this repository. A link made at a name of
/// its own and renamed into place: whoever renames last, the link is whole
/// and right, where "create unless it exists" fails for all but one.
fn link_checkout(checkout: &Path) {
    let staged = unique_beside(checkout);
    std::os::unix::fs::symlink(repo(), &staged)
        .unwrap_or_else(|e| panic!("linking {} to the repository: {e}", staged.display()));
    std::fs::rename(&staged, checkout).unwrap_or_else(|e| {
        let _ = std::fs::remove_file(&staged);
        panic!(
            "{} must be a link to the repository (remove what is there): {e}",
            checkout.display()
        )
    });
}

/// Writes `contents` to `path` by renaming a file of its own into place, so
/// that a concurrent build never reads it half written. Left alone when it
/// already holds `contents` (cargo rebuilds what it sees touched).
fn put(path: &Path, contents: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return;
    }
    let staged = unique_beside(path);
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// A name next to `path` that no other test, or process, uses.
fn unique_beside(path: &Path) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut name = path.file_name().unwrap().to_owned();
    name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

/// `cargo build --offline` of the crate in `dir`, into the shared target
/// directory (without debug information: smaller and faster).
fn build(dir: &Path) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", check_dir().join("target"))
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_INCREMENTAL", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {cargo} (is Rust's cargo installed and on PATH?): {e}")
        });
    assert!(
        output.status.success(),
        "cargo build in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

const SECTION: &str = "## Add it to your app";

#[test]
fn the_readme_app_builds_as_it_stands_in_a_fresh_crate() {
    let text = readme();
    let toml = block(&text, SECTION, "toml");
    let main = block(&text, SECTION, "rust");
    assert!(toml.contains("[dependencies]") && toml.contains("serverwatch"));
    assert!(
        !toml.contains('…') && !main.contains('…'),
        "the blocks hold a placeholder"
    );
    assert!(main.contains("#[tokio::main]") && main.contains("instrument"));
    build(&fresh_crate("readme-app", &toml, &main));
}

/// Builds `serverwatch` as the README's line gives it (no `otlp`), under a
/// scoped tracing subscriber that prints to stderr.
const OTLP_OFF_MAIN: &str = r#"fn main() {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .finish();
    let built = tracing::subscriber::with_default(subscriber, || {
        serverwatch::ServerWatch::builder().build()
    });
    built.expect("build() succeeds without the otlp feature");
    println!("built");
}
"#;

#[test]
fn otlp_variables_without_the_feature_warn_once_at_build() {
    let text = readme();
    let readme_dependencies = block(&text, SECTION, "toml");
    assert!(
        !readme_dependencies.contains("otlp"),
        "the README's line is the one without the otlp feature"
    );
    let dependencies =
        format!("{readme_dependencies}tracing = \"0.1\"\ntracing-subscriber = \"0.3\"\n");
    let dir = fresh_crate("otlp-off", &dependencies, OTLP_OFF_MAIN);
    build(&dir);
    let binary = check_dir().join("target/debug/otlp-off");
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(&binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        let output = command.envs(env.iter().copied()).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success() && stdout == "built\n", "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let warnings: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains("WARN"))
            .map(str::to_owned)
            .collect();
        (warnings, stderr)
    };

    // An endpoint, and a protocol that a build with OTLP would refuse.
    let (warnings, stderr) = run(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml"),
    ]);
    assert_eq!(warnings.len(), 1, "one warning: {stderr}");
    let warning = &warnings[0];
    assert!(
        warning.contains("`otlp` feature") && warning.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{warning}"
    );
    let (warnings, _) = run(&[(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "http://127.0.0.1:4318/v1/metrics",
    )]);
    assert_eq!(warnings.len(), 1);

    // Nothing asked for, or another exporter chosen: nothing said.
    let (warnings, stderr) = run(&[]);
    assert!(warnings.is_empty(), "{stderr}");
    let (warnings, stderr) = run(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ]);
    assert!(warnings.is_empty(), "{stderr}");
}
