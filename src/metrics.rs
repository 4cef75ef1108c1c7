//! Prometheus metrics and their loopback HTTP endpoint.
