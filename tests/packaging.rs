//! Packaging: the man pages and completions `arauto-docgen` generates from the
//! clap definitions, the configuration the Debian package ships, its
//! maintainer scripts (run against a scratch root through `$DPKG_ROOT`, with
//! the systemd helpers replaced by recorders), and — ignored unless `make
//! check-deb` built one — the `.deb` itself: `dpkg-deb -c`/`-I`, the packaged
//! binary validating the packaged configuration with the packaged plugins,
//! `man -l`, and lintian where it is installed. The install in a clean chroot
//! is `scripts/deb-install-test.sh` (`make check-deb-install`: it needs root).

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::CommandFactory;
use support::daemon;
use support::plugins::repo_root;

/// `arauto-docgen` run into a fresh directory.
fn generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_arauto-docgen"))
        .arg(dir.path())
        .output()
        .expect("run arauto-docgen");
    assert!(out.status.success(), "arauto-docgen failed: {}", text(&out));
    dir
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every visible subcommand path: `["queue", "list"]`, …
fn subcommand_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() == "help" {
                continue;
            }
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            walk(sub, &path, out);
            out.push(path);
        }
    }
    let mut command = arauto::cli::Cli::command();
    command.build();
    let mut paths = Vec::new();
    walk(&command, &[], &mut paths);
    paths
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `man -l page` as plain text, or `None` when man-db is not installed.
fn man(page: &Path) -> Option<String> {
    if !installed("man") {
        return None;
    }
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "200")
        .env("MAN_DISABLE_SECCOMP", "1")
        .output()
        .expect("run man");
    assert!(
        out.status.success(),
        "man -l {} failed: {}",
        page.display(),
        text(&out)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_subcommand_has_a_man_page_and_arauto_1_lists_them() {
    let dir = generated();
    let man_dir = dir.path().join("man");
    let paths = subcommand_paths();
    assert!(paths.len() >= 15, "{paths:?}");
    let mut expected: BTreeSet<String> = paths
        .iter()
        .map(|p| format!("arauto-{}.1", p.join("-")))
        .collect();
    expected.insert("arauto.1".to_owned());
    let present: BTreeSet<String> = std::fs::read_dir(&man_dir)
        .expect("man dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(present, expected, "one page per subcommand, no other");

    let top_level: Vec<&String> = paths
        .iter()
        .filter(|p| p.len() == 1)
        .map(|p| &p[0])
        .collect();
    let roff = std::fs::read_to_string(man_dir.join("arauto.1")).expect("arauto.1");
    assert!(
        roff.starts_with(".ie") || roff.contains(".TH arauto 1"),
        "{roff}"
    );
    match man(&man_dir.join("arauto.1")) {
        Some(rendered) => {
            assert!(
                rendered.contains("NAME") && rendered.contains("SUBCOMMANDS"),
                "{rendered}"
            );
            for sub in &top_level {
                assert!(
                    rendered.contains(&format!("arauto-{sub}(1)")),
                    "man -l arauto.1 does not list {sub}:\n{rendered}"
                );
            }
        }
        None => {
            eprintln!("man-db not installed: arauto.1 checked as roff only");
            for sub in &top_level {
                assert!(
                    roff.contains(&format!("arauto\\-{sub}")),
                    "{sub} not in:\n{roff}"
                );
            }
        }
    }
    // A nested page names its full command line.
    let list = std::fs::read_to_string(man_dir.join("arauto-queue-list.1")).expect("page");
    assert!(list.contains("arauto queue list"), "{list}");
}

#[test]
fn the_completions_know_every_subcommand_and_parse() {
    let dir = generated();
    let completions = dir.path().join("completions");
    for file in ["arauto.bash", "_arauto", "arauto.fish"] {
        let script = std::fs::read_to_string(completions.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for path in subcommand_paths() {
            let last = path.last().expect("a name");
            assert!(script.contains(last.as_str()), "{file} lacks {last}");
        }
    }
    // Syntax, with the shells that are installed (bash always is).
    for (shell, file, flag) in [
        ("bash", "arauto.bash", "-n"),
        ("zsh", "_arauto", "-n"),
        ("fish", "arauto.fish", "--no-execute"),
    ] {
        if !installed(shell) {
            eprintln!("{shell} not installed: {file} not parsed");
            continue;
        }
        let out = Command::new(shell)
            .arg(flag)
            .arg(completions.join(file))
            .output()
            .expect("run shell");
        assert!(
            out.status.success(),
            "{shell} {flag} {file}: {}",
            text(&out)
        );
    }
}

/// The shipped configuration's commented-out store settings and channel,
/// uncommented and the store enabled: what the file's own steps tell the
/// administrator to do.
fn enabled_as_documented(shipped: &str) -> String {
    shipped
        .lines()
        .filter(|line| *line != "channels = []")
        .map(|line| {
            let uncommented = line.strip_prefix("# ").unwrap_or(line);
            let is_setting = [
                "channels = [",
                "api_key_file",
                "application_key_file",
                "[channels.",
                "plugin = ",
                "min_interval",
                "allowed_hosts",
                "base_url",
                "instance = ",
            ]
            .iter()
            .any(|key| uncommented.starts_with(key));
            if line.starts_with("# ") && is_setting {
                uncommented.to_owned()
            } else if line == "enabled = false" {
                "enabled = true".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_packaged_configuration_validates_as_shipped_and_once_enabled() {
    let shipped_path = repo_root().join("packaging/arauto.toml");
    let shipped = std::fs::read_to_string(&shipped_path).expect("packaging/arauto.toml");
    // As shipped: no credential file exists, and nothing is read from one.
    let out = daemon::arauto()
        .args(["validate", "--config"])
        .arg(&shipped_path)
        .output()
        .expect("run arauto validate");
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("(disabled)"), "{shown}");
    assert!(shown.contains("channels: none"), "{shown}");

    // Following its own instructions (secrets in files, settings and the
    // channel uncommented, the store enabled) gives a valid configuration too.
    let dir = tempfile::tempdir().expect("tempdir");
    let enabled = enabled_as_documented(&shipped);
    assert!(enabled.contains("enabled = true") && enabled.contains("[channels.whatsapp]"));
    let path = dir.path().join("arauto.toml");
    std::fs::write(&path, &enabled).expect("write");
    for secret in ["li-chave-api", "li-chave-aplicacao", "evolution-apikey"] {
        std::fs::write(dir.path().join(secret), "s3cr3t-value\n").expect("secret");
    }
    let out = daemon::arauto()
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .expect("run arauto validate");
    assert!(out.status.success(), "{}\n{enabled}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("→ whatsapp"), "{shown}");
    assert!(!shown.contains("s3cr3t-value"), "{shown}");
}

/// A scratch root for the maintainer scripts, with `deb-systemd-helper`,
/// `deb-systemd-invoke` and `systemctl` replaced by scripts that append their
/// arguments to `calls`.
struct ScriptRoot {
    dir: tempfile::TempDir,
}

impl ScriptRoot {
    fn new(systemd_running: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("fake-bin");
        std::fs::create_dir_all(&bin).expect("bin");
        for tool in ["deb-systemd-helper", "deb-systemd-invoke", "systemctl"] {
            let path = bin.join(tool);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >> \"{}\"\n",
                    dir.path().join("calls").display()
                ),
            )
            .expect("fake tool");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        if systemd_running {
            std::fs::create_dir_all(dir.path().join("run/systemd/system")).expect("run dir");
        }
        Self { dir }
    }

    fn run(&self, script: &str, args: &[&str]) {
        let path = repo_root().join("packaging/debian").join(script);
        let search_path = format!(
            "{}:{}",
            self.dir.path().join("fake-bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg("-e")
            .arg(&path)
            .args(args)
            .env("DPKG_ROOT", self.dir.path())
            .env("PATH", search_path)
            .output()
            .expect("run the script");
        assert!(out.status.success(), "{script} {args:?}: {}", text(&out));
    }

    /// The helper calls so far, then forgotten.
    fn take_calls(&self) -> Vec<String> {
        let path = self.dir.path().join("calls");
        let calls = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        calls.lines().map(str::to_owned).collect()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

#[test]
fn maintainer_scripts_enable_without_starting_stop_on_remove_and_purge_state() {
    for script in ["postinst", "prerm", "postrm"] {
        let path = repo_root().join("packaging/debian").join(script);
        let mode = std::fs::metadata(&path)
            .expect("script")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is executable");
        let out = Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("sh -n");
        assert!(out.status.success(), "{script}: {}", text(&out));
    }
    let root = ScriptRoot::new(true);

    // First installation: enabled, not started; the credentials directory is root's.
    root.run("postinst", &["configure"]);
    let calls = root.take_calls();
    assert!(
        calls.contains(&"deb-systemd-helper enable arauto.service".to_owned()),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("deb-systemd-invoke")),
        "a first installation starts nothing: {calls:?}"
    );
    let credentials = root.path("etc/arauto/credentials");
    let mode = std::fs::metadata(&credentials)
        .expect("credentials dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    // An upgrade restarts the daemon only if it runs (try-restart).
    root.run("prerm", &["upgrade", "0.2.0"]);
    assert!(
        root.take_calls().is_empty(),
        "an upgrade does not stop it in prerm"
    );
    root.run("postinst", &["configure", "0.0.9"]);
    let calls = root.take_calls();
    assert!(
        calls.contains(&"deb-systemd-invoke try-restart arauto.service".to_owned()),
        "{calls:?}"
    );

    // Removal stops it and keeps configuration and state.
    std::fs::create_dir_all(root.path("var/lib/private/arauto")).expect("state");
    std::fs::write(root.path("var/lib/private/arauto/arauto.redb"), "db").expect("db");
    std::fs::write(credentials.join("li-chave-api"), "secret").expect("credential");
    root.run("prerm", &["remove"]);
    assert_eq!(
        root.take_calls(),
        ["deb-systemd-invoke stop arauto.service"]
    );
    root.run("postrm", &["remove"]);
    let calls = root.take_calls();
    assert!(
        calls.contains(&"deb-systemd-helper mask arauto.service".to_owned()),
        "{calls:?}"
    );
    assert!(root.path("var/lib/private/arauto/arauto.redb").exists());
    assert!(credentials.join("li-chave-api").exists());

    // Purge deletes state, cache and credentials.
    std::fs::create_dir_all(root.path("var/cache/private/arauto")).expect("cache");
    root.run("postrm", &["purge"]);
    let calls = root.take_calls();
    assert!(
        calls.contains(&"deb-systemd-helper purge arauto.service".to_owned()),
        "{calls:?}"
    );
    for gone in [
        "var/lib/private/arauto",
        "var/cache/private/arauto",
        "etc/arauto/credentials",
    ] {
        assert!(!root.path(gone).exists(), "{gone} survives a purge");
    }

    // Without a running systemd (a container, a chroot), nothing is started or stopped.
    let offline = ScriptRoot::new(false);
    offline.run("postinst", &["configure", "0.0.9"]);
    offline.run("prerm", &["remove"]);
    let calls = offline.take_calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("deb-systemd-invoke") || c.starts_with("systemctl")),
        "{calls:?}"
    );
}

/// The `.deb` `make check-deb` built (`$ARAUTO_DEB`, else the default path).
fn package() -> PathBuf {
    if let Some(path) = std::env::var_os("ARAUTO_DEB") {
        return PathBuf::from(path);
    }
    repo_root().join(format!(
        "target/debian/arauto_{}_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ))
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("run dpkg-deb");
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs the package: `make check-deb` builds it and runs this"]
fn the_debian_package_holds_everything_and_its_configuration_validates() {
    let deb = package();
    assert!(
        deb.is_file(),
        "{} does not exist: run make deb",
        deb.display()
    );

    let listing = dpkg_deb(&["-c"], &deb);
    let files: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    let mut wanted = vec![
        "/usr/bin/arauto".to_owned(),
        "/lib/systemd/system/arauto.service".to_owned(),
        "/etc/arauto/arauto.toml".to_owned(),
        "/usr/share/arauto/templates/pt-BR/order-shipped.txt".to_owned(),
        "/usr/share/doc/arauto/examples/arauto.toml".to_owned(),
        "/usr/share/doc/arauto/changelog.gz".to_owned(),
        "/usr/share/doc/arauto/copyright".to_owned(),
        "/usr/share/man/man1/arauto.1.gz".to_owned(),
        "/usr/share/bash-completion/completions/arauto".to_owned(),
        "/usr/share/zsh/vendor-completions/_arauto".to_owned(),
        "/usr/share/fish/vendor_completions.d/arauto.fish".to_owned(),
    ];
    for plugin in [
        "loja-integrada",
        "whatsapp-cloud",
        "evolution-api",
        "z-api",
        "twilio-sms",
        "telegram",
        "webhook",
    ] {
        wanted.push(format!("/usr/lib/arauto/plugins/{plugin}.wasm"));
    }
    for path in subcommand_paths() {
        wanted.push(format!(
            "/usr/share/man/man1/arauto-{}.1.gz",
            path.join("-")
        ));
    }
    let missing: Vec<&String> = wanted.iter().filter(|w| !files.contains(*w)).collect();
    assert!(
        missing.is_empty(),
        "missing from the package: {missing:?}\n{listing}"
    );

    let info = dpkg_deb(&["-I"], &deb);
    for needle in [
        "Package: arauto",
        &format!("Version: {}", env!("CARGO_PKG_VERSION")),
        "Architecture: amd64",
        "init-system-helpers",
        "ca-certificates",
        "postinst",
        "prerm",
        "postrm",
        "conffiles",
    ] {
        assert!(
            info.contains(needle),
            "{needle:?} not in dpkg-deb -I:\n{info}"
        );
    }
    let conffiles = dpkg_deb(&["-I"], &deb);
    let control_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control_dir.path())
        .output()
        .expect("dpkg-deb -e");
    assert!(out.status.success(), "{}", text(&out));
    let listed = std::fs::read_to_string(control_dir.path().join("conffiles")).expect("conffiles");
    assert!(
        listed.lines().any(|l| l == "/etc/arauto/arauto.toml"),
        "{listed}\n{conffiles}"
    );

    // The packaged binary, configuration and plugins, unpacked side by side.
    let root = tempfile::tempdir().expect("tempdir");
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path())
        .output()
        .expect("dpkg-deb -x");
    assert!(out.status.success(), "{}", text(&out));
    let binary = root.path().join("usr/bin/arauto");
    let config = root.path().join("etc/arauto/arauto.toml");
    // Its default plugin directory is the packaged one.
    let out = daemon::scrubbed(&binary)
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .expect("run the packaged arauto");
    assert!(
        text(&out).contains("/usr/lib/arauto/plugins"),
        "the packaged binary does not default to /usr/lib/arauto/plugins: {}",
        text(&out)
    );
    let out = daemon::scrubbed(&binary)
        .args(["validate", "--config"])
        .arg(&config)
        .env(
            "ARAUTO_DAEMON__PLUGIN_DIR",
            root.path().join("usr/lib/arauto/plugins"),
        )
        .output()
        .expect("run the packaged arauto");
    assert!(
        out.status.success(),
        "the packaged configuration does not validate: {}",
        text(&out)
    );

    if let Some(rendered) = man(&root.path().join("usr/share/man/man1/arauto.1.gz")) {
        assert!(rendered.contains("arauto-validate(1)"), "{rendered}");
    }

    if installed("lintian") {
        let out = Command::new("lintian")
            .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
            .arg(&deb)
            .output()
            .expect("run lintian");
        eprintln!("lintian:\n{}", text(&out));
        assert!(
            out.status.success(),
            "lintian reports errors or warnings:\n{}",
            text(&out)
        );
    } else {
        eprintln!("lintian not installed: the package's policy checks were not run");
    }
}

#[test]
fn the_debian_changelog_names_the_crate_version() {
    let path = repo_root().join("packaging/debian/changelog");
    let changelog = std::fs::read_to_string(&path).expect("packaging/debian/changelog");
    let first = changelog.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("arauto ({}) ", env!("CARGO_PKG_VERSION"))),
        "{}: the first entry is {first:?}; add one for version {} (the package's version)",
        path.display(),
        env!("CARGO_PKG_VERSION")
    );
}
