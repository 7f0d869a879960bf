//! The `supa-realtime-server` binary as a child process, for tests that measure the server's
//! own memory (an in-process server shares its RSS with the test's clients).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Binary {
    child: Child,
    /// `ws://HOST:PORT/realtime/v1`.
    pub realtime_url: String,
    pub anon_key: String,
}

impl Binary {
    /// Starts the binary on a free port with `args` (no database unless given).
    pub fn start(args: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_supa-realtime-server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server binary starts");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        while lines.len() < 2 {
            lines.push(
                rx.recv_timeout(Duration::from_secs(30))
                    .expect("startup line in time"),
            );
        }
        let http = lines[0].strip_prefix("listening on ").expect(&lines[0]);
        Binary {
            child,
            realtime_url: format!("{}/realtime/v1", http.replacen("http", "ws", 1)),
            anon_key: lines[1].strip_prefix("anon key: ").expect(&lines[1]).into(),
        }
    }

    /// The process's peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kb * 1024
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
