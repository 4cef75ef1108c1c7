//! `arauto-docgen OUT_DIR`: the man pages and shell completions of `arauto`,
//! generated from the same clap definitions the binary parses with, so a new
//! subcommand or option appears in both without anyone writing roff.
//!
//! Writes `OUT_DIR/man/arauto.1` plus one page per subcommand
//! (`arauto-validate.1`, `arauto-queue-list.1`…), and `OUT_DIR/completions/`
//! `arauto.bash`, `_arauto` (zsh) and `arauto.fish`. `make man`, `make install`
//! and `make deb` run it; it is not installed itself.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// Why the pages or completions could not be written.
#[derive(Debug, thiserror::Error)]
enum DocgenError {
    #[error("usage: arauto-docgen OUT_DIR (writes OUT_DIR/man/*.1 and OUT_DIR/completions/*)")]
    Usage,
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the man pages into {}: {source}", dir.display())]
    ManPages {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the {shell} completion into {}: {source}", dir.display())]
    Completion {
        shell: Shell,
        dir: PathBuf,
        source: std::io::Error,
    },
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let result = match (args.next(), args.next()) {
        (Some(out), None) => generate(Path::new(&out)),
        _ => Err(DocgenError::Usage),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("arauto-docgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> Result<(), DocgenError> {
    let man_dir = out.join("man");
    let completion_dir = out.join("completions");
    for dir in [&man_dir, &completion_dir] {
        std::fs::create_dir_all(dir).map_err(|source| DocgenError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    // One page per subcommand, named by its path (arauto-queue-list.1), as
    // `man arauto-queue-list` and git-style tools expect.
    clap_mangen::generate_to(arauto::cli::Cli::command(), &man_dir).map_err(|source| {
        DocgenError::ManPages {
            dir: man_dir.clone(),
            source,
        }
    })?;
    let mut command = arauto::cli::Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut command, "arauto", &completion_dir)
            .map_err(|source| DocgenError::Completion {
                shell,
                dir: completion_dir.clone(),
                source,
            })?;
        println!("{}", path.display());
    }
    println!(
        "{}: arauto.1 and one page per subcommand",
        man_dir.display()
    );
    Ok(())
}
