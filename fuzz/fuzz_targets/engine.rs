//! The client's frame handling: a sans-IO engine with joined channels, fed a script of frames
//! (every event kind, binary kinds, replies with odd shapes aimed at the refs it really sent),
//! commands, socket events, token answers and clock ticks. It must never panic, and what a
//! server makes it keep stays within the configured bounds.
//!
//! The input is text, one operation per line (so the seed corpus is readable and libFuzzer's
//! line-aware mutations apply); a first line `v1` switches to vsn 1.0.0, `tp` adds a token
//! provider. See `op` below for the operations.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use supa_realtime::fuzzing::FuzzEngine;
use supa_realtime::{ClientOptions, Vsn};

/// The bounds the engine runs with: small, so that inputs reach them.
const MAX_PRESENCE_KEYS: usize = 8;
const MAX_PRESENCE_SIZE: usize = 2048;
const MAX_PAYLOAD_SIZE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').peekable();
    let mut opts = ClientOptions::new("ws://127.0.0.1:1/realtime/v1", "key")
        .access_token("token")
        .max_presence_keys(MAX_PRESENCE_KEYS)
        .max_presence_size(MAX_PRESENCE_SIZE)
        .max_payload_size(MAX_PAYLOAD_SIZE);
    while let Some(flag) = lines.next_if(|l| matches!(*l, "v1" | "tp")) {
        match flag {
            "v1" => opts = opts.vsn(Vsn::V1),
            _ => opts = opts.token_provider(|| Ok(None)),
        }
    }
    let mut e = FuzzEngine::with_options(4, opts);
    for line in lines {
        op(&mut e, line);
        e.drain();
        let (keys, _) = e.presence_size();
        assert!(keys <= MAX_PRESENCE_KEYS, "{keys} presence keys kept");
    }
    e.advance(Duration::from_secs(3600));
    e.drain();
});

/// A leading decimal number (0 when there is none) and the rest after one space.
fn num(s: &str) -> (usize, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().unwrap_or(usize::MAX);
    let rest = &s[end..];
    (n, rest.strip_prefix(' ').unwrap_or(rest))
}

/// `word rest`: the first space-separated word and what follows it.
fn word(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::String(s.to_owned()))
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter_map(|b| (b as char).to_digit(16)).map(|d| d as u8).collect();
    digits.chunks(2).map(|p| p.iter().fold(0, |a, d| a << 4 | d)).collect()
}

fn token(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn op(e: &mut FuzzEngine, line: &str) {
    let Some(code) = line.chars().next() else {
        return;
    };
    let arg = &line[code.len_utf8()..];
    match code {
        'T' => e.text(arg),
        'B' => e.binary(&hex(arg)),
        'R' => {
            let (n, rest) = num(arg);
            let (status, response) = word(rest);
            e.reply(n, status, response);
        }
        'A' => e.advance(Duration::from_millis(num(arg).0.min(3_600_000) as u64)),
        'S' => e.subscribe(num(arg).0),
        'U' => e.unsubscribe(num(arg).0),
        'P' | 'Q' => {
            let (n, rest) = num(arg);
            let (event, payload) = word(rest);
            e.broadcast(n, event, json(payload), code == 'Q');
        }
        'K' => {
            let (n, meta) = num(arg);
            e.track(n, json(meta));
        }
        'k' => e.untrack(num(arg).0),
        'a' => e.set_auth(token(arg)),
        'O' => e.connected(true, None),
        'o' => e.connected(true, Some(Ok(token(arg)))),
        'F' => e.connected(false, None),
        'X' => e.closed(arg),
        'C' => e.connect(true),
        'D' => e.connect(false),
        'L' => e.check_link(false),
        'G' => e.check_link(true),
        't' => e.token(Ok(token(arg))),
        'e' => e.token(Err(arg.to_owned())),
        _ => {}
    }
}
