//! Shared pieces of every Rust contestant: the command line, clocks, CPU time and the result line.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// `<scenario> <url> <key> <name> <n>`: the command line every contestant (in every language) takes.
pub struct Args {
    pub scenario: String,
    /// `ws://HOST:PORT/realtime/v1`.
    pub url: String,
    pub key: String,
    /// Channel name (topic `realtime:<name>`), or the prefix of the channel names.
    pub name: String,
    /// Messages to receive, channels to join, or connect iterations, per scenario.
    pub n: usize,
}

impl Args {
    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut next = |what: &str| it.next().ok_or_else(|| format!("missing <{what}>"));
        let scenario = next("scenario")?;
        let url = next("url")?;
        let key = next("key")?;
        let name = next("name")?;
        let n = next("n")?.parse().map_err(|e| format!("bad <n>: {e}"))?;
        Ok(Args {
            scenario,
            url,
            key,
            name,
            n,
        })
    }
}

/// Wall-clock microseconds since the epoch: the latency scenarios compare clocks of two
/// processes on the same machine.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// User + system CPU seconds of this process (all threads).
pub fn cpu_secs() -> f64 {
    // SAFETY: `rusage` is plain integers, for which all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident memory of this process in bytes (`VmRSS`), 0 where /proc does not have it.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The number of broadcasts the replay source sends on channel `tp-<N>-…`.
pub fn replay_count(name: &str) -> Option<usize> {
    name.strip_prefix("tp-")?.split('-').next()?.parse().ok()
}

/// Prints the one `RESULT <json>` line the orchestrator reads.
pub fn result(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "RESULT {v}");
    let _ = out.flush();
}

/// Tells the orchestrator the contestant is subscribed and waiting.
pub fn ready() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "READY");
    let _ = out.flush();
}

/// Blocks until the orchestrator closes our stdin (memory scenario: it reads our RSS meanwhile).
pub fn wait_stdin_closed() {
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
}

/// A 100-byte JSON object `{"i":…,"pad":"…"}` (or `"t"` for a timestamp).
pub fn payload100(field: &str, value: u64) -> String {
    let head = format!("{{\"{field}\":{value},\"pad\":\"");
    let pad = 100usize.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

/// Throughput contestants read the clock once per this many deliveries (and at the last).
pub const CLOCK_EVERY: usize = 1024;

/// Throughput/latency summary shared by the Rust contestants.
pub struct Window {
    pub first: Option<(std::time::Instant, f64)>,
}

impl Window {
    pub fn new() -> Self {
        Window { first: None }
    }
    pub fn start(&mut self) {
        if self.first.is_none() {
            self.first = Some((std::time::Instant::now(), cpu_secs()));
        }
    }
    /// `{"n", "secs", "cpu_s"}` for messages 2..=n (the clock starts at the first message).
    pub fn finish(&self, n: usize, extra: serde_json::Value) -> serde_json::Value {
        let (t0, c0) = self
            .first
            .unwrap_or((std::time::Instant::now(), cpu_secs()));
        let mut v = serde_json::json!({
            "n": n.saturating_sub(1),
            "secs": t0.elapsed().as_secs_f64(),
            "cpu_s": cpu_secs() - c0,
        });
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_replay_count_and_rss() {
        assert_eq!(super::replay_count("tp-500-c100"), Some(500));
        assert_eq!(super::replay_count("idle-3"), None);
        assert!(super::rss_bytes() > 0);
    }

    #[test]
    fn payload_is_100_bytes() {
        for v in [0, 7, 123456, u64::MAX / 3] {
            let p = super::payload100("t", v);
            assert_eq!(p.len(), 100, "{p}");
            serde_json::from_str::<serde_json::Value>(&p).unwrap();
        }
    }
}
