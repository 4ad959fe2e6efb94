//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built-in data folder.
pub fn builtin_data() -> PathBuf {
    root().join("data")
}

/// A `scarce` command with a clean environment for data-dir resolution.
pub fn scarce() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scarce"));
    c.env_remove("SCARCE_DATA_DIR").current_dir(root());
    c
}

/// Runs `scarce` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    scarce().args(args).output().expect("scarce runs")
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a user error: exit code 2, an `error:` message that mentions every needle,
/// and no panic.
pub fn assert_user_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr:\n{err}");
    assert!(err.starts_with("error: "), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in stderr:\n{err}");
    }
}

/// Copies the built-in data into a fresh temporary folder that a test may change.
pub fn copy_builtin_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&builtin_data(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The small test pipeline.
pub fn tiny_pipeline() -> PathBuf {
    root().join("tests/pipelines/tiny.toml")
}
