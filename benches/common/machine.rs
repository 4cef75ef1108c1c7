//! Where a benchmark ran: CPU, cores, memory, the file system under the
//! benchmark directory (and what an fsync costs there), and the load other
//! users of the machine put on it.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

/// The CPU model from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Total memory, from `/proc/meminfo`.
pub fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0))
}

/// The 1-minute load average (other people build on this machine too).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let mut fields = text.split_whitespace();
            Some(format!(
                "{} {} {}",
                fields.next()?,
                fields.next()?,
                fields.next()?
            ))
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// The mount holding `dir`: (mount point, file system type, device).
pub fn file_system(dir: &Path) -> (String, String, String) {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut best: Option<(String, String, String)> = None;
    if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in text.lines() {
            // id parent major:minor root mount-point options... - fstype source super-options
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mount), Some(fstype), Some(source)) =
                (fields.get(4), fields.get(dash + 1), fields.get(dash + 2))
            else {
                continue;
            };
            if dir.starts_with(mount)
                && best.as_ref().is_none_or(|(m, _, _)| mount.len() >= m.len())
            {
                best = Some((
                    (*mount).to_owned(),
                    (*fstype).to_owned(),
                    (*source).to_owned(),
                ));
            }
        }
    }
    best.unwrap_or_else(|| ("/".into(), "?".into(), "?".into()))
}

/// "rotational" / "non-rotational" / "virtual" for a `/dev/<name>` device.
fn device_kind(device: &str) -> String {
    let Some(name) = device.strip_prefix("/dev/") else {
        return String::new();
    };
    // Partitions (vda1, nvme0n1p2) live under their disk in /sys/class/block.
    let rotational = std::fs::read_to_string(format!("/sys/class/block/{name}/queue/rotational"))
        .or_else(|_| {
            let disk = name.trim_end_matches(|c: char| c.is_ascii_digit());
            let disk = disk.strip_suffix('p').unwrap_or(disk);
            std::fs::read_to_string(format!("/sys/class/block/{disk}/queue/rotational"))
        })
        .map(|text| text.trim() == "1");
    let virtio = name.starts_with("vd") || name.starts_with("xvd");
    match (rotational, virtio) {
        (_, true) => "virtio disk (VM)".to_owned(),
        (Ok(true), _) => "rotational disk".to_owned(),
        (Ok(false), _) => "SSD/NVMe".to_owned(),
        (Err(_), _) => String::new(),
    }
}

/// Median of `rounds` 4 KiB write + fdatasync on `dir`: what one durable
/// commit costs at least on this disk.
pub fn fsync_cost(dir: &Path, rounds: usize) -> Result<Duration> {
    let path = dir.join(format!(".fsync-probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    samples.sort();
    Ok(super::quantile(&samples, 0.5))
}

/// The lines every benchmark starts with: what it measures and on what.
pub fn print_header(title: &str, what: &[&str], dir: &Path) {
    let profile = if cfg!(debug_assertions) {
        "DEBUG build (numbers meaningless)"
    } else {
        "release build"
    };
    let (mount, fstype, device) = file_system(dir);
    let fsync = fsync_cost(dir, 20)
        .map(super::human)
        .unwrap_or_else(|e| format!("? ({e})"));
    println!();
    println!("== {title} ==");
    for line in what {
        println!("   {line}");
    }
    println!(
        "   on: {}, {} cores, {:.0} GiB RAM; {profile}; load average at start {}",
        cpu_model(),
        cores(),
        memory_gib(),
        load_average()
    );
    println!(
        "   files: {} ({fstype} on {device} {}, mounted at {mount}); 4 KiB write+fdatasync median {fsync}",
        dir.display(),
        device_kind(&device),
    );
    println!();
}

/// The closing line: the load while the benchmark ran.
pub fn print_footer(started: Instant) {
    println!(
        "   (took {:.0} s; load average at end {})",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}
