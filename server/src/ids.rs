//! Identifiers the server makes up: binding ids, presence refs and generated presence keys.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The id of a postgres_changes binding: an integer in `0..2^27` derived from the binding map.
///
/// Upstream uses Erlang's `phash2`, which we cannot reproduce; ids are opaque to clients (they
/// match bindings by position and then route by id), so any stable hash will do. Keys are
/// sorted first so that equal maps get equal ids whatever order the client wrote them in.
pub(crate) fn binding_id(binding: &Map<String, Value>) -> u32 {
    let mut canonical = String::new();
    write_canonical(&Value::Object(binding.clone()), &mut canonical);
    // FNV-1a, 64 bit: stable across runs and platforms (unlike std's SipHash keys).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in canonical.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    ((hash ^ (hash >> 27) ^ (hash >> 54)) & ((1 << 27) - 1)) as u32
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for key in keys {
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// An opaque, unique presence ref (`phx_ref`), shaped like Phoenix's base64 refs.
pub(crate) fn phx_ref() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[8..].copy_from_slice(&random_u64().to_be_bytes()[..4]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A UUID v1-style string for presence keys the client left empty (upstream uses UUID v1).
pub(crate) fn uuid_v1() -> String {
    // 100 ns ticks since 1582-10-15.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let ticks =
        (nanos / 100) as u64 + 0x01B2_1DD2_1381_4000 + COUNTER.fetch_add(1, Ordering::Relaxed);
    let time_low = ticks & 0xFFFF_FFFF;
    let time_mid = (ticks >> 32) & 0xFFFF;
    let time_hi = ((ticks >> 48) & 0x0FFF) | 0x1000;
    let rnd = random_u64();
    let clock_seq = ((rnd >> 48) & 0x3FFF) | 0x8000;
    let node = (rnd & 0xFFFF_FFFF_FFFF) | 0x0100_0000_0000; // multicast bit: not a real MAC
    format!("{time_low:08x}-{time_mid:04x}-{time_hi:04x}-{clock_seq:04x}-{node:012x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binding_ids_are_stable_and_order_free() {
        let a = json!({"event":"*","schema":"public","table":"t"});
        let b = json!({"table":"t","schema":"public","event":"*"});
        let id = binding_id(a.as_object().unwrap());
        assert_eq!(id, binding_id(b.as_object().unwrap()));
        assert!(id < 1 << 27);
        let c = json!({"event":"INSERT","schema":"public","table":"t"});
        assert_ne!(id, binding_id(c.as_object().unwrap()));
    }

    #[test]
    fn refs_and_keys_are_unique() {
        assert_ne!(phx_ref(), phx_ref());
        let (a, b) = (uuid_v1(), uuid_v1());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "1");
    }
}
