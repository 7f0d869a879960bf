//! One row change as both change sources deliver it (the stream's pgoutput messages and the
//! poller's wal2json rows), in the form the fan-out works on.

/// The action of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Insert,
    Update,
    Delete,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Insert => "INSERT",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
        }
    }
}

/// One column of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    /// The type's text output (`None` = SQL NULL), as wal2json prints it: bytea as hex without
    /// `\x`, booleans as `true`/`false` or `t`/`f`.
    pub value: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Change {
    pub action: Action,
    pub schema: String,
    pub table: String,
    /// `commit_timestamp` as Supabase sends it: UTC, milliseconds, `2026-08-01T10:15:30.123Z`.
    pub commit_timestamp: String,
    /// New tuple (INSERT/UPDATE); unchanged TOASTed values are absent.
    pub columns: Vec<Column>,
    /// Old tuple's replica identity (UPDATE/DELETE).
    pub identity: Vec<Column>,
    /// Size of the record in bytes, for the 413 limit (wal2json's JSON size).
    pub size: usize,
}

impl Change {
    /// The tuple filters are evaluated against: new values, or the old identity for DELETE.
    pub fn filter_tuple(&self) -> &[Column] {
        if self.action == Action::Delete {
            &self.identity
        } else {
            &self.columns
        }
    }

    /// The size wal2json's JSON for this change would have (its 413 limit is on that).
    pub fn estimate_size(schema: &str, table: &str, tuples: [&[Column]; 2]) -> usize {
        let per_column = |c: &Column| {
            // {"name":"…","type":"…","typeoid":…,"value":…},
            c.name.len() + c.value.as_deref().map_or(4, str::len) + 48
        };
        100 + schema.len()
            + table.len()
            + tuples
                .iter()
                .flat_map(|t| t.iter())
                .map(per_column)
                .sum::<usize>()
    }
}

/// Microseconds since 2000-01-01 UTC (PostgreSQL's epoch) → `commit_timestamp`.
pub fn timestamp_from_pg_micros(micros: i64) -> String {
    const PG_EPOCH_DAYS: i64 = 10_957; // 1970-01-01 → 2000-01-01
    let secs = micros.div_euclid(1_000_000);
    let ms = micros.rem_euclid(1_000_000) / 1000;
    let days = secs.div_euclid(86_400) + PG_EPOCH_DAYS;
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// wal2json's `2026-08-01 10:15:30.123456+00` → `2026-08-01T10:15:30.123Z` (the session runs
/// in UTC).
pub fn timestamp_from_text(ts: &str) -> String {
    let (date, rest) = ts.split_once(' ').unwrap_or((ts, "00:00:00+00"));
    let time_end = rest.find(['+', '-']).unwrap_or(rest.len());
    let time = &rest[..time_end];
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut ms: String = frac.chars().take(3).collect();
    while ms.len() < 3 {
        ms.push('0');
    }
    format!("{date}T{hms}.{ms}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_timestamps() {
        assert_eq!(
            timestamp_from_text("2026-08-01 10:15:30.123456+00"),
            "2026-08-01T10:15:30.123Z"
        );
        assert_eq!(
            timestamp_from_text("2026-08-01 10:15:30+00"),
            "2026-08-01T10:15:30.000Z"
        );
        assert_eq!(
            timestamp_from_text("2026-08-01 10:15:30.1+00"),
            "2026-08-01T10:15:30.100Z"
        );
    }

    #[test]
    fn pg_epoch_timestamps() {
        assert_eq!(timestamp_from_pg_micros(0), "2000-01-01T00:00:00.000Z");
        // 2026-08-01 10:15:30.123456 UTC
        let micros = (1_785_579_330 - 946_684_800) * 1_000_000 + 123_456;
        assert_eq!(timestamp_from_pg_micros(micros), "2026-08-01T10:15:30.123Z");
        assert_eq!(timestamp_from_pg_micros(-1), "1999-12-31T23:59:59.999Z");
        // Leap day.
        let micros = (1_709_164_800 - 946_684_800) * 1_000_000;
        assert_eq!(timestamp_from_pg_micros(micros), "2024-02-29T00:00:00.000Z");
    }
}
