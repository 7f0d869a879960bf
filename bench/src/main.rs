//! `supa-bench`: the Rust side of `scripts/bench`.
//!
//! ```text
//! supa-bench source <listen addr>                          replay frame source
//! supa-bench raw  <scenario> <url> <key> <name> <n>        the raw limit contestant
//! supa-bench ours <scenario> <url> <key> <name> <n>        our client (Rust API)
//! supa-bench send <url> <key> <name> <count> <rate>        latency sender
//! supa-bench pg-setup <database url>
//! supa-bench pg-insert <database url> <count> <rate>
//! ```
//! Scenarios: `throughput`, `latency`, `memory`, `connect`, `pg`, and `channels` (n joined
//! channels, n - 1 idle and the busy `tp-<msgs>-…` joined last; RSS read before the busy
//! one, then throughput as in `throughput`). Contestants print
//! `READY` when subscribed (latency, memory, pg) and one `RESULT <json>` line.

// Every unsafe block says why it is sound.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod drivers;
mod ours;
mod raw;
mod source;
mod util;

use std::error::Error;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("supa-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), Box<dyn Error>> {
    let mut argv = std::env::args().skip(1);
    let role = argv.next().unwrap_or_default();
    let rest: Vec<String> = argv.collect();
    let arg = |i: usize| {
        rest.get(i)
            .cloned()
            .ok_or_else(|| format!("{role}: missing argument {}", i + 1))
    };
    match role.as_str() {
        "source" => rt().block_on(source::run(&arg(0)?)),
        "raw" => rt().block_on(raw::run(util::Args::parse(rest.into_iter())?)),
        "ours" => ours::run(util::Args::parse(rest.into_iter())?),
        "send" => {
            let rate: f64 = arg(4)?.parse()?;
            let mut it = vec!["send".to_owned()];
            it.extend(rest.into_iter().take(4));
            rt().block_on(drivers::send(util::Args::parse(it.into_iter())?, rate))
        }
        "pg-setup" => rt().block_on(drivers::pg_setup(&arg(0)?)),
        "pg-insert" => rt().block_on(drivers::pg_insert(
            &arg(0)?,
            arg(1)?.parse()?,
            arg(2)?.parse()?,
        )),
        _ => Err(format!("unknown role {role:?}; see the module docs of bench/src/main.rs").into()),
    }
}
