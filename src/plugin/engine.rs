//! The daemon's one wasmtime [`Engine`] and the thread that drives its epoch.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, OptLevel};

/// How often the epoch advances. Every running call checks its wall-clock
/// deadline (and cancellation) once per tick, so this is also the precision
/// of the per-call timeout.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine configuration every plugin is compiled and run with. The
/// compiled-artifact cache key includes a hash of it, so changing anything
/// here invalidates old cache entries by itself.
pub(crate) fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.parallel_compilation(true);
    Engine::new(&config)
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
