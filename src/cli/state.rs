//! `arauto state export` / `arauto state import`: move a whole state (queue,
//! poll state, channel state, history) between backends through the
//! portable file format ([`crate::queue::portable`]), e.g. a single node's
//! redb file into a cluster, or back.
//!
//! Both work on the backend the configuration names: the redb file, or with
//! `[cluster]` the cluster's JetStream state (reached like the other
//! operator commands, see `backend.rs`). Never beside a running daemon: the
//! redb file is opened under the state directory's lock, so an export
//! cannot race the daemon's writes and an import cannot write under it; a
//! cluster has no such lock, so stop its nodes first (docs/cluster.md). An export is written to a temporary file next to the output and
//! renamed into place once complete, so the output name never holds half a
//! state. An import reads the whole file once before writing anything: a
//! truncated or damaged file (named with its line) is refused as a whole.
//!
//! `arauto state migrate` converts a cluster's state written by an arauto
//! of layout 1 (jobs keyed by id alone) to the layout this build reads
//! ([`crate::queue::nats::STATE_LAYOUT`]); it refuses while any node
//! heartbeats or holds a lease slot (docs/cluster.md, "Upgrading").

use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use jiff::Timestamp;

use super::backend::{ClusterView, open_cluster};
use super::config_arg::ConfigArg;
use super::exit::Exit;
use crate::config::{self, Config};
use crate::daemon::{InstanceLock, LockError};
use crate::queue::portable::{
    self, Counts, FORMAT_NAME, FORMAT_VERSION, FileReader, Header, Imported, Portable, Record,
    Trailer,
};
use crate::queue::redb::{FILE_NAME, RedbOptions, RedbStore};

/// Records written per import batch (one transaction on redb).
const IMPORT_BATCH: usize = 1000;

/// `arauto state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StateCommand,
}

/// The `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Write the whole state of the configured backend to a file (stop the daemon first).
    Export(ExportArgs),
    /// Load a file written by `state export` into the configured backend (stop the daemon first).
    Import(ImportArgs),
    /// Convert a cluster's state to this arauto's layout (stop every node first; safe to repeat).
    Migrate(MigrateArgs),
}

/// `arauto state migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// `arauto state export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// The file to write (JSON Lines); must not exist yet.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
}

/// `arauto state import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// The file written by `arauto state export`.
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// Import into a backend that already holds state: only what it lacks is
    /// written; any job, dedupe key, cursor, order, status or counter it
    /// already has is kept as it is.
    #[arg(long)]
    pub merge: bool,
}

/// Run `arauto state …`.
pub(crate) fn run(args: StateArgs) -> Exit {
    let result = match args.command {
        StateCommand::Export(args) => export(&args),
        StateCommand::Import(args) => import(&args),
        StateCommand::Migrate(args) => migrate(&args),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(error) => {
            eprintln!("arauto: {error:#}");
            Exit::Failure
        }
    }
}

/// The configured backend, opened for a whole-state move, with whatever
/// keeps a daemon off it meanwhile.
struct Target {
    store: Box<dyn Portable>,
    /// Where it is, for messages.
    describe: String,
    // Dropped after the store (fields drop in order).
    _lock: Option<InstanceLock>,
}

/// Opens the redb file of `config`, under the state directory's lock.
/// `create`: an import may start a new file; an export needs one.
fn open_redb(config: &Config, create: bool) -> anyhow::Result<Target> {
    let state_dir = &config.daemon.state_dir;
    let path = state_dir.join(FILE_NAME);
    if !create && !path.exists() {
        bail!(
            "there is no state database at {} (daemon.state_dir of {}): nothing to export",
            path.display(),
            config.source_path().display()
        );
    }
    let in_use = |holder: Option<u32>| {
        anyhow!(
            "an arauto daemon{} is using state directory {}: stop it first (systemctl stop arauto), \
             so the state cannot change while it is moved",
            holder
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default(),
            state_dir.display()
        )
    };
    let lock = match InstanceLock::acquire(state_dir) {
        Ok(lock) => lock,
        Err(LockError::Held { holder, .. }) => return Err(in_use(holder)),
        Err(error) => return Err(error.into()),
    };
    let options = RedbOptions {
        time_zone: config.daemon.timezone.clone(),
        ..RedbOptions::default()
    };
    let store = match RedbStore::open_file(&path, options) {
        Ok(store) => store,
        Err(crate::queue::Error::Locked { .. }) => return Err(in_use(None)),
        Err(error) => {
            return Err(anyhow!(error).context(format!("cannot open {}", path.display())));
        }
    };
    Ok(Target {
        store: Box::new(store),
        describe: format!("redb {}", path.display()),
        _lock: Some(lock),
    })
}

