//! Decoding the row messages of PostgreSQL's built-in `pgoutput` plugin (protocol version 1):
//! Relation, Insert, Update and Delete. The replication protocol around them (CopyBoth,
//! Begin/Commit, keepalives, status updates) is pgwire-replication's; these are the few
//! messages it hands over undecoded.

use std::collections::HashMap;

use super::change::{Action, Change, Column};

/// A column of a relation as its last Relation message described it.
#[derive(Debug, Clone)]
struct RelColumn {
    name: String,
    type_oid: u32,
    /// Part of the replica identity (the primary key unless set otherwise).
    key: bool,
}

#[derive(Debug, Clone)]
struct Relation {
    schema: String,
    table: String,
    columns: Vec<RelColumn>,
}

/// What one pgoutput message means to the feed.
#[derive(Debug)]
pub enum Message {
    Change(Box<Change>),
    /// A Relation message (its table's columns or types may have changed) or another message
    /// the feed does not act on (Type, Origin, Truncate).
    Other,
}

/// Relations by oid, as the stream described them; a relation is always described before
/// its first change in a session and again after it changes.
#[derive(Default)]
pub struct Decoder {
    relations: HashMap<u32, Relation>,
}

const BYTEA: u32 = 17;

impl Decoder {
    /// Decodes one message of a transaction committed at `commit_timestamp`.
    pub fn decode(&mut self, data: &[u8], commit_timestamp: &str) -> Result<Message, String> {
        let mut r = Reader(data);
        let action = match r.u8()? {
            b'R' => {
                self.relation(&mut r)?;
                return Ok(Message::Other);
            }
            b'I' => Action::Insert,
            b'U' => Action::Update,
            b'D' => Action::Delete,
            _ => return Ok(Message::Other),
        };
        let relid = r.u32()?;
        let rel = self
            .relations
            .get(&relid)
            .ok_or_else(|| format!("pgoutput: change for undescribed relation {relid}"))?;
        let mut identity = None;
        let mut columns = vec![];
        loop {
            match r.u8()? {
                b'N' => {
                    columns = tuple(&mut r, rel, false)?;
                    break;
                }
                b'K' => identity = Some(tuple(&mut r, rel, true)?),
                b'O' => identity = Some(tuple(&mut r, rel, false)?),
                other => return Err(format!("pgoutput: unexpected tuple kind {other}")),
            }
            if action == Action::Delete {
                break;
            }
        }
        // An UPDATE that kept its key sends no old tuple: the identity is the new key, as
        // wal2json reports it.
        let identity = identity.unwrap_or_else(|| {
            columns
                .iter()
                .filter(|c| rel.columns.iter().any(|k| k.key && k.name == c.name))
                .cloned()
                .collect()
        });
        let size = Change::estimate_size(&rel.schema, &rel.table, [&columns, &identity]);
        Ok(Message::Change(Box::new(Change {
            action,
            schema: rel.schema.clone(),
            table: rel.table.clone(),
            commit_timestamp: commit_timestamp.to_string(),
            columns,
            identity,
            size,
        })))
    }

    fn relation(&mut self, r: &mut Reader) -> Result<(), String> {
        let relid = r.u32()?;
        let schema = r.cstr()?;
        let table = r.cstr()?;
        let _replica_identity = r.u8()?;
        let n = r.u16()?;
        let mut columns = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let flags = r.u8()?;
            let name = r.cstr()?;
            let type_oid = r.u32()?;
            let _typmod = r.u32()?;
            columns.push(RelColumn {
                name,
                type_oid,
                key: flags & 1 == 1,
            });
        }
        let schema = if schema.is_empty() {
            "pg_catalog".to_string()
        } else {
            schema
        };
        self.relations.insert(
            relid,
            Relation {
                schema,
                table,
                columns,
            },
        );
        Ok(())
    }
}

