//! Change detection: compares new order snapshots with the stored ones.
