//! Connections: opening one, a tiny pool for short request/response work (subscription
//! checks, private-channel probes), and database errors formatted as Realtime shows them.

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, NoTls};

/// How many pooled connections at most (the poller has its own).
const POOL_SIZE: usize = 4;

/// Opens a connection whose session settings make values render as Supabase's do (UTC).
pub async fn open(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes away; queries
        // then fail with a clear error, which is where it is reported.
        let _ = connection.await;
    });
    client
        .batch_execute("set timezone = 'UTC'; set datestyle = 'ISO, YMD'; set intervalstyle = 'postgres'; set application_name = 'supa-realtime-server'")
        .await?;
    Ok(client)
}

/// A handful of connections handed out one at a time.
pub struct Pool {
    config: Config,
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
    pub fn new(config: Config) -> Pool {
        Pool {
            config,
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
            None => open(&self.config).await.map_err(|e| message(&e))?,
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
