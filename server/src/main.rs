//! The `supa-realtime-server` command: a local Supabase Realtime server.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use supa_realtime_server::postgres::{Options, Source};
use supa_realtime_server::{Config, Server};

const HELP: &str = "\
supa-realtime-server: a local, single-binary Supabase Realtime server

USAGE:
    supa-realtime-server [OPTIONS]

Once listening it prints three lines and flushes stdout:
    listening on http://HOST:PORT
    anon key: <jwt>
    service_role key: <jwt>
Clients connect to ws://HOST:PORT/realtime/v1/websocket (or /socket/websocket);
REST broadcast is at http://HOST:PORT/realtime/v1/api/broadcast. Stops on Ctrl-C or SIGTERM.
At start it raises its open-file soft limit to the hard limit and says on stderr what it got.

OPTIONS:
    --listen ADDR                  Address to bind [default: 127.0.0.1:4000]; port 0 picks a free port
    --jwt-secret SECRET            HS256 secret for every token [env: JWT_SECRET]
                                   [default: the Supabase local-dev secret
                                   super-secret-jwt-token-with-at-least-32-characters-long]
    --database-url URL             PostgreSQL for postgres_changes, private channels and
                                   database broadcasts [env: DATABASE_URL]; without it those
                                   features are refused with a clear error
    --replication-slot NAME        Permanent logical replication slot: changes committed while
                                   the server is down are delivered after a restart
                                   [default: supa_realtime]
    --temporary-slot               Use a temporary slot per run instead (nothing survives a restart)
    --resume-window-ms MS          After a restart with changes waiting in the slot, wait this long
                                   for clients to resubscribe before delivering them [default: 5000]
    --changes-source SOURCE        stream (logical replication, pgoutput) or poll (wal2json,
                                   temporary slot, as hosted Supabase) [default: stream]
    --db-statement-timeout-ms MS   statement_timeout of every query on the database [default: 1000]
    --db-roles LIST                Roles RLS may be evaluated as, comma-separated, besides NOLOGIN
                                   roles granted to the server's login role
                                   [default: anon,authenticated,service_role]
    --max-channels-per-client N    Channels one socket may join [default: 100]
    --max-payload-bytes N          Largest broadcast/presence payload [default: 3000500]
    --max-frame-bytes N            Largest WebSocket frame; bigger closes the socket [default: 5000000]
    --presence-max-calls N         Presence messages per window, per socket and topic and per
                                   presence key, across rejoins [default: 5]
    --presence-window-ms MS        Presence rate-limit window [default: 30000]
    --outbound-queue N             Messages queued per socket before it is dropped as too slow
                                   (the byte limits below usually act first) [default: 100000]
    --max-socket-queue-bytes N     Bytes queued for one socket and not yet taken by its peer
                                   before it is dropped as too slow (close 1013) [default: 50000000]
    --max-channel-queue-bytes N    Bytes queued for one channel of a socket before that channel
                                   is shut down [default: 25000000]
    --idle-timeout-ms MS           Drop a socket that sends nothing for this long [default: 60000]
    --no-channel-timeout-ms MS     Close a socket without a joined channel after this long [default: 600000]
    --max-connections N            Concurrent connections; more get HTTP 503 [default: 10000,
                                   lowered to fit the open-file limit]
    --header-timeout-ms MS         A connection must send its complete request head within this
                                   time, or it is closed [default: 10000]
    --request-timeout-ms MS        An HTTP request (body included) or WebSocket upgrade must
                                   complete within this time [default: 30000]
    --join-error-delay-ms MS       Delay join error replies (hosted Realtime: 5000) [default: 0]
    --connect-error-delay-ms MS    Delay refused upgrades (hosted Realtime: 2000) [default: 0]
    --write-timeout-ms MS          Drop a socket that does not take a frame for this long [default: 10000]
    -h, --help                     Print this help
    -V, --version                  Print the version
";

