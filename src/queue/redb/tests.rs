//! Unit tests that need to reach under the backend-neutral API.

use super::tables::{META, META_SCHEMA_KEY, SCHEMA_VERSION};
use super::*;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_newer_schema_is_refused_with_both_versions_and_the_file_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open(dir.path(), RedbOptions::default())?;
    let path = store.path().to_path_buf();
    drop(store);
    {
        let db = Database::create(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(META)?
            .insert(META_SCHEMA_KEY, SCHEMA_VERSION + 1)?;
        txn.commit()?;
    }
    match RedbStore::open(dir.path(), RedbOptions::default()) {
        Err(error @ Error::NewerSchema { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(
                message.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
                "{message}"
            );
            assert!(
                message.contains(&format!("up to {SCHEMA_VERSION}")),
                "{message}"
            );
        }
        other => panic!("expected a schema refusal, got {other:?}"),
    }
    // The refusal wrote nothing: the newer version is still recorded.
    let db = Database::create(&path)?;
    let version = db
        .begin_read()?
        .open_table(META)?
        .get(META_SCHEMA_KEY)?
        .map(|guard| guard.value());
    assert_eq!(version, Some(SCHEMA_VERSION + 1));
    Ok(())
}

#[test]
fn a_second_open_of_the_same_file_is_reported_as_locked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let _store = RedbStore::open(dir.path(), RedbOptions::default())?;
    match RedbStore::open(dir.path(), RedbOptions::default()) {
        Err(error @ Error::Locked { .. }) => {
            assert!(error.to_string().contains("arauto.redb"), "{error}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    Ok(())
}
