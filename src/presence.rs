//! Presence state and phoenix.js' merge algorithm (protocol reference §8.3). Pure: the channel
//! feeds it `presence_state`/`presence_diff` payloads and turns the callbacks into events.
//!
//! What a server can make it keep is bounded ([`PresenceLimits`]): an update that would take the
//! state over a limit is not applied at all and comes back as [`Change::Refused`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A callback-free record of what one sync did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Join {
        key: String,
        current: Vec<Value>,
        new: Vec<Value>,
    },
    Leave {
        key: String,
        current: Vec<Value>,
        left: Vec<Value>,
    },
    Sync,
    /// An update was not applied: it would take the state over a [`PresenceLimits`] bound.
    Refused {
        reason: String,
    },
}

/// Bounds on one channel's presence state, so a hostile or broken server cannot make the
/// client hold an unbounded amount of it (`ClientOptions::max_presence_keys`/`_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceLimits {
    /// Keys (presences) kept.
    pub max_keys: usize,
    /// The state's size as JSON text (keys and metas, approximately), and separately the
    /// size of the diffs held until the state for the current join arrives.
    pub max_size: usize,
}

type State = BTreeMap<String, Vec<Value>>;

/// Diffs held while the state for the current join is not in yet; bounded so a channel whose
/// presence was switched on by `track` (no `presence_state` ever comes) cannot grow forever.
const MAX_PENDING_DIFFS: usize = 1000;

/// The presence state of one channel.
#[derive(Debug, Default)]
pub struct Presence {
    state: State,
    /// `state`'s size as JSON text ([`json_size`]), kept up to date by every change.
    size: usize,
    /// The join_ref whose `presence_state` was last applied.
    synced_join_ref: Option<String>,
    pending: Vec<(State, State)>,
    /// The size of `pending`'s diffs.
    pending_size: usize,
    /// A diff was refused while waiting for the state (reported once per wait).
    pending_refused: bool,
}

/// Previous values of the keys an update touched, newest last, to undo it.
type Undo = Vec<(String, Option<Vec<Value>>)>;

impl Presence {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a `presence_state` payload for the channel's current join ref, then any
    /// diffs that arrived before it. A state over `limits` is refused whole (the current
    /// state stays, diffs keep waiting for a state that fits).
    pub fn apply_state(
        &mut self,
        join_ref: Option<&str>,
        payload: &Value,
        limits: PresenceLimits,
    ) -> Vec<Change> {
        let new_state = parse_entries(payload);
        let new_size = state_size(&new_state);
        if new_state.len() > limits.max_keys || new_size > limits.max_size {
            return vec![refused("presence_state", new_state.len(), new_size, limits)];
        }
        self.synced_join_ref = join_ref.map(str::to_owned);
        let mut changes = Vec::new();
        let (joins, leaves) = diff_states(&self.state, &new_state);
        self.sync_diff(joins, leaves, &mut changes, &mut Undo::new());
        for (joins, leaves) in std::mem::take(&mut self.pending) {
            self.apply_within(joins, leaves, limits, &mut changes);
        }
        self.pending_size = 0;
        self.pending_refused = false;
        changes.push(Change::Sync);
        changes
    }

    /// Applies a `presence_diff` payload, or queues it while the state for `current_join_ref`
    /// has not been synced yet (phoenix.js `inPendingSyncState`). A diff that would take the
    /// state (or the queue) over `limits` is refused whole.
    pub fn apply_diff(
        &mut self,
        current_join_ref: Option<&str>,
        payload: &Value,
        limits: PresenceLimits,
    ) -> Vec<Change> {
        let joins = parse_entries(payload.get("joins").unwrap_or(&Value::Null));
        let leaves = parse_entries(payload.get("leaves").unwrap_or(&Value::Null));
        if self.synced_join_ref.is_none() || self.synced_join_ref.as_deref() != current_join_ref {
            let size = state_size(&joins) + state_size(&leaves);
            let pending_size = self.pending_size.saturating_add(size);
            if pending_size > limits.max_size {
                // Reported once per wait: a channel whose state never comes would repeat it.
                if !std::mem::replace(&mut self.pending_refused, true) {
                    return vec![Change::Refused {
                        reason: format!(
                            "presence_diff refused: the diffs held until presence_state \
                             would reach {pending_size} bytes, over max_presence_size ({})",
                            limits.max_size
                        ),
                    }];
                }
            } else if self.pending.len() < MAX_PENDING_DIFFS {
                self.pending_size = pending_size;
                self.pending.push((joins, leaves));
            }
            return Vec::new();
        }
        let mut changes = Vec::new();
        if self.apply_within(joins, leaves, limits, &mut changes) {
            changes.push(Change::Sync);
        }
        changes
    }

