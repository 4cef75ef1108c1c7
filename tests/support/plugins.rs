//! Building the wasm plugins tests need, once per test binary (cargo skips
//! what is up to date, so later runs cost seconds): the test plugins of
//! `tests/plugins/` and the first-party plugins of `plugins/`.

/// The repository root (the `arauto` package).
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run `scripts/build-plugins.sh` with `args`, panicking with its output on failure.
fn build_plugins(once: &'static std::sync::OnceLock<Result<(), String>>, args: &[&str]) {
    let built = once.get_or_init(|| {
        let output = std::process::Command::new(repo_root().join("scripts/build-plugins.sh"))
            .args(args)
            .current_dir(repo_root())
            .output()
            .map_err(|e| format!("cannot run scripts/build-plugins.sh: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "scripts/build-plugins.sh {} failed ({}):\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(why) = built {
        panic!("{why}");
    }
}

/// Path of a built test plugin (`tests/plugins/<name>`), building all of them
/// on first use.
pub fn test_plugin(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    build_plugins(&BUILT, &["--test-plugins"]);
    repo_root()
        .join("target/test-plugins")
        .join(format!("{name}.wasm"))
}

/// The directory of the built first-party plugins (`plugins/<name>` →
/// `target/plugins/<name>.wasm`, the daemon's `plugin_dir` in debug builds),
/// building them on first use.
pub fn first_party_plugins() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    build_plugins(&BUILT, &[]);
    repo_root().join("target/plugins")
}
