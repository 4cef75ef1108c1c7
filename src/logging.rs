//! Logging setup: journald when stderr is the journal, text or JSON otherwise.
