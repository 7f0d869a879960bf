//! A validating JSON scanner over bytes: the fan-out fast path's reader.
//!
//! Every function takes the input and a byte position and returns the position after what it
//! read, or `None` where `serde_json` would fail. Acceptance is exactly `serde_json`'s
//! (1.0.154): [`value`] is its `ignore_value` (what `&RawValue` and `IgnoredAny` run), so it
//! takes numbers by the grammar only (`1e400` passes) and lone `\u` surrogates in strings,
//! and has no nesting limit (its `ignore_value` keeps an explicit stack, not the recursion
//! budget of 128 that `Value` parsing has); [`string`] is its validating `parse_str` (keys,
//! topics, events), which rejects lone surrogates.
//!
//! Hand-written because the serde visitor machinery cost a quarter of the network thread's
//! time on the fan-out path; this reads each byte once, without a `Visitor` per element.

use std::borrow::Cow;

/// Position after JSON whitespace (the four bytes `serde_json` skips between tokens).
#[inline]
pub(crate) fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The first position at or after `i` holding `"`, `\` or a control character (< 0x20),
/// or `b.len()`: the bytes a string scan must look at; everything else is string content.
#[inline]
fn special(b: &[u8], mut i: usize) -> usize {
    // Eight bytes a round while they last, then one.
    while let Some(chunk) = b.get(i..i + 8) {
        let hit = hits(word(chunk));
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[inline]
fn word(chunk: &[u8]) -> u64 {
    u64::from_le_bytes(chunk.try_into().unwrap_or_default())
}

/// The lanes of `w` (bytes, little-endian) that are < 0x20, '"' or '\\', as their high bits:
/// Mycroft's zero-byte test, as serde_json's skip_to_escape uses it. Only the lowest flagged
/// lane is exact (a borrow runs upwards from a true hit), which is the one callers want.
#[inline]
fn hits(w: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * u64::from(b'\\'));
    let slash = s.wrapping_sub(ONES) & !s;
    (ctrl | quote | slash) & (ONES << 7)
}

/// Skips a string's content and closing quote; `i` is just after the opening quote.
/// Escapes are checked as `serde_json`'s `ignore_str` checks them: the eight one-letter
/// escapes and `\u` with four hex digits, whatever code unit they name.
pub(crate) fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = special(b, i);
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    if !b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            _ => return None, // a control character
        }
    }
}

/// Reads a string as `serde_json` reads a key or a `&str`; `i` is just after the opening
/// quote. Borrowed unless it has escapes.
pub(crate) fn string(text: &str, i: usize) -> Option<(Cow<'_, str>, usize)> {
    let b = text.as_bytes();
    let end = special(b, i);
    match *b.get(end)? {
        b'"' => Some((Cow::Borrowed(&text[i..end]), end + 1)),
        b'\\' => escaped(text, i),
        _ => None,
    }
}

/// A string with escapes (rare in topics, events and keys): `serde_json` itself decodes it,
/// so surrogate pairs and the rejection of lone surrogates are exactly its own. The end
/// found by [`skip_string`] is the string's end whenever `serde_json` accepts the string,
/// since both split escapes the same way.
#[cold]
fn escaped(text: &str, i: usize) -> Option<(Cow<'_, str>, usize)> {
    let end = skip_string(text.as_bytes(), i)?;
    let s = serde_json::from_str::<String>(&text[i - 1..end]).ok()?;
    Some((Cow::Owned(s), end))
}

/// Skips one JSON value at `i` (after any whitespace), as `serde_json`'s `ignore_value`:
/// returns the position just after it.
pub(crate) fn value(b: &[u8], mut i: usize) -> Option<usize> {
    i = ws(b, i);
    if b.get(i) == Some(&b'"') {
        return skip_string(b, i + 1); // the common case, without the nesting machinery
    }
    let mut open = Nesting::default();
    loop {
        // A value is expected at `i`.
        i = ws(b, i);
        match *b.get(i)? {
            b'"' => i = skip_string(b, i + 1)?,
            b'{' => {
                i = ws(b, i + 1);
                if b.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    open.push(OBJECT);
                    i = key(b, i)?;
                    continue;
                }
            }
            b'[' => {
                i = ws(b, i + 1);
                if b.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    open.push(ARRAY);
                    continue;
                }
            }
            b'-' | b'0'..=b'9' => i = number(b, i)?,
            b'n' => i = literal(b, i, b"null")?,
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            _ => return None,
        }
        // A value ended at `i`: close containers until one goes on with a comma.
        loop {
            let Some(kind) = open.top() else {
                return Some(i);
            };
            i = ws(b, i);
            match (*b.get(i)?, kind) {
                (b',', ARRAY) => {
                    i += 1;
                    break;
                }
                (b',', _) => {
                    i = key(b, ws(b, i + 1))?;
                    break;
                }
                (b']', ARRAY) | (b'}', OBJECT) => {
                    i += 1;
                    open.pop();
                }
                _ => return None,
            }
        }
    }
}

/// An object key and its colon at `i`; returns the position after the colon.
fn key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = ws(b, skip_string(b, i + 1)?);
    (b.get(i) == Some(&b':')).then_some(i + 1)
}

/// A number by the JSON grammar only, as `serde_json`'s `ignore_integer` (no range check).
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    let digit = |i: usize| matches!(b.get(i), Some(b'0'..=b'9'));
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        b'0' if digit(i + 1) => return None, // one leading zero at most
        b'0' => i += 1,
        b'1'..=b'9' => {
            i += 1;
            while digit(i) {
                i += 1;
            }
        }
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digit(i) {
            return None;
        }
        while digit(i) {
            i += 1;
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        if !digit(i) {
            return None;
        }
        while digit(i) {
            i += 1;
        }
    }
    Some(i)
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b[i..].starts_with(word).then_some(i + word.len())
}

const ARRAY: bool = false;
const OBJECT: bool = true;

/// The kinds of the open containers, one bit each: the first 64 levels in a word, deeper
/// ones (possible, since `ignore_value` has no limit) spilled to the heap.
#[derive(Default)]
struct Nesting {
    bits: u64,
    depth: usize,
    spilled: Vec<u64>,
}

impl Nesting {
    fn push(&mut self, kind: bool) {
        if self.depth > 0 && self.depth % 64 == 0 {
            self.spilled.push(self.bits);
            self.bits = 0;
        }
        self.bits = self.bits << 1 | u64::from(kind);
        self.depth += 1;
    }

    fn top(&self) -> Option<bool> {
        (self.depth > 0).then_some(self.bits & 1 == 1)
    }

    fn pop(&mut self) {
        self.bits >>= 1;
        self.depth -= 1;
        if self.depth > 0 && self.depth % 64 == 0 {
            self.bits = self.spilled.pop().unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::Gen;
    use serde_json::value::RawValue;

    /// `value` accepts what serde_json's `&RawValue` accepts, and the same text.
    #[test]
    fn value_agrees_with_raw_value() {
        let rounds = if cfg!(miri) { 300 } else { 50_000 };
        let mut gen = Gen::new(7, 25);
        let mut valid = 0;
        for _ in 0..rounds {
            let mut text = String::new();
            gen.ws(&mut text);
            gen.value(4, &mut text);
            gen.ws(&mut text);
            let mutant = gen.mutate(&text);
            for t in [Some(text), mutant].into_iter().flatten() {
                let b = t.as_bytes();
                let start = ws(b, 0);
                let ours = value(b, 0)
                    .filter(|&end| ws(b, end) == b.len())
                    .map(|end| &t[start..end]);
                let theirs = serde_json::from_str::<&RawValue>(&t)
                    .ok()
                    .map(RawValue::get);
                assert_eq!(ours, theirs, "{t:?}");
                valid += usize::from(theirs.is_some());
            }
        }
        assert!(
            valid > rounds / 4 && valid < rounds * 2,
            "{valid} of {rounds}"
        );
    }

    #[test]
    fn special_finds_the_first_quote_backslash_or_control_byte() {
        // Every length and position, so both the 8-byte lanes and the tail loop are covered,
        // with neighbours of the special bytes (and UTF-8 bytes) as the filler around them.
        let fillers: &[u8] = if cfg!(miri) {
            &[b'a', 0x80] // Miri is far slower; one ASCII and one high byte
        } else {
            &[b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xe9, 0xff]
        };
        for &filler in fillers {
            for len in 0..20 {
                let plain = vec![filler; len];
                assert_eq!(special(&plain, 0), len);
                for at in 0..len {
                    for hit in [b'"', b'\\', 0, b'\n', 0x1f] {
                        let mut b = plain.clone();
                        b[at] = hit;
                        // A second hit after the first must not shadow it.
                        if at + 1 < len {
                            b[len - 1] = b'"';
                        }
                        for from in 0..=at {
                            assert_eq!(special(&b, from), at, "{b:?} from {from}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn deep_nesting_spills_and_unwinds() {
        // Miri runs these tests too, far slower: the deepest case is for native runs.
        let deepest = if cfg!(miri) { 130 } else { 1000 };
        for depth in [63, 64, 65, 128, 129, deepest] {
            let mut text = String::new();
            for d in 0..depth {
                text.push_str(if d % 3 == 0 { "{\"k\":" } else { "[" });
            }
            text.push('0');
            for d in (0..depth).rev() {
                text.push(if d % 3 == 0 { '}' } else { ']' });
            }
            assert_eq!(value(text.as_bytes(), 0), Some(text.len()));
            // The same with one closing bracket of the wrong kind, anywhere.
            for at in 0..depth {
                let mut bad = text.clone().into_bytes();
                let pos = bad.len() - 1 - at;
                bad[pos] = if bad[pos] == b'}' { b']' } else { b'}' };
                assert_eq!(value(&bad, 0), None, "{depth} {at}");
            }
        }
    }
}