/// A TupleData: unchanged TOASTed values are left out (the fan-out takes them from the old
/// tuple when it has them); `key_only` keeps just the replica identity columns of a 'K' tuple.
fn tuple(r: &mut Reader, rel: &Relation, key_only: bool) -> Result<Vec<Column>, String> {
    let n = r.u16()? as usize;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let col = rel
            .columns
            .get(i)
            .ok_or_else(|| format!("pgoutput: tuple has more columns than {}", rel.table))?;
        let value = match r.u8()? {
            b'n' => None,
            b'u' => continue,
            b't' => {
                let len = r.u32()? as usize;
                let bytes = r.take(len)?;
                let text = String::from_utf8_lossy(bytes);
                // bytea renders as `\x0102…`; wal2json (and so Supabase) sends the hex only.
                let text = match text.strip_prefix("\\x") {
                    Some(hex) if col.type_oid == BYTEA => hex.to_string(),
                    _ => text.into_owned(),
                };
                Some(text)
            }
            other => return Err(format!("pgoutput: unexpected column kind {other}")),
        };
        if key_only && !col.key {
            continue;
        }
        out.push(Column {
            name: col.name.clone(),
            type_oid: col.type_oid,
            value,
        });
    }
    Ok(out)
}

/// A cursor over a message, every read checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("pgoutput: truncated message".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn cstr(&mut self) -> Result<String, String> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or("pgoutput: unterminated string")?;
        let s = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(16384u32.to_be_bytes());
        m.extend(b"public\0t\0");
        m.push(b'd');
        m.extend(3u16.to_be_bytes());
        for (flags, name, oid) in [(1u8, "id", 23u32), (0, "body", 25), (0, "raw", 17)] {
            m.push(flags);
            m.extend(name.as_bytes());
            m.push(0);
            m.extend(oid.to_be_bytes());
            m.extend((-1i32).to_be_bytes());
        }
        m
    }

    /// A row message: `values` as `Some(text)`, `None` for NULL, `Some("\u{0}")` for an
    /// unchanged TOASTed value.
    fn row(action: u8, tuple: u8, values: &[Option<&str>]) -> Vec<u8> {
        let mut m = vec![action];
        m.extend(16384u32.to_be_bytes());
        m.push(tuple);
        m.extend((values.len() as u16).to_be_bytes());
        for v in values {
            match v {
                None => m.push(b'n'),
                Some("\u{0}") => m.push(b'u'),
                Some(v) => {
                    m.push(b't');
                    m.extend((v.len() as u32).to_be_bytes());
                    m.extend(v.as_bytes());
                }
            }
        }
        m
    }

    fn change(d: &mut Decoder, message: &[u8]) -> Change {
        match d.decode(message, "ts").unwrap() {
            Message::Change(c) => *c,
            Message::Other => panic!("not a change"),
        }
    }

    #[test]
    fn insert_update_delete() {
        let mut d = Decoder::default();
        assert!(matches!(
            d.decode(&relation(), "ts").unwrap(),
            Message::Other
        ));

        let c = change(
            &mut d,
            &row(b'I', b'N', &[Some("7"), None, Some("\\x0102")]),
        );
        assert_eq!((c.action, c.table.as_str()), (Action::Insert, "t"));
        let values: Vec<_> = c.columns.iter().map(|c| c.value.as_deref()).collect();
        assert_eq!(values, [Some("7"), None, Some("0102")]);

        // UPDATE without an old tuple, an unchanged TOASTed body: identity from the new key.
        let c = change(&mut d, &row(b'U', b'N', &[Some("7"), Some("\u{0}"), None]));
        assert_eq!(c.columns.len(), 2);
        assert_eq!(c.identity.len(), 1);
        assert_eq!(c.identity[0].name, "id");

        // DELETE with the key tuple: only key columns.
        let c = change(&mut d, &row(b'D', b'K', &[Some("7"), None, None]));
        assert_eq!(c.action, Action::Delete);
        assert!(c.columns.is_empty());
        assert_eq!(c.identity.len(), 1);
        assert_eq!(c.filter_tuple()[0].value.as_deref(), Some("7"));
    }

    #[test]
    fn truncated_and_unknown_relations_are_errors() {
        let mut d = Decoder::default();
        let mut m = vec![b'I'];
        m.extend(1u32.to_be_bytes());
        assert!(d.decode(&m, "ts").is_err());
        let r = relation();
        assert!(d.decode(&r[..r.len() - 3], "ts").is_err());
    }
}
