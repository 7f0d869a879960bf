//! The process's open-file limit (`RLIMIT_NOFILE`): every connection is a descriptor, so a soft
//! limit of 1,024 (a common default) lets idle connections lock every new client out.

/// Descriptors kept free beyond connections: the listener, the database connections, files.
#[cfg_attr(not(unix), allow(dead_code))]
const RESERVED: u64 = 64;

/// The open-file limit before and after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit now in force.
    pub now: u64,
    /// The hard limit (the most an unprivileged process may raise the soft limit to).
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard limit and returns what it got. The command-line
/// server calls this at start; an application embedding the server decides for itself.
///
/// ```
/// # #[cfg(unix)] {
/// let limit = supa_realtime_server::raise_open_file_limit().unwrap();
/// assert!(limit.now >= limit.before && limit.now <= limit.hard);
/// # }
/// ```
#[cfg(unix)]
pub fn raise_open_file_limit() -> std::io::Result<OpenFileLimit> {
    let current = get()?;
    let before = count(current.rlim_cur);
    let hard = count(current.rlim_max);
    if current.rlim_cur >= current.rlim_max {
        return Ok(OpenFileLimit {
            before,
            now: before,
            hard,
        });
    }
    let wanted = libc::rlimit {
        rlim_cur: current.rlim_max,
        rlim_max: current.rlim_max,
    };
    // SAFETY: `wanted` is a valid, initialised rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        // macOS refuses values above OPEN_MAX even when the hard limit is "unlimited".
        let fallback = libc::rlimit {
            rlim_cur: current.rlim_max.min(10_240),
            rlim_max: current.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &fallback) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(OpenFileLimit {
        before,
        now: count(get()?.rlim_cur),
        hard,
    })
}

/// Without `RLIMIT_NOFILE` there is nothing to raise.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> std::io::Result<OpenFileLimit> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no open-file limit on this platform",
    ))
}

/// `rlim_t` is `u64` on the usual targets but not on every one.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)]
fn count(value: libc::rlim_t) -> u64 {
    value as u64
}

#[cfg(unix)]
fn get() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// The connection cap in force: `configured`, lowered so that connections alone cannot exhaust
/// the descriptors (refusing with a clear answer beats failing to accept).
pub(crate) fn connection_cap(configured: usize) -> usize {
    #[cfg(unix)]
    if let Ok(limit) = get() {
        let room = count(limit.rlim_cur).saturating_sub(RESERVED).max(16);
        return configured.min(usize::try_from(room).unwrap_or(usize::MAX));
    }
    configured
}
