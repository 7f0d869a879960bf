//! Presence state and phoenix.js' merge algorithm (protocol reference §8.3). Pure: the channel
//! feeds it `presence_state`/`presence_diff` payloads and turns the callbacks into events.

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
}

type State = BTreeMap<String, Vec<Value>>;

/// Diffs held while the state for the current join is not in yet; bounded so a channel whose
/// presence was switched on by `track` (no `presence_state` ever comes) cannot grow forever.
const MAX_PENDING_DIFFS: usize = 1000;

/// The presence state of one channel.
#[derive(Debug, Default)]
pub struct Presence {
    state: State,
    /// The join_ref whose `presence_state` was last applied.
    synced_join_ref: Option<String>,
    pending: Vec<(State, State)>,
}

impl Presence {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a `presence_state` payload for the channel's current join ref, then any
    /// diffs that arrived before it.
    pub fn apply_state(&mut self, join_ref: Option<&str>, payload: &Value) -> Vec<Change> {
        let new_state = parse_entries(payload);
        self.synced_join_ref = join_ref.map(str::to_owned);
        let mut changes = Vec::new();
        let (joins, leaves) = diff_states(&self.state, &new_state);
        self.sync_diff(joins, leaves, &mut changes);
        for (joins, leaves) in std::mem::take(&mut self.pending) {
            self.sync_diff(joins, leaves, &mut changes);
        }
        changes.push(Change::Sync);
        changes
    }

    /// Applies a `presence_diff` payload, or queues it while the state for `current_join_ref`
    /// has not been synced yet (phoenix.js `inPendingSyncState`).
    pub fn apply_diff(&mut self, current_join_ref: Option<&str>, payload: &Value) -> Vec<Change> {
        let joins = parse_entries(payload.get("joins").unwrap_or(&Value::Null));
        let leaves = parse_entries(payload.get("leaves").unwrap_or(&Value::Null));
        if self.synced_join_ref.is_none() || self.synced_join_ref.as_deref() != current_join_ref {
            if self.pending.len() < MAX_PENDING_DIFFS {
                self.pending.push((joins, leaves));
            }
            return Vec::new();
        }
        let mut changes = Vec::new();
        self.sync_diff(joins, leaves, &mut changes);
        changes.push(Change::Sync);
        changes
    }

    /// Forget pending diffs (a new join is starting); the state is kept so the next full
    /// state is diffed against it, as phoenix.js does after a reconnect.
    pub fn reset_pending(&mut self) {
        self.pending.clear();
    }

    /// The state as realtime-js' `presenceState()`: key → metas with `presence_ref`.
    pub fn state(&self) -> Vec<(String, Vec<Value>)> {
        self.state
            .iter()
            .map(|(k, metas)| (k.clone(), metas.iter().map(user_meta).collect()))
            .collect()
    }

    fn sync_diff(&mut self, joins: State, leaves: State, out: &mut Vec<Change>) {
        for (key, new_metas) in joins {
            let current = self.state.get(&key).cloned().unwrap_or_default();
            let joined_refs: Vec<&Value> = new_metas.iter().filter_map(phx_ref).collect();
            let mut merged: Vec<Value> = current
                .iter()
                .filter(|m| phx_ref(m).is_none_or(|r| !joined_refs.contains(&r)))
                .cloned()
                .collect();
            merged.extend(new_metas.iter().cloned());
            self.state.insert(key.clone(), merged);
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
            current.retain(|m| phx_ref(m).is_none_or(|r| !left_refs.contains(&r)));
            let remaining: Vec<Value> = current.iter().map(user_meta).collect();
            if current.is_empty() {
                self.state.remove(&key);
            }
            out.push(Change::Leave {
                key,
                current: remaining,
                left: left_metas.iter().map(user_meta).collect(),
            });
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

    fn keys(p: &Presence) -> Vec<String> {
        p.state().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn state_then_diff() {
        let mut p = Presence::new();
        let ch = p.apply_state(
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
        let ch = p.apply_diff(
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
            .apply_diff(
                Some("1"),
                &json!({"joins": {"bob": {"metas": [{"phx_ref": "b1"}]}}, "leaves": {}})
            )
            .is_empty());
        assert!(keys(&p).is_empty());
        let ch = p.apply_state(Some("1"), &json!({"alice": {"metas": [{"phx_ref": "a1"}]}}));
        assert_eq!(keys(&p), vec!["alice", "bob"]);
        assert_eq!(ch.last(), Some(&Change::Sync));
        assert_eq!(ch.len(), 3);
    }

    #[test]
    fn update_keeps_old_then_new_order_and_replaces_by_ref() {
        let mut p = Presence::new();
        p.apply_state(
            Some("1"),
            &json!({"k": {"metas": [{"phx_ref": "1"}, {"phx_ref": "2"}]}}),
        );
        p.apply_diff(
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
        p.apply_state(
            Some("1"),
            &json!({"a": {"metas": [{"phx_ref": "a1"}]}, "b": {"metas": [{"phx_ref": "b1"}]}}),
        );
        // A diff for a stale join ref is held until the new state arrives.
        assert!(p
            .apply_diff(Some("2"), &json!({"joins": {}, "leaves": {}}))
            .is_empty());
        let ch = p.apply_state(
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
        p.apply_state(Some("1"), &json!({"x": 1, "y": {"metas": "no"}}));
        assert!(keys(&p).is_empty());
        p.apply_diff(Some("1"), &json!("garbage"));
        assert!(keys(&p).is_empty());
    }
}
