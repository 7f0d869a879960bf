//! Interop: our client and the official `@supabase/realtime-js` (Node, from tests/interop's
//! pinned npm install) on one channel see each other's broadcasts and presence, both ways.
//!
//! Needs `node` and `tests/interop/node_modules` (installed by `tests/interop/run`). Without
//! them the test says so and skips, unless SUPA_INTEROP_REQUIRED=1 makes that a failure.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::json;
use supa_realtime::{ChannelOptions, Event, PresenceEvent};
use support::{broadcast_json, client, server, Recorder, DEADLINE};

const PEER: &str = r#"
import { RealtimeClient } from '@supabase/realtime-js'
import WebSocket from 'ws'
const fail = (m) => { console.log('FAIL ' + m); process.exit(1) }
setTimeout(() => fail('deadline'), 20000)
const client = new RealtimeClient(process.env.WS_URL, { params: { apikey: process.env.ANON_KEY }, transport: WebSocket })
const ch = client.channel(process.env.CHANNEL, { config: { presence: { key: 'js' } } })
let got = false, saw = false
const done = () => { if (got && saw) { console.log('DONE'); client.disconnect(); process.exit(0) } }
ch.on('broadcast', { event: 'from-rust' }, async (m) => {
  console.log('GOT ' + JSON.stringify(m.payload))
  await ch.send({ type: 'broadcast', event: 'from-js', payload: { echo: m.payload } })
  got = true; done()
})
ch.on('presence', { event: 'join' }, (e) => { if (e.key === 'rust') { console.log('PRESENCE ' + JSON.stringify(e.newPresences[0].client)); saw = true; done() } })
ch.subscribe(async (status, err) => {
  if (status === 'SUBSCRIBED') {
    if ((await ch.track({ client: 'js' })) !== 'ok') fail('track')
    console.log('READY')
  } else if (status !== 'CLOSED') fail(status + ' ' + err)
})
"#;

#[test]
fn realtime_js_and_our_client_see_each_other() {
    let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let required = std::env::var("SUPA_INTEROP_REQUIRED").is_ok_and(|v| v == "1");
    let installed = interop.join("node_modules/@supabase/realtime-js").is_dir()
        && Command::new("node").arg("--version").output().is_ok();
    if !installed {
        assert!(
            !required,
            "node or tests/interop/node_modules missing (run tests/interop/run)"
        );
        eprintln!(
            "SKIPPED: node or tests/interop/node_modules missing (run tests/interop/run first)"
        );
        return;
    }
    let server = server();
    let name = format!("interop-{}", std::process::id());
    let ours = client(&server);
    let r = Recorder::new();
    let ch = ours.channel(&name, ChannelOptions::default().presence_key("rust"));
    ch.on_event(r.sink());
    ch.on_presence(|_| {});
    ch.subscribe_blocking(DEADLINE).unwrap();

    let mut node = Command::new("node")
        .args(["--input-type=module", "-e", PEER])
        .current_dir(&interop) // so the bare imports resolve in tests/interop/node_modules
        .env("WS_URL", server.realtime_url())
        .env("ANON_KEY", server.anon_key())
        .env("CHANNEL", &name)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let (tx, lines) = mpsc::channel::<String>();
    let out = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let expect = |prefix: &str| -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(l) if l.starts_with("FAIL") => panic!("realtime-js peer: {l}"),
                Ok(_) => {}
                Err(e) => panic!("no {prefix:?} line from realtime-js: {e}"),
            }
        }
    };
    expect("READY");
    // realtime-js tracked: we see its presence join.
    r.wait("js presence", |e| {
        matches!(e, Event::Presence(PresenceEvent::Join { key, new, .. }) if key == "js" && new[0]["client"] == "js")
    });
    // We track and broadcast (binary kind 3); realtime-js sees both and answers (kind 3 too).
    ch.track_blocking(json!({"client": "rust"}), DEADLINE)
        .unwrap();
    ch.send_broadcast_blocking("from-rust", json!({"n": 1}).into(), DEADLINE)
        .unwrap();
    assert_eq!(expect("GOT "), r#"GOT {"n":1}"#);
    r.wait("echo from realtime-js", |e| {
        broadcast_json(e, "from-js") == Some(json!({"echo": {"n": 1}}))
    });
    expect("DONE");
    let status = node.wait().unwrap();
    assert!(status.success(), "realtime-js peer exited with {status}");
}
