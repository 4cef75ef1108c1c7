//! Ports for servers a test starts in another process (`nats-server`, the
//! daemon's metrics or webhook listener), which must be named on their
//! command line or in their config before they bind.
//!
//! A port the kernel hands out for `127.0.0.1:0` comes from the ephemeral
//! range (`net.ipv4.ip_local_port_range`, 32768–60999 by default), the same
//! range every outgoing connection takes its local port from. Between the
//! test releasing such a port and the server binding it, any connection
//! (a daemon reconnecting to NATS, a client of a fake) can take it: CI saw
//! `nats-server` fail with `bind: address already in use` that way. So the
//! ports here come from below the ephemeral range, where only an explicit
//! bind lands: each process walks its own stretch of it (an offset from its
//! pid), never hands out a port twice, and skips ports that are in use.

use std::net::TcpListener;
use std::sync::Mutex;

/// The lowest port handed out: above the well-known and most registered
/// service ports a developer machine may run.
const FLOOR: u32 = 10_000;

/// Where the kernel's ephemeral range starts (ports at or above it are
/// never handed out), read once from procfs; 32768 when it cannot be read.
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|start| *start > FLOOR + 1_000)
        .unwrap_or(32_768)
}

/// A port on 127.0.0.1 that is free now, below the ephemeral range, and not
/// handed out before by this process.
pub fn free_port() -> u16 {
    // The next candidate, as an offset into [FLOOR, ephemeral start).
    static NEXT: Mutex<Option<u32>> = Mutex::new(None);
    let span = ephemeral_start() - FLOOR;
    let mut next = NEXT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let offset = next.get_or_insert_with(|| std::process::id().wrapping_mul(7_919) % span);
    for _ in 0..span {
        let port = u16::try_from(FLOOR + *offset).expect("ports are below 65536");
        *offset = (*offset + 1) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {FLOOR} and the ephemeral range");
}

/// [`free_port`] as an address on 127.0.0.1.
pub fn free_address() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], free_port()))
}
