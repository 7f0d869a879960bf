//! A real PostgreSQL for tests: DATABASE_URL, or a throwaway cluster from scripts/dev-postgres
//! that lives as long as this test process (the wrapper shell stops it when our end of its
//! stdin closes, at exit, however we exit).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use tokio_postgres::{Client, NoTls};

pub fn database_url() -> &'static str {
    static URL: OnceLock<(String, Option<Child>)> = OnceLock::new();
    &URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return (url, None);
        }
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let dir = std::env::temp_dir().join(format!("supa-pg-common-{}", std::process::id()));
        let script = format!(
            "scripts/dev-postgres start '{d}' || exit 1; cat >/dev/null; scripts/dev-postgres stop '{d}'",
            d = dir.display()
        );
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run scripts/dev-postgres");
        let mut out = child.stdout.take().unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while !text.contains('\n') {
            let n = out.read(&mut buf).expect("read dev-postgres output");
            assert!(n > 0, "scripts/dev-postgres failed: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let url = text
            .trim()
            .strip_prefix("DATABASE_URL=")
            .expect("DATABASE_URL line")
            .to_string();
        (url, Some(child))
    })
    .0
}

/// Runs the server's set-up (roles, schemas `auth` and `realtime`, the publication) on the test
/// database, once per test process: tests create tables, grants and policies through [`sql`]
/// before any server of theirs has started, which on a fresh cluster would find none of those.
fn prepare_once() {
    static PREPARED: std::sync::Once = std::sync::Once::new();
    PREPARED.call_once(|| {
        let server = supa_realtime_server::Server::start(supa_realtime_server::Config {
            database_url: Some(database_url().to_string()),
            ..supa_realtime_server::Config::default()
        })
        .expect("the server's set-up runs on the test database");
        server.shutdown();
    });
}

/// A connection for the test's own SQL, on a prepared database.
pub async fn sql() -> Client {
    tokio::task::spawn_blocking(prepare_once)
        .await
        .expect("preparing the test database");
    let (client, conn) = tokio_postgres::connect(database_url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Runs `ddl` in one transaction that first takes a fixed advisory lock, so tests of one
/// binary that (re)create the same shared objects, such as policies on `realtime.messages`,
/// do not race each other into "already exists".
pub async fn shared_ddl(ddl: &str) {
    sql()
        .await
        .batch_execute(&format!(
            "begin; select pg_advisory_xact_lock(7243501); {ddl}; commit;"
        ))
        .await
        .unwrap();
}