    /// Forget pending diffs (a new join is starting); the state is kept so the next full
    /// state is diffed against it, as phoenix.js does after a reconnect.
    pub fn reset_pending(&mut self) {
        self.pending.clear();
        self.pending_size = 0;
        self.pending_refused = false;
    }

    /// Applies one diff, or undoes it and reports it refused when the state ends up over
    /// `limits`. `true` when applied.
    fn apply_within(
        &mut self,
        joins: State,
        leaves: State,
        limits: PresenceLimits,
        out: &mut Vec<Change>,
    ) -> bool {
        let (size, mark) = (self.size, out.len());
        let mut undo = Undo::new();
        self.sync_diff(joins, leaves, out, &mut undo);
        if self.state.len() <= limits.max_keys && self.size <= limits.max_size {
            return true;
        }
        let refusal = refused("presence_diff", self.state.len(), self.size, limits);
        for (key, previous) in undo.into_iter().rev() {
            match previous {
                Some(metas) => self.state.insert(key, metas),
                None => self.state.remove(&key),
            };
        }
        self.size = size;
        out.truncate(mark);
        out.push(refusal);
        false
    }

    /// The state as realtime-js' `presenceState()`: key → metas with `presence_ref`.
    pub fn state(&self) -> Vec<(String, Vec<Value>)> {
        self.state
            .iter()
            .map(|(k, metas)| (k.clone(), metas.iter().map(user_meta).collect()))
            .collect()
    }

    /// Applies a diff, keeping `size` current and recording in `undo` what each touched key
    /// held before.
    fn sync_diff(&mut self, joins: State, leaves: State, out: &mut Vec<Change>, undo: &mut Undo) {
        for (key, new_metas) in joins {
            let current = self.state.get(&key).cloned().unwrap_or_default();
            let joined_refs: Vec<&Value> = new_metas.iter().filter_map(phx_ref).collect();
            let mut merged: Vec<Value> = current
                .iter()
                .filter(|m| phx_ref(m).is_none_or(|r| !joined_refs.contains(&r)))
                .cloned()
                .collect();
            merged.extend(new_metas.iter().cloned());
            self.size += entry_size(&key, &merged);
            let previous = self.state.insert(key.clone(), merged);
            self.size -= previous.as_ref().map_or(0, |m| entry_size(&key, m));
            undo.push((key.clone(), previous));
            out.push(Change::Join {
                key,
                current: current.iter().map(user_meta).collect(),
                new: new_metas.iter().map(user_meta).collect(),
            });
        }
        for (key, left_metas) in leaves {
            let Some(current) = self.state.get_mut(&key) else {
                continue;
            };
            let left_refs: Vec<&Value> = left_metas.iter().filter_map(phx_ref).collect();
            let kept: Vec<Value> = current
                .iter()
                .filter(|m| phx_ref(m).is_none_or(|r| !left_refs.contains(&r)))
                .cloned()
                .collect();
            self.size += entry_size(&key, &kept);
            let previous = std::mem::replace(current, kept);
            self.size -= entry_size(&key, &previous);
            let remaining: Vec<Value> = current.iter().map(user_meta).collect();
            if current.is_empty() {
                self.state.remove(&key);
                self.size -= entry_size(&key, &[]);
            }
            undo.push((key.clone(), Some(previous)));
            out.push(Change::Leave {
                key,
                current: remaining,
                left: left_metas.iter().map(user_meta).collect(),
            });
        }
    }
}

