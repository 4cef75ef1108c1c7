//! Reading the files a configuration names (itself, secret files, template
//! files) with a size cap, so a wrong path such as `/dev/zero` or a log file
//! is refused after `max + 1` bytes instead of being read whole.

use std::io::Read;
use std::path::Path;

/// The first `max + 1` bytes of `path` at most: more than `max` means "too big".
pub(crate) fn read_at_most(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}
