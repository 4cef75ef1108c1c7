//! Poll scheduling: one sweep per store per interval, never two at once.

mod store;

pub use store::StoreRuntime;