fn refused(what: &str, keys: usize, size: usize, limits: PresenceLimits) -> Change {
    let reason = if keys > limits.max_keys {
        format!(
            "{what} refused: {keys} presence keys, over max_presence_keys ({})",
            limits.max_keys
        )
    } else {
        format!(
            "{what} refused: {size} bytes of presence state, over max_presence_size ({})",
            limits.max_size
        )
    };
    Change::Refused { reason }
}

/// The size of one key and its metas as JSON text (approximately: numbers count 8 bytes and
/// escapes are not counted), without serializing them.
fn entry_size(key: &str, metas: &[Value]) -> usize {
    key.len() + 3 + json_size_of_array(metas)
}

fn state_size(state: &State) -> usize {
    state.iter().map(|(k, m)| entry_size(k, m)).sum()
}

fn json_size_of_array(items: &[Value]) -> usize {
    2 + items.len() + items.iter().map(json_size).sum::<usize>()
}

fn json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => json_size_of_array(items),
        Value::Object(map) => {
            2 + map.len()
                + map
                    .iter()
                    .map(|(k, v)| k.len() + 3 + json_size(v))
                    .sum::<usize>()
        }
    }
}

/// phoenix.js `syncState`: what joined and what left between two full states.
fn diff_states(current: &State, new: &State) -> (State, State) {
    let mut joins = State::new();
    let mut leaves = State::new();
    for (key, metas) in current {
        if !new.contains_key(key) {
            leaves.insert(key.clone(), metas.clone());
        }
    }
    for (key, new_metas) in new {
        match current.get(key) {
            Some(cur_metas) => {
                let new_refs: Vec<&Value> = new_metas.iter().filter_map(phx_ref).collect();
                let cur_refs: Vec<&Value> = cur_metas.iter().filter_map(phx_ref).collect();
                let joined: Vec<Value> = new_metas
                    .iter()
                    .filter(|m| phx_ref(m).is_none_or(|r| !cur_refs.contains(&r)))
                    .cloned()
                    .collect();
                let left: Vec<Value> = cur_metas
                    .iter()
                    .filter(|m| phx_ref(m).is_none_or(|r| !new_refs.contains(&r)))
                    .cloned()
                    .collect();
                if !joined.is_empty() {
                    joins.insert(key.clone(), joined);
                }
                if !left.is_empty() {
                    leaves.insert(key.clone(), left);
                }
            }
            None => {
                joins.insert(key.clone(), new_metas.clone());
            }
        }
    }
    (joins, leaves)
}

fn phx_ref(meta: &Value) -> Option<&Value> {
    meta.get("phx_ref")
}

/// `{key: {metas: [...]}}` → key → metas; anything malformed is skipped.
fn parse_entries(v: &Value) -> State {
    let mut out = State::new();
    if let Some(map) = v.as_object() {
        for (key, entry) in map {
            if let Some(metas) = entry.get("metas").and_then(Value::as_array) {
                out.insert(key.clone(), metas.clone());
            }
        }
    }
    out
}

