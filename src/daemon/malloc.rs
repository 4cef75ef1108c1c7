//! glibc's allocator, tuned for a long-running daemon with many small,
//! long-lived records (one set per store).
//!
//! **Arenas.** glibc gives every thread that allocates under contention its
//! own arena, up to 8 per core, and memory freed in one arena is never reused
//! by another. The daemon's sweeps run on the tokio workers and the state
//! database's writer thread, so the short-lived buffers of thousands of
//! sweeps end up spread over several arenas, each keeping its own free
//! chunks resident. Two arenas (one per core of the 2-core machine of
//! docs/BENCHMARKS.md) were measured at 10,000 Loja Integrada stores:
//! RSS after polling 162 → 156 MiB (one arena: 153 MiB), CPU per sweep
//! within the noise of the run. Per-thread caches (tcache) still serve most
//! small allocations without the arena lock.
//!
//! **Thresholds.** glibc starts with a 128 KiB mmap threshold (a block at
//! least that large gets its own mapping, unmapped when freed) and a 128 KiB
//! trim threshold (free memory above that at the top of a heap goes back to
//! the kernel), but raises both for good the first time a mapped block is
//! freed: to that block's size, up to 32 MiB, and twice that. The daemon
//! frees multi-MiB blocks while reading its configuration (the file's text,
//! the parser's token vector), so from start-up on every later buffer up to
//! that size came from the arenas and up to twice that stayed resident after
//! a free. Setting both with `mallopt` keeps them at 128 KiB.
//! docs/BENCHMARKS.md, "RSS after polling (issue 16, session 27)": 10,000
//! stores, RSS after polling −5 MiB, CPU per sweep within the noise.
//!
//! An operator's own setting wins: `MALLOC_ARENA_MAX`,
//! `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` (read by glibc itself)
//! or any `glibc.malloc` tunable in `GLIBC_TUNABLES`.

/// Arenas when the environment does not say.
const ARENAS: i32 = 2;
/// Blocks of this size or more get their own mapping (glibc's initial value).
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Free memory at the top of a heap above this is returned to the kernel
/// (glibc's initial value).
const TRIM_THRESHOLD: i32 = 128 * 1024;

/// Tune glibc's allocator (see the module docs). Call before the first
/// thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let unset = |variable: &str, tunable: &str| {
            std::env::var_os(variable).is_none() && !tunables.contains(tunable)
        };
        let mut settings = Vec::new();
        if unset("MALLOC_ARENA_MAX", "glibc.malloc.arena_max") {
            settings.push((libc::M_ARENA_MAX, ARENAS));
        }
        if unset("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold") {
            settings.push((libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD));
        }
        if unset("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold") {
            settings.push((libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD));
        }
        for (parameter, value) in settings {
            // SAFETY: `mallopt` only sets a glibc tunable; called before any
            // other thread exists (the tokio runtime is built afterwards).
            #[allow(unsafe_code)]
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}
