//! glibc's allocator, tuned for a long-running daemon with many small,
//! long-lived records (one set per store).
//!
//! glibc gives every thread that allocates under contention its own arena,
//! up to 8 per core, and memory freed in one arena is never reused by
//! another. The daemon's sweeps run on the tokio workers and the state
//! database's writer thread, so the short-lived buffers of thousands of
//! sweeps end up spread over several arenas, each keeping its own free
//! chunks resident. Two arenas (one per core of the 2-core machine of
//! docs/BENCHMARKS.md) were measured at 10,000 Loja Integrada stores:
//! RSS after polling 162 → 156 MiB (one arena: 153 MiB), CPU per sweep
//! within the noise of the run. Per-thread caches (tcache) still serve most
//! small allocations without the arena lock.
//!
//! An operator's own `MALLOC_ARENA_MAX` (read by glibc itself) wins.

/// Arenas when the environment does not say.
const ARENAS: i32 = 2;

/// Cap glibc's arenas at [`ARENAS`]. Call before the first thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets a glibc tunable; called before any
        // other thread exists (the tokio runtime is built afterwards).
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}
