//! The PostgreSQL the postgres tests run against: `DATABASE_URL`, or a throwaway cluster from
//! scripts/dev-postgres that lives as long as the test process.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use tokio_postgres::{Client, NoTls};

/// DATABASE_URL, or a cluster that lives as long as this test process: the wrapper shell
/// stops it when our end of its stdin closes (at exit, however we exit).
pub fn database_url() -> &'static str {
    static URL: OnceLock<(String, Option<Child>)> = OnceLock::new();
    &URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return (url, None);
        }
        let dir = std::env::temp_dir().join(format!("supa-pg-test-{}", std::process::id()));
        let script = format!(
            "scripts/dev-postgres start '{d}' || exit 1; cat >/dev/null; scripts/dev-postgres stop '{d}'",
            d = dir.display()
        );
        let mut child = Command::new("bash")
            .args(["-c", &script])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run scripts/dev-postgres");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .expect("dev-postgres output");
        let url = line
            .trim()
            .strip_prefix("DATABASE_URL=")
            .unwrap_or_else(|| panic!("scripts/dev-postgres failed: {line}"))
            .to_string();
        (url, Some(child))
    })
    .0
}

/// A plain SQL connection for setting up tables and writing rows.
pub async fn sql() -> Client {
    let (client, conn) = tokio_postgres::connect(database_url(), NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    client
}
