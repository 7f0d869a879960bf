//! The fan-out fast path's test oracle, built from serde_json's own readers only; shared by
//! the unit tests of `fanout` and the `text_frame` fuzz target (which includes this file).

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A decode as (topic, event, payload text, meta text). Topic and event carry whether they
/// are borrowed from the frame: serde_json borrows a string unless it has escapes.
pub type Expected = (
    (String, bool),
    Option<(String, bool)>,
    Option<String>,
    Option<String>,
);

/// What serde_json's readers make of the frame under the fast path's shape rules: the head
/// `[null,null,"`, a string topic, the event "broadcast", an object body whose `event` (a
/// string), `payload` and `meta` appear at most once each, then any further elements;
/// every value checked as `&RawValue` checks it (which is what `IgnoredAny` checks too).
pub fn oracle(text: &str) -> Option<Expected> {
    let string = |raw: &RawValue| {
        let s = serde_json::from_str::<String>(raw.get()).ok()?;
        Some((s, !raw.get().contains('\\')))
    };
    if !text.starts_with("[null,null,\"") {
        return None;
    }
    let elements: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    let [_, _, topic, event, body, ..] = elements.as_slice() else {
        return None;
    };
    let topic = string(topic)?;
    if serde_json::from_str::<String>(event.get()).ok()? != "broadcast" {
        return None;
    }
    let Entries(entries) = serde_json::from_str(body.get()).ok()?;
    let (mut event, mut payload, mut meta) = (None, None, None);
    for (key, value) in entries {
        let duplicate = match key.as_str() {
            "event" => event.replace(string(value)?).is_some(),
            "payload" => payload.replace(value.get().to_owned()).is_some(),
            "meta" => meta.replace(value.get().to_owned()).is_some(),
            _ => false,
        };
        if duplicate {
            return None;
        }
    }
    Some((topic, event, payload, meta))
}

/// An object's entries in order, duplicates kept.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}
