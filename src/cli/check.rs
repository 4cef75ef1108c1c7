//! `arauto check`: the readiness checklist.

use std::fmt::Write;
use std::time::Duration;

use clap::Args;

use super::backend::{Backend, ClusterView, ConnectArgs, Needs, OpenError};
use super::exit::{Exit, print_json, refused};
use super::style::{Progress, Style};
use crate::control::{Request, Response};
use crate::report::checklist::config_failure;
use crate::report::{CheckQuery, Checklist, Level};

/// How long the daemon may take for the live checks (each plugin call has its
/// own `call_timeout`; they run concurrently).
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// `arauto check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    /// Only this store (and the channels it uses).
    #[arg(long, value_name = "ID")]
    pub store: Option<String>,
    /// Print the checklist as JSON; each line's `status` is `ok`, `warn` or `fail`.
    #[arg(long)]
    pub json: bool,
}

/// Run `arauto check`: exit 0 when nothing is red, 1 when something is.
pub(crate) fn run(args: CheckArgs) -> Exit {
    let progress = Progress::on_stderr();
    let checklist = match Backend::open(
        &args.connect,
        Needs::Instances,
        &ClusterView::everything(),
        &progress,
    ) {
        Ok(mut backend) => {
            if backend.is_daemon() {
                progress.show("the daemon is checking every store and channel…");
            }
            let request = Request::Check(CheckQuery {
                store: args.store.clone(),
            });
            let answer = backend.call(&request, CHECK_TIMEOUT, &progress);
            progress.clear();
            match answer {
                Ok(Response::Checklist(checklist)) => checklist,
                Ok(other) => return refused(other),
                Err(error) => {
                    eprintln!("arauto: {error:#}");
                    return Exit::Failure;
                }
            }
        }
        Err(OpenError::Config(errors)) => {
            let problems: Vec<(String, String)> = errors
                .errors
                .iter()
                .map(|e| (e.key.clone(), e.to_string()))
                .collect();
            config_failure(&errors.path.display().to_string(), &problems)
        }
        Err(OpenError::Build { path, error }) => {
            let problems: Vec<(String, String)> = error
                .problems
                .iter()
                .map(|p| {
                    (
                        p.component.clone(),
                        format!("{}: {}", p.component, p.message),
                    )
                })
                .collect();
            config_failure(&path.display().to_string(), &problems)
        }
        Err(error @ OpenError::Other(_)) => {
            eprintln!("arauto: {error}");
            return Exit::Failure;
        }
    };
    let mut checklist = checklist;
    // With [cluster], the cluster's own section (read from NATS directly).
    if let Ok(config) = crate::config::load(args.connect.config.config.as_deref())
        && let Some(section) = super::check_cluster::section(&config)
    {
        checklist.push_section(section);
    }
    if args.json {
        if let Err(exit) = print_json(&checklist) {
            return exit;
        }
    } else {
        print!("{}", render(&checklist, Style::for_stdout()));
    }
    if checklist.status == Level::Fail {
        Exit::Failure
    } else {
        Exit::Ok
    }
}

/// The checklist for a terminal.
pub(crate) fn render(checklist: &Checklist, style: Style) -> String {
    let mut out = String::new();
    let source = if checklist.daemon_running {
        "checked by the running daemon"
    } else {
        "checked without the daemon"
    };
    let _ = writeln!(
        out,
        "{} {} ({source})",
        style.bold("arauto check:"),
        checklist.config_path
    );
    for section in &checklist.sections {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", style.bold(&section.title));
        for line in &section.lines {
            let mark = match line.status {
                Level::Ok => style.green("✓"),
                Level::Warn => style.yellow("!"),
                Level::Fail => style.red("✗"),
            };
            let _ = writeln!(out, "  {mark} {}", line.text);
            if let Some(fix) = &line.fix {
                let _ = writeln!(out, "    {}", style.dim(&format!("→ {fix}")));
            }
        }
    }
    let count = |level| checklist.counts.get(&level).copied().unwrap_or(0);
    let fails = count(Level::Fail);
    let warns = count(Level::Warn);
    let summary = format!(
        "{} {}, {} {}, {} ok",
        fails,
        if fails == 1 { "problem" } else { "problems" },
        warns,
        if warns == 1 { "warning" } else { "warnings" },
        count(Level::Ok)
    );
    let verdict = match checklist.status {
        Level::Fail => style.red(&format!("not ready: {summary}")),
        Level::Warn => style.yellow(&format!("ready, with warnings: {summary}")),
        Level::Ok => style.green(&format!("ready: {summary}")),
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "{verdict}");
    out
}
