//! Connections: opening one, a tiny pool for short request/response work (subscription
//! checks, private-channel probes), and database errors formatted as Realtime shows them.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, NoTls};

/// How many pooled connections at most (the poller has its own).
const POOL_SIZE: usize = 4;

/// The session settings every connection runs with: values render as Supabase's do (UTC, ISO).
pub const SESSION: &str =
    "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; set intervalstyle = 'postgres'; \
     set bytea_output = 'hex'; set application_name = 'supa-realtime-server'";

/// Opens a connection with [`SESSION`]'s settings and, when given, a `statement_timeout` that
/// bounds every query it runs (and a `lock_timeout` of half of it).
pub async fn open(
    config: &Config,
    statement_timeout: Option<Duration>,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes away; queries
        // then fail with a clear error, which is where it is reported.
        let _ = connection.await;
    });
    client.batch_execute(SESSION).await?;
    if let Some(t) = statement_timeout {
        // A lock wait (a migration holding a table) gives up first, with an error that says
        // so: the query is retried rather than blamed on its subscriber.
        let ms = t.as_millis().max(2);
        client
            .batch_execute(&format!(
                "set statement_timeout = {ms}; set lock_timeout = {}",
                ms / 2
            ))
            .await?;
    }
    Ok(client)
}

/// A handful of connections handed out one at a time.
pub struct Pool {
    config: Config,
    statement_timeout: Duration,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

/// A pooled connection, returned on drop.
pub struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    pub fn new(config: Config, statement_timeout: Duration) -> Pool {
        Pool {
            config,
            statement_timeout,
            idle: Mutex::new(vec![]),
            permits: Semaphore::new(POOL_SIZE),
        }
    }

    pub async fn get(&self) -> Result<Pooled<'_>, String> {
        let permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let reused = {
            let mut idle = self.idle.lock();
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let client = match reused {
            Some(c) => c,
            None => open(&self.config, Some(self.statement_timeout))
                .await
                .map_err(|e| message(&e))?,
        };
        Ok(Pooled {
            pool: self,
            client: Some(client),
            _permit: permit,
        })
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                self.pool.idle.lock().push(c);
            }
        }
    }
}

/// The message of a database error the way Postgrex prints it
/// (`ERROR 22P02 (invalid_text_representation) invalid input syntax…`).
pub fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {} ({}) {}",
            db.severity(),
            db.code().code(),
            condition_name(db.code().code()),
            db.message()
        ),
        None => e.to_string(),
    }
}

/// Whether an error is not the query's own fault (the connection failed, a lock stayed taken,
/// a deadlock): the query is worth retrying, and nobody's subscription is to blame.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08")
                || code.starts_with("40")
                || code == "55P03"
                || code.starts_with("53")
                || code.starts_with("58")
                || code.starts_with("XX")
                || (code.starts_with("57") && code != "57014")
        }
    }
}

/// A raised-exception message in the same form (what the subscription checks raise).
pub fn raised(text: &str) -> String {
    format!("ERROR P0001 (raise_exception) {text}")
}

fn condition_name(code: &str) -> &'static str {
    match code {
        "P0001" => "raise_exception",
        "22P02" => "invalid_text_representation",
        "22007" => "invalid_datetime_format",
        "22008" => "datetime_field_overflow",
        "22003" => "numeric_value_out_of_range",
        "2201B" => "invalid_regular_expression",
        "22025" => "invalid_escape_sequence",
        "22012" => "division_by_zero",
        "22001" => "string_data_right_truncation",
        "54000" => "program_limit_exceeded",
        "55006" => "object_in_use",
        "55P03" => "lock_not_available",
        "57014" => "query_canceled",
        "22023" => "invalid_parameter_value",
        "42883" => "undefined_function",
        "42804" => "datatype_mismatch",
        "42601" => "syntax_error",
        "42703" => "undefined_column",
        "42704" => "undefined_object",
        "42P01" => "undefined_table",
        "42501" => "insufficient_privilege",
        "23502" => "not_null_violation",
        _ => "error",
    }
}
