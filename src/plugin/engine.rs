//! The daemon's one wasmtime [`Engine`] and the thread that drives its epoch.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

/// How often the epoch advances. Every running call checks its wall-clock
/// deadline (and cancellation) once per tick, so this is also the precision
/// of the per-call timeout.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Linear-memory bytes a pool slot keeps mapped between calls. A call
/// dirties its stack and a little heap (a sender call: some tens of pages);
/// resetting those in place is cheaper than returning them to the kernel and
/// taking a page fault for each on the next call. Bounded so a connector that
/// parsed a large page does not pin megabytes per idle slot.
const MEMORY_KEEP_RESIDENT: usize = 1024 * 1024;
/// The same for tables (a few KiB of function references).
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;

/// Core instances one plugin component may need (wit-bindgen components
/// have three: the module and two small shims).
const CORE_INSTANCES_PER_PLUGIN: u32 = 8;

/// How instance memory is provided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Allocator {
    /// Pre-reserved slots reused call after call: every call instantiates
    /// afresh, and a warm slot saves the mmap/munmap of a new memory each time.
    Pooling,
    /// Fresh mappings per instance; used when the pool's virtual-memory
    /// reservation is refused (e.g. a `ulimit -v`).
    OnDemand,
}

/// The engine every plugin is compiled and run with. The compiled-artifact
/// cache key includes a hash of its configuration, so changing anything here
/// invalidates old cache entries by itself.
///
/// `max_concurrent_calls` sizes the instance pool; the host never runs more
/// sandboxes at once than that.
pub(crate) fn new_engine(max_concurrent_calls: u32) -> wasmtime::Result<(Engine, Allocator)> {
    let base = || {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(OptLevel::Speed);
        config.parallel_compilation(true);
        config
    };
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max_concurrent_calls)
        // Calls run on fibers (async wasmtime on the tokio workers): one
        // stack per running call, reused from the pool without zeroing
        // (wasm code cannot read its native stack).
        .total_stacks(max_concurrent_calls)
        .total_core_instances(max_concurrent_calls.saturating_mul(CORE_INSTANCES_PER_PLUGIN))
        .total_memories(max_concurrent_calls.saturating_mul(2))
        .total_tables(max_concurrent_calls.saturating_mul(CORE_INSTANCES_PER_PLUGIN))
        .max_tables_per_module(4)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        // Linux ≥ 6.7: reset only the pages a call actually touched (found
        // with the PAGEMAP_SCAN ioctl) instead of the whole resident prefix.
        .pagemap_scan(Enabled::Auto);
    let mut pooled = base();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&pooled) {
        Ok(engine) => Ok((engine, Allocator::Pooling)),
        Err(error) => {
            tracing::warn!(
                "cannot reserve the plugin instance pool ({error}); falling back to per-call allocation, \
                 which costs some microseconds per plugin call"
            );
            Ok((Engine::new(&base())?, Allocator::OnDemand))
        }
    }
}

/// Increments the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let engine = engine.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("arauto-plugin-epoch".into())
            .spawn(move || {
                // Dropping the sender (or sending) ends the loop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and increments; a panic there is impossible
            // in practice and there is nothing useful to do about one here.
            let _ = thread.join();
        }
    }
}