/// A meta as realtime-js shows it: `phx_ref` copied to `presence_ref`, phoenix keys removed.
fn user_meta(meta: &Value) -> Value {
    let Some(obj) = meta.as_object() else {
        return meta.clone();
    };
    let mut out = Map::new();
    if let Some(r) = obj.get("phx_ref") {
        out.insert("presence_ref".into(), r.clone());
    }
    for (k, v) in obj {
        if k != "phx_ref" && k != "phx_ref_prev" {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FREE: PresenceLimits = PresenceLimits {
        max_keys: usize::MAX,
        max_size: usize::MAX,
    };
    const SIZE_1000: PresenceLimits = PresenceLimits {
        max_keys: usize::MAX,
        max_size: 1000,
    };

    impl Presence {
        fn apply_state_free(&mut self, join_ref: Option<&str>, payload: &Value) -> Vec<Change> {
            self.apply_state(join_ref, payload, FREE)
        }

        fn apply_diff_free(&mut self, join_ref: Option<&str>, payload: &Value) -> Vec<Change> {
            self.apply_diff(join_ref, payload, FREE)
        }
    }

    fn keys(p: &Presence) -> Vec<String> {
        p.state().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn state_then_diff() {
        let mut p = Presence::new();
        let ch = p.apply_state_free(
            Some("1"),
            &json!({"alice": {"metas": [{"phx_ref": "a1", "n": 1}]}}),
        );
        assert_eq!(
            ch,
            vec![
                Change::Join {
                    key: "alice".into(),
                    current: vec![],
                    new: vec![json!({"presence_ref": "a1", "n": 1})]
                },
                Change::Sync
            ]
        );
        let ch = p.apply_diff_free(
            Some("1"),
            &json!({"joins": {"bob": {"metas": [{"phx_ref": "b1"}]}}, "leaves": {"alice": {"metas": [{"phx_ref": "a1", "n": 1}]}}}),
        );
        assert_eq!(ch.len(), 3);
        assert!(
            matches!(&ch[1], Change::Leave { key, current, .. } if key == "alice" && current.is_empty())
        );
        assert_eq!(keys(&p), vec!["bob"]);
    }

    #[test]
    fn diffs_before_state_are_queued_then_applied() {
        let mut p = Presence::new();
        assert!(p
            .apply_diff_free(
                Some("1"),
                &json!({"joins": {"bob": {"metas": [{"phx_ref": "b1"}]}}, "leaves": {}})
            )
            .is_empty());
        assert!(keys(&p).is_empty());
        let ch = p.apply_state_free(Some("1"), &json!({"alice": {"metas": [{"phx_ref": "a1"}]}}));
        assert_eq!(keys(&p), vec!["alice", "bob"]);
        assert_eq!(ch.last(), Some(&Change::Sync));
        assert_eq!(ch.len(), 3);
    }

    #[test]
    fn update_keeps_old_then_new_order_and_replaces_by_ref() {
        let mut p = Presence::new();
        p.apply_state_free(
            Some("1"),
            &json!({"k": {"metas": [{"phx_ref": "1"}, {"phx_ref": "2"}]}}),
        );
        p.apply_diff_free(
            Some("1"),
            &json!({"joins": {"k": {"metas": [{"phx_ref": "3", "phx_ref_prev": "1", "s": "away"}]}},
                    "leaves": {"k": {"metas": [{"phx_ref": "1"}]}}}),
        );
        let state = p.state();
        let refs: Vec<&str> = state[0]
            .1
            .iter()
            .map(|m| m["presence_ref"].as_str().unwrap())
            .collect();
        assert_eq!(refs, vec!["2", "3"]);
        assert!(state[0].1[1].get("phx_ref_prev").is_none());
    }

    #[test]
    fn resync_after_rejoin_reports_leaves_and_joins() {
        let mut p = Presence::new();
        p.apply_state_free(
            Some("1"),
            &json!({"a": {"metas": [{"phx_ref": "a1"}]}, "b": {"metas": [{"phx_ref": "b1"}]}}),
        );
        // A diff for a stale join ref is held until the new state arrives.
        assert!(p
            .apply_diff_free(Some("2"), &json!({"joins": {}, "leaves": {}}))
            .is_empty());
        let ch = p.apply_state_free(
            Some("2"),
            &json!({"b": {"metas": [{"phx_ref": "b2"}]}, "c": {"metas": [{"phx_ref": "c1"}]}}),
        );
        assert_eq!(keys(&p), vec!["b", "c"]);
        assert!(ch
            .iter()
            .any(|c| matches!(c, Change::Leave { key, .. } if key == "a")));
        assert!(ch
            .iter()
            .any(|c| matches!(c, Change::Join { key, .. } if key == "c")));
        // b: b1 left, b2 joined.
        assert_eq!(p.state()[0].1, vec![json!({"presence_ref": "b2"})]);
    }

    #[test]
    fn malformed_payloads_are_ignored() {
        let mut p = Presence::new();
        p.apply_state_free(Some("1"), &json!({"x": 1, "y": {"metas": "no"}}));
        assert!(keys(&p).is_empty());
        p.apply_diff_free(Some("1"), &json!("garbage"));
        assert!(keys(&p).is_empty());
    }

    fn metas(r: &str, pad: usize) -> Value {
        json!({"metas": [{"phx_ref": r, "pad": "x".repeat(pad)}]})
    }

    /// A server that keeps adding keys (a hand-written hostile peer: the real server never
    /// sends more than the presences it holds) is stopped at `max_keys`; the refused diff
    /// changes nothing and is reported.
    #[test]
    fn diffs_over_the_key_limit_are_refused_whole() {
        let limits = PresenceLimits {
            max_keys: 3,
            max_size: usize::MAX,
        };
        let mut p = Presence::new();
        p.apply_state(Some("1"), &json!({"a": metas("a1", 0)}), limits);
        let ch = p.apply_diff(
            Some("1"),
            &json!({"joins": {"b": metas("b1", 0), "c": metas("c1", 0)}}),
            limits,
        );
        assert_eq!(ch.len(), 3, "{ch:?}");
        let before = p.state();
        // Two joins and a leave: the joins would make 5 keys even after the leave → 4 > 3.
        let ch = p.apply_diff(
            Some("1"),
            &json!({"joins": {"d": metas("d1", 0), "e": metas("e1", 0)}, "leaves": {"a": metas("a1", 0)}}),
            limits,
        );
        assert!(
            matches!(&ch[..], [Change::Refused { reason }] if reason.contains("4 presence keys, over max_presence_keys (3)")),
            "{ch:?}"
        );
        assert_eq!(p.state(), before);
        // An update within the limit still applies.
        let ch = p.apply_diff(
            Some("1"),
            &json!({"joins": {"d": metas("d1", 0)}, "leaves": {"a": metas("a1", 0)}}),
            limits,
        );
        assert_eq!(ch.last(), Some(&Change::Sync));
        assert_eq!(keys(&p), vec!["b", "c", "d"]);
    }

    #[test]
    fn states_and_diffs_over_the_size_limit_are_refused() {
        let limits = SIZE_1000;
        let mut p = Presence::new();
        let ch = p.apply_state(Some("1"), &json!({"a": metas("a1", 2000)}), limits);
        assert!(
            matches!(&ch[..], [Change::Refused { reason }] if reason.starts_with("presence_state refused") && reason.contains("over max_presence_size (1000)")),
            "{ch:?}"
        );
        assert!(keys(&p).is_empty());
        p.apply_state(Some("1"), &json!({"a": metas("a1", 400)}), limits);
        // A second meta under the same key: the key's metas grow past the limit.
        let ch = p.apply_diff(
            Some("1"),
            &json!({"joins": {"a": metas("a2", 600)}}),
            limits,
        );
        assert!(matches!(&ch[..], [Change::Refused { .. }]), "{ch:?}");
        assert_eq!(p.state()[0].1.len(), 1);
        // Replacing the meta by a same-sized one fits: the size is tracked through leaves.
        for n in 2..50 {
            let r = format!("a{n}");
            let prev = format!("a{}", n - 1);
            let ch = p.apply_diff(
                Some("1"),
                &json!({"joins": {"a": metas(&r, 400)}, "leaves": {"a": metas(&prev, 400)}}),
                limits,
            );
            assert_eq!(ch.last(), Some(&Change::Sync), "{n}: {ch:?}");
        }
        assert_eq!(p.size, state_size(&p.state));
    }

    #[test]
    fn pending_diffs_are_bounded_in_size_and_reported_once() {
        let limits = SIZE_1000;
        let mut p = Presence::new();
        let mut refusals = 0;
        for n in 0..20 {
            let ch = p.apply_diff(
                Some("1"),
                &json!({"joins": {format!("k{n}"): metas("r", 200)}}),
                limits,
            );
            refusals += ch
                .iter()
                .filter(|c| matches!(c, Change::Refused { .. }))
                .count();
        }
        assert_eq!(refusals, 1);
        assert!(p.pending_size <= 1000 && p.pending.len() < 20);
        let ch = p.apply_state(Some("1"), &json!({}), limits);
        assert_eq!(ch.last(), Some(&Change::Sync));
        assert_eq!(p.pending_size, 0);
        assert!(p.size <= 1000);
    }
}
