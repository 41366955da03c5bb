//! Golden text tests, driven by directories: adding a file adds a test.
//!
//! - `EXPLAIN` of every `pipelines/*.sql` is held in `tests/explain/<name>.out`;
//! - the rendered compile error of every `tests/errors/*.sql` in
//!   `tests/errors/<name>.out`;
//! - every ```` ```sql ```` example of `pipelines/README.md` compiles.
//!
//! Run with `KAPPA_BLESS=1` to rewrite the expected files from the current output
//! (then review the diff).

use std::path::{Path, PathBuf};

use kappa_sql::{compile_file, compile_str, explain};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .{extension} files in {}",
        dir.display()
    );
    files
}

/// Compares `actual` with the expected file (or rewrites it when blessing);
/// returns a failure message on mismatch.
fn check_golden(expected_path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("KAPPA_BLESS").is_some() {
        std::fs::write(expected_path, actual).expect("writable golden file");
        return None;
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{} differs (KAPPA_BLESS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
            expected_path.display()
        )
    })
}

fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn explain_of_every_pipeline() {
    let pipelines = crate_dir().join("../../pipelines");
    let mut failures = Vec::new();
    for file in files_with_extension(&pipelines, "sql") {
        let stem = file.file_stem().expect("a file name").to_string_lossy();
        let actual = match compile_file(&file) {
            Ok(plan) => explain(&plan),
            Err(e) => {
                failures.push(format!("{} does not compile:\n{e}", file.display()));
                continue;
            }
        };
        let expected = crate_dir().join(format!("tests/explain/{stem}.out"));
        failures.extend(check_golden(&expected, &actual));
    }
    assert_no_failures(failures);
}

#[test]
fn error_messages() {
    let dir = crate_dir().join("tests/errors");
    let mut failures = Vec::new();
    for file in files_with_extension(&dir, "sql") {
        let name = file.file_name().expect("a file name").to_string_lossy();
        let text = std::fs::read_to_string(&file).expect("readable");
        let actual = match compile_str(&format!("errors/{name}"), &text) {
            Ok(_) => {
                failures.push(format!("{} compiled, but should fail", file.display()));
                continue;
            }
            Err(e) => e.to_string(),
        };
        failures.extend(check_golden(&file.with_extension("out"), &actual));
    }
    assert_no_failures(failures);
}

#[test]
fn readme_examples_compile() {
    let readme = crate_dir().join("../../pipelines/README.md");
    let text = std::fs::read_to_string(&readme).expect("pipelines/README.md exists");
    let mut failures = Vec::new();
    let mut examples = 0;
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        if line.trim() != "```sql" {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim() != "```")
            .collect();
        examples += 1;
        let name = format!("README.md (example at line {})", number + 1);
        if let Err(e) = compile_str(&name, &block.join("\n")) {
            failures.push(format!("{name} does not compile:\n{e}"));
        }
    }
    assert!(examples > 0, "no ```sql examples in the README");
    assert_no_failures(failures);
}
