//! Quickstart: a local Realtime server (with a throwaway PostgreSQL when one can be started),
//! one channel with broadcast, presence and postgres changes, each made to happen and printed.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Exits 0 once every event arrived, 1 if one did not within its deadline.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::json;
use supa_realtime::{
    ChannelOptions, ClientOptions, Event, Payload, PostgresChangesFilter, PresenceEvent,
    RealtimeClient,
};
use supa_realtime_server::{Config, Server};

const DEADLINE: Duration = Duration::from_secs(20);

/// What has arrived so far, with a condition variable to wait on.
#[derive(Default)]
struct Seen {
    got: Mutex<Vec<&'static str>>,
    cv: Condvar,
}

impl Seen {
    fn mark(&self, what: &'static str) {
        self.got.lock().push(what);
        self.cv.notify_all();
    }

    fn wait(&self, what: &'static str) -> bool {
        let deadline = Instant::now() + DEADLINE;
        let mut got = self.got.lock();
        while !got.contains(&what) {
            if self.cv.wait_until(&mut got, deadline).timed_out() {
                return false;
            }
        }
        true
    }
}

/// A throwaway PostgreSQL from scripts/dev-postgres, stopped on drop.
struct DevPostgres {
    dir: PathBuf,
    url: String,
}

impl DevPostgres {
    fn start() -> Result<DevPostgres, String> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("supa-quickstart-{}", std::process::id()));
        let mut child = Command::new(root.join("scripts/dev-postgres"))
            .arg("start")
            .arg(&dir)
            .current_dir(&root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run scripts/dev-postgres: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100)); // polling a child process
                }
                _ => {
                    let _ = child.kill();
                    return Err("scripts/dev-postgres did not finish in time".into());
                }
            }
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let url = text
            .lines()
            .find_map(|l| l.strip_prefix("DATABASE_URL="))
            .ok_or_else(|| {
                format!(
                    "scripts/dev-postgres failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })?
            .to_owned();
        Ok(DevPostgres { dir, url })
    }
}

impl Drop for DevPostgres {
    fn drop(&mut self) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let _ = Command::new(root.join("scripts/dev-postgres"))
            .arg("stop")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs SQL on a helper runtime (the quickstart itself needs no async runtime).
fn sql(url: &str, statements: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        db.batch_execute(statements)
            .await
            .map_err(|e| e.to_string())
    })
}

fn main() {
    std::process::exit(match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            1
        }
    });
}

fn run() -> Result<(), String> {
    let pg = match DevPostgres::start() {
        Ok(pg) => {
            println!("PostgreSQL: started a throwaway cluster ({})", pg.url);
            Some(pg)
        }
        Err(e) => {
            println!("PostgreSQL: not available ({e}); running broadcast and presence only");
            None
        }
    };
    let server = Server::start(Config {
        database_url: pg.as_ref().map(|p| p.url.clone()),
        ..Config::default()
    })
    .map_err(|e| format!("server: {e}"))?;
    println!("server: {}", server.realtime_url());
    if let Some(pg) = &pg {
        sql(
            &pg.url,
            "drop table if exists quickstart_messages;
             create table quickstart_messages (id serial primary key, body text, created_at timestamptz default now());
             alter publication supabase_realtime add table quickstart_messages;",
        )?;
    }

    let client = RealtimeClient::new(ClientOptions::new(server.realtime_url(), server.anon_key()))
        .map_err(|e| e.to_string())?;
    let seen = Arc::new(Seen::default());
    let channel = client.channel(
        "quickstart",
        ChannelOptions::default()
            .broadcast_self(true)
            .presence_key("rustacean"),
    );

    channel.on_event(|e| {
        if let Event::ChannelStatus {
            topic,
            status,
            reason,
            ..
        } = e
        {
            println!(
                "status   {topic}: {} {}",
                status.as_str(),
                reason.as_deref().unwrap_or("")
            );
        }
    });
    let s = seen.clone();
    channel.on_broadcast("*", move |b| {
        let payload = match &b.payload {
            Payload::Json(v) => v.to_string(),
            Payload::Binary(bytes) => format!("{} bytes", bytes.len()),
        };
        println!("broadcast {}: {payload}", b.event);
        s.mark("broadcast");
    });
    let s = seen.clone();
    channel.on_presence(move |p| match p {
        PresenceEvent::Join { key, new, .. } => {
            println!(
                "presence join {key}: {}",
                serde_json::Value::Array(new.clone())
            );
            s.mark("presence");
        }
        PresenceEvent::Leave { key, .. } => println!("presence leave {key}"),
        PresenceEvent::Sync { .. } => {}
    });
    if pg.is_some() {
        let s = seen.clone();
        channel
            .on_postgres_changes(
                PostgresChangesFilter::new("INSERT", "public").table("quickstart_messages"),
                move |c| {
                    println!(
                        "postgres {} {}.{}: {}",
                        c.event_type, c.schema, c.table, c.new
                    );
                    s.mark("postgres");
                },
            )
            .map_err(|e| e.to_string())?;
    }

    channel
        .subscribe_blocking(DEADLINE)
        .map_err(|e| format!("subscribe: {e}"))?;

    channel
        .send_broadcast_blocking(
            "greeting",
            json!({"text": "hello, realtime"}).into(),
            DEADLINE,
        )
        .map_err(|e| format!("broadcast: {e}"))?;
    if !seen.wait("broadcast") {
        return Err("no broadcast arrived".into());
    }

    channel
        .track_blocking(json!({"status": "online"}), DEADLINE)
        .map_err(|e| format!("track: {e}"))?;
    if !seen.wait("presence") {
        return Err("no presence join arrived".into());
    }

    if let Some(pg) = &pg {
        sql(
            &pg.url,
            "insert into quickstart_messages (body) values ('hello from PostgreSQL');",
        )?;
        if !seen.wait("postgres") {
            return Err("no postgres change arrived".into());
        }
    }

    channel
        .unsubscribe_blocking(DEADLINE)
        .map_err(|e| format!("unsubscribe: {e}"))?;
    client.shutdown();
    server.shutdown();
    println!(
        "done: broadcast, presence{} all arrived",
        if pg.is_some() {
            " and postgres changes"
        } else {
            ""
        }
    );
    Ok(())
}