/// The backend `config` names: the cluster's state with `[cluster]`, else
/// the redb file (see [`open_redb`] for `create`).
fn open_target(
    config: &Config,
    create: bool,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Target> {
    let Some(cluster) = &config.cluster else {
        return open_redb(config, create);
    };
    let store = runtime.block_on(open_cluster(
        cluster,
        &config.daemon.timezone,
        create,
        &ClusterView::everything(),
    ))?;
    Ok(Target {
        store: Box::new(store),
        describe: format!(
            "the cluster state (prefix {:?}) at {}",
            cluster.prefix,
            cluster.servers.join(", ")
        ),
        _lock: None,
    })
}

/// `arauto state migrate`: see the module docs.
fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let config =
        config::load(args.config.config.as_deref()).map_err(|errors| anyhow!("{errors}"))?;
    let Some(cluster) = &config.cluster else {
        bail!(
            "{} has no [cluster] section: only a cluster's state has layouts to migrate",
            config.source_path().display()
        );
    };
    let runtime = runtime()?;
    let done = runtime.block_on(async {
        let inspection = crate::cluster::inspect::inspect(cluster).await?;
        let holders: std::collections::BTreeSet<&str> = inspection
            .slot_holders
            .values()
            .flatten()
            .map(String::as_str)
            .chain(inspection.live_nodes.iter().map(String::as_str))
            .collect();
        if !holders.is_empty() {
            bail!(
                "arauto node(s) {} of the cluster at {} are running (a current heartbeat or lease): \
                 stop every node first (systemctl stop arauto on each), then run this again",
                holders.into_iter().collect::<Vec<_>>().join(", "),
                cluster.servers.join(", ")
            );
        }
        let client =
            crate::cluster::connect::connect(cluster, std::time::Duration::from_secs(10)).await?;
        let js = async_nats::jetstream::new(client);
        let options = crate::queue::nats::NatsOptions {
            prefix: cluster.prefix.clone(),
            replicas: cluster.replicas,
        };
        crate::queue::nats::NatsStore::migrate_layout(js, options)
            .await
            .with_context(|| {
                format!(
                    "cannot migrate the cluster state (prefix {:?}) at {}",
                    cluster.prefix,
                    cluster.servers.join(", ")
                )
            })
    })?;
    if done.already_current {
        println!(
            "the cluster state (prefix {:?}) is in layout {} already: nothing to do",
            cluster.prefix,
            crate::queue::nats::STATE_LAYOUT
        );
    } else {
        println!(
            "migrated the cluster state (prefix {:?}) to layout {}: {} job(s) moved, {} dedupe key(s) repointed, {} left-over dedupe key(s) freed, {} outcome(s) copied; start the nodes now",
            cluster.prefix,
            crate::queue::nats::STATE_LAYOUT,
            done.jobs,
            done.dedupe_keys,
            done.dedupe_leftovers,
            done.outcomes
        );
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    config::load(arg.config.as_deref()).map_err(|errors| anyhow!("{errors}"))
}

fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let output = &args.output;
    if output.exists() {
        bail!(
            "{} already exists: choose another name, or remove it first",
            output.display()
        );
    }
    let runtime = runtime()?;
    let target = open_target(&config, false, &runtime)?;
    let exported_at = Timestamp::now();
    let body_path = sibling(output, "records.tmp")?;
    let final_path = sibling(output, "tmp")?;
    let result = runtime.block_on(write_export(
        &*target.store,
        exported_at,
        &body_path,
        &final_path,
    ));
    let _ = std::fs::remove_file(&body_path);
    let counts = match result {
        Ok(counts) => counts,
        Err(error) => {
            let _ = std::fs::remove_file(&final_path);
            return Err(error);
        }
    };
    std::fs::rename(&final_path, output).with_context(|| {
        format!(
            "cannot rename {} to {}",
            final_path.display(),
            output.display()
        )
    })?;
    println!(
        "exported {counts} from {} to {}",
        target.describe,
        output.display()
    );
    drop(target);
    Ok(())
}