fn parse(args: Vec<String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
        postgres: Options {
            slot: Some("supa_realtime".into()),
            ..Options::default()
        },
        ..Config::default()
    };
    if let Ok(secret) = std::env::var("JWT_SECRET") {
        if !secret.is_empty() {
            config.jwt_secret = secret;
        }
    }
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if !url.is_empty() {
            config.database_url = Some(url);
        }
    }
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            print!("{HELP}");
            return Ok(None);
        }
        if flag == "-V" || flag == "--version" {
            println!("supa-realtime-server {}", env!("CARGO_PKG_VERSION"));
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: expected a non-negative integer, got {v:?}"))
        };
        let ms = |v: String| number(v).map(Duration::from_millis);
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                config.listen = listen_addr(&v)?;
            }
            "--jwt-secret" => config.jwt_secret = value()?,
            "--database-url" => config.database_url = Some(value()?),
            "--max-channels-per-client" => {
                config.limits.max_channels_per_client = number(value()?)? as usize
            }
            "--max-payload-bytes" => config.limits.max_payload_bytes = number(value()?)? as usize,
            "--max-frame-bytes" => config.limits.max_frame_bytes = number(value()?)? as usize,
            "--presence-max-calls" => config.limits.presence_max_calls = number(value()?)? as usize,
            "--presence-window-ms" => config.limits.presence_window = ms(value()?)?,
            "--outbound-queue" => config.limits.outbound_queue = number(value()?)? as usize,
            "--max-socket-queue-bytes" => {
                config.limits.max_socket_queue_bytes = number(value()?)? as usize
            }
            "--max-channel-queue-bytes" => {
                config.limits.max_channel_queue_bytes = number(value()?)? as usize
            }
            "--idle-timeout-ms" => config.idle_timeout = ms(value()?)?,
            "--no-channel-timeout-ms" => config.no_channel_timeout = ms(value()?)?,
            "--max-connections" => config.limits.max_connections = number(value()?)? as usize,
            "--header-timeout-ms" => config.header_timeout = ms(value()?)?,
            "--request-timeout-ms" => config.request_timeout = ms(value()?)?,
            "--join-error-delay-ms" => config.join_error_delay = ms(value()?)?,
            "--connect-error-delay-ms" => config.connect_error_delay = ms(value()?)?,
            "--write-timeout-ms" => config.write_timeout = ms(value()?)?,
            "--replication-slot" => config.postgres.slot = Some(value()?),
            "--temporary-slot" => config.postgres.slot = None,
            "--resume-window-ms" => config.postgres.resume_window = ms(value()?)?,
            "--changes-source" => {
                config.postgres.source = match value()?.as_str() {
                    "stream" => Source::Stream,
                    "poll" => Source::Poll,
                    v => {
                        return Err(format!(
                            "--changes-source: expected stream or poll, got {v:?}"
                        ))
                    }
                }
            }
            "--db-statement-timeout-ms" => config.postgres.statement_timeout = ms(value()?)?,
            "--db-roles" => {
                config.postgres.roles = value()?
                    .split(',')
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
                    .collect()
            }
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    if config.jwt_secret.is_empty() {
        return Err("--jwt-secret must not be empty".into());
    }
    Ok(Some(config))
}

/// `HOST:PORT` as an address, resolving names such as `localhost:4000`.
fn listen_addr(v: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let bad = || format!("--listen: expected HOST:PORT (e.g. 127.0.0.1:4000), got {v:?}");
    if let Ok(addr) = v.parse() {
        return Ok(addr);
    }
    v.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(config)) => config,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supa-realtime-server: {e}");
            return ExitCode::from(2);
        }
    };
    // Signal handlers go in before the startup lines, so a supervisor that stops us right after
    // reading them gets a graceful shutdown, not the default action.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("supa-realtime-server: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fds = supa_realtime_server::raise_open_file_limit();
    let server = match Server::start(config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("supa-realtime-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {}", server.http_url());
    let _ = writeln!(stdout, "anon key: {}", server.anon_key());
    let _ = writeln!(stdout, "service_role key: {}", server.service_role_key());
    let _ = stdout.flush();
    drop(stdout);
    match fds {
        Ok(l) if l.now > l.before => eprintln!(
            "supa-realtime-server: open-file limit raised from {} to {} (hard limit {}); at most {} connections",
            l.before, l.now, l.hard, server.max_connections()
        ),
        Ok(l) => eprintln!(
            "supa-realtime-server: open-file limit {} (hard limit {}); at most {} connections",
            l.now, l.hard, server.max_connections()
        ),
        Err(e) => eprintln!(
            "supa-realtime-server: cannot raise the open-file limit ({e}); at most {} connections",
            server.max_connections()
        ),
    }
    signals.wait();
    server.shutdown();
    ExitCode::SUCCESS
}

/// Ctrl-C and SIGTERM, registered up front on a small runtime of their own.
struct Signals {
    runtime: tokio::runtime::Runtime,
    #[cfg(unix)]
    streams: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        #[cfg(unix)]
        let streams = {
            use tokio::signal::unix::{signal, SignalKind};
            let _guard = runtime.enter();
            (
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            )
        };
        Ok(Signals {
            runtime,
            #[cfg(unix)]
            streams,
        })
    }

    /// Blocks until one of the signals arrives.
    fn wait(self) {
        #[cfg(unix)]
        {
            let (mut int, mut term) = self.streams;
            self.runtime.block_on(async {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
        }
        #[cfg(not(unix))]
        self.runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
}
