//! What the benchmark reads from Linux: peak and current resident memory of a process, its
//! CPU time, and a description of the machine. Everything degrades to `None` elsewhere.

use serde::Serialize;

/// A `kB` field of `/proc/<pid>/status` (`/proc/self/status` for `None`).
fn status_kb(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    kb_field(&path, field)
}

/// A `<field>: <n> kB` line of a /proc file.
fn kb_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?.trim();
        value.strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Peak resident set size (`VmHWM`) in KiB.
pub fn peak_rss_kb(pid: Option<u32>) -> Option<u64> {
    status_kb(pid, "VmHWM")
}

/// Current resident set size (`VmRSS`) in KiB.
pub fn rss_kb(pid: Option<u32>) -> Option<u64> {
    status_kb(pid, "VmRSS")
}

/// Resets this process's peak RSS to its current RSS (Linux ≥ 4.0). False if refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// User plus system CPU seconds a process has used (`/proc/<pid>/stat`, in USER_HZ = 100 ticks
/// per second on Linux).
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 of stat(5) is `fields[0]`; utime (14) and stime (15) follow.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// KiB to MB (10^6 bytes), the unit the report uses.
pub fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1_000_000.0
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_gib: Option<f64>,
    pub kernel: Option<String>,
    /// 1-minute load average when the run started.
    pub load_average: Option<f64>,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    });
    let memory_gib = kb_field("/proc/meminfo", "MemTotal").map(|kb| kb as f64 / 1_048_576.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model,
        memory_gib,
        kernel,
        load_average,
    }
}

/// Asks a process to stop as an operator would (SIGTERM), through kill(1): this workspace
/// has no unsafe code, so no direct libc call.
pub async fn terminate(pid: u32) -> std::io::Result<()> {
    let status = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill -TERM {pid}: {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_kb(None).unwrap() >= rss_kb(None).unwrap() / 2);
            assert!(cpu_secs(None).is_some());
        }
        assert!(machine().cpus >= 1);
    }
}