/// `.<name>.<suffix>` next to `output`: same file system, so the rename is atomic.
fn sibling(output: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let name = output
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", output.display()))?;
    Ok(output.with_file_name(format!(".{}.{suffix}", name.to_string_lossy())))
}

/// Streams the records into `body_path` (counting them), then writes the
/// header, the records and the trailer into `final_path`, synced.
async fn write_export(
    source: &dyn Portable,
    exported_at: Timestamp,
    body_path: &Path,
    final_path: &Path,
) -> anyhow::Result<Counts> {
    let create = |path: &Path| {
        File::create(path).with_context(|| format!("cannot create {}", path.display()))
    };
    let write_error = |path: &Path| format!("cannot write {}", path.display());
    let mut counts = Counts::default();
    {
        let mut body = BufWriter::new(create(body_path)?);
        let mut records = source.export();
        while let Some(record) = records.next().await {
            let record = record
                .with_context(|| format!("cannot read the state from {}", source.backend_name()))?;
            portable::write_record(&mut body, &record).with_context(|| write_error(body_path))?;
            counts.add(&record);
        }
        body.flush().with_context(|| write_error(body_path))?;
    }
    let mut out = BufWriter::new(create(final_path)?);
    let header = Header {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        source_backend: source.backend_name().to_owned(),
        exported_at,
        counts,
    };
    portable::write_header(&mut out, &header).with_context(|| write_error(final_path))?;
    let mut body = File::open(body_path)
        .with_context(|| format!("cannot read back {}", body_path.display()))?;
    std::io::copy(&mut body, &mut out).with_context(|| write_error(final_path))?;
    portable::write_trailer(&mut out, &Trailer { counts })
        .with_context(|| write_error(final_path))?;
    let file = out
        .into_inner()
        .map_err(|error| anyhow!("{}: {}", write_error(final_path), error.error()))?;
    file.sync_all().with_context(|| write_error(final_path))?;
    Ok(counts)
}

fn open_input(path: &Path) -> anyhow::Result<FileReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(FileReader::new(BufReader::new(file), path)?)
}

fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let input = &args.input;
    // First pass: the whole file must read, up to a trailer that matches,
    // before anything is written.
    let mut reader = open_input(input)?;
    while reader.next_record()?.is_some() {}
    let header = reader.header().clone();

    let runtime = runtime()?;
    let target = open_target(&config, true, &runtime)?;
    let imported = runtime.block_on(async {
        if !args.merge && !target.store.is_empty().await? {
            bail!(
                "{} already holds a state: importing into it would mix two states; \
                 import into an empty one, or add --merge to write only what it lacks",
                target.describe
            );
        }
        write_import(&*target.store, input).await
    })?;
    let describe = target.describe.clone();
    drop(target);
    println!(
        "imported {} into {describe} (from a {} export of {})",
        imported.written, header.source_backend, header.exported_at
    );
    if imported.kept.total() > 0 {
        println!("kept as the target had them: {}", imported.kept);
    }
    Ok(())
}

/// Second pass: the records, in batches.
async fn write_import(target: &dyn Portable, input: &Path) -> anyhow::Result<Imported> {
    let mut reader = open_input(input)?;
    let mut tally = Imported::default();
    let mut batch: Vec<Record> = Vec::with_capacity(IMPORT_BATCH);
    let mut first_line = 0;
    let mut last_line = 0;
    loop {
        let next = reader.next_record()?;
        let done = next.is_none();
        if let Some((line, record)) = next {
            if batch.is_empty() {
                first_line = line;
            }
            last_line = line;
            batch.push(record);
        }
        if batch.len() >= IMPORT_BATCH || (done && !batch.is_empty()) {
            let written = target
                .import(std::mem::take(&mut batch))
                .await
                .with_context(|| {
                    format!(
                        "{}:{first_line}-{last_line}: cannot import these records (the lines before them are imported; fix the cause and run the import again with --merge)",
                        input.display()
                    )
                })?;
            tally.merge(written);
        }
        if done {
            return Ok(tally);
        }
    }
}
