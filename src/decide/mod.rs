//! Recognition (platform status → notification kind) and the happy-path rules.
