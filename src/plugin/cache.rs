//! Compiled plugins on disk, so a restart does not recompile them.
//!
//! An entry is `<sha256 of the .wasm>-<engine key>.cwasm` in the cache
//! directory. The engine key hashes [`Engine::precompile_compatibility_hash`]
//! (wasmtime version, engine configuration, CPU features), so an artifact is
//! only ever offered to an engine that can run it; a new wasmtime or config
//! simply misses. Entries are written to a temporary file and renamed into
//! place, so a reader never sees half a file.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded plugin's machine code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactSource {
    /// Loaded from the compiled-artifact cache: no compilation.
    Cache,
    /// Compiled now (cache empty, or no cache directory configured).
    Compiled,
    /// The cache entry was unusable (corrupt, or from an incompatible build):
    /// it was discarded and the plugin compiled again.
    RecompiledBadCacheEntry,
}

/// The on-disk cache of compiled components.
#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
    read_only: bool,
}

/// `Hasher` adapter that feeds wasmtime's compatibility hash into SHA-256, so
/// the key is stable across processes (std's `DefaultHasher` promises nothing).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes([
            digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
        ])
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ArtifactCache {
    /// Open (and create, owner-only) the cache directory.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: engine_key(engine),
            read_only: false,
        })
    }

    /// Use `dir` for loads only (`None` if it is not a readable directory).
    pub(crate) fn open_read_only(dir: &Path, engine: &Engine) -> Option<Self> {
        std::fs::read_dir(dir).ok()?;
        Some(Self {
            dir: dir.to_owned(),
            engine_key: engine_key(engine),
            read_only: true,
        })
    }

    /// The entry for a `.wasm` with this SHA-256 (hex).
    pub(crate) fn entry_path(&self, wasm_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{}.cwasm", self.engine_key))
    }

    /// Load the cached artifact, if there is one. `Err` means an entry exists
    /// but cannot be used; it has been removed and the caller must compile.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        wasm_sha256: &str,
    ) -> Result<Option<Component>, CacheError> {
        let path = self.entry_path(wasm_sha256);
        if !path.exists() {
            return Ok(None);
        }
        // SAFETY: `deserialize_file` trusts the file to be machine code that
        // wasmtime produced for a compatible engine. We only read files we
        // wrote ourselves (via `store`, from `Component::serialize`) into a
        // cache directory created owner-only that nothing else writes; entries
        // are replaced by atomic rename, never modified in place, so a mapped
        // file does not change under us. wasmtime still checks the header
        // and engine compatibility and rejects foreign or truncated files.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Ok(Some(component)),
            Err(error) => {
                let _ = std::fs::remove_file(&path);
                Err(CacheError::Unusable { path, error })
            }
        }
    }

    /// Write `component`'s artifact for the `.wasm` with this SHA-256.
    pub(crate) fn store(&self, component: &Component, wasm_sha256: &str) -> Result<(), CacheError> {
        static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
        if self.read_only {
            return Ok(());
        }
        let path = self.entry_path(wasm_sha256);
        let bytes = component.serialize().map_err(CacheError::Serialize)?;
        let tmp = self.dir.join(format!(
            ".{wasm_sha256}.{}.{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        written.map_err(|error| {
            let _ = std::fs::remove_file(&tmp);
            CacheError::Write { path, error }
        })
    }
}

/// Why a cache entry could not be used or written. Never fatal: the host
/// logs it and compiles the plugin instead.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    /// An entry exists but wasmtime refused it (it has been removed).
    #[error("{}: {error}", path.display())]
    Unusable {
        path: PathBuf,
        error: wasmtime::Error,
    },
    /// The compiled component could not be serialised.
    #[error("serializing: {0}")]
    Serialize(wasmtime::Error),
    /// The artifact could not be written into the cache directory.
    #[error("writing {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The part of an entry's name that changes with the engine's configuration.
fn engine_key(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// SHA-256 of `bytes`, lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
