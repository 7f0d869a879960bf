//! What both change sources hand their batches to: the fan-out, retried until it succeeds
//! (a lost database connection never loses a batch), and the relay of broadcasts written to
//! `realtime.messages`.

use std::sync::Weak;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::change::{Action, Change};
use super::fanout::Fanout;
use super::subscriptions::Registry;
use super::DbBroadcast;

const MAX_RETRY: Duration = Duration::from_secs(5);

pub struct Feed {
    pub registry: Weak<Registry>,
    pub fanout: Fanout,
    pub broadcasts: mpsc::UnboundedSender<DbBroadcast>,
}

impl Feed {
    /// The `PgChanges` it serves is gone.
    pub fn closed(&self) -> bool {
        self.registry.strong_count() == 0
    }

    /// Delivers a batch; `false` when stopped before it could (it was not delivered).
    pub async fn deliver(&mut self, changes: &[Change], stop: &mut watch::Receiver<bool>) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            let Some(registry) = self.registry.upgrade() else {
                return false;
            };
            match self.fanout.deliver(&registry, changes).await {
                Ok(()) => break,
                Err(e) => {
                    drop(registry);
                    eprintln!("supa-realtime-server: postgres changes: retrying the batch: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|s| *s) => return false,
                    }
                    backoff = (backoff * 2).min(MAX_RETRY);
                }
            }
        }
        for change in changes {
            self.broadcast(change);
        }
        true
    }

    /// A row inserted into `realtime.messages` (or one of its partitions) by `realtime.send`.
    fn broadcast(&self, change: &Change) {
        if change.schema != "realtime"
            || !(change.table == "messages" || change.table.starts_with("messages_"))
            || change.action != Action::Insert
        {
            return;
        }
        let get = |n: &str| {
            change
                .columns
                .iter()
                .find(|c| c.name == n)
                .and_then(|c| c.value.clone())
        };
        if get("extension").as_deref() != Some("broadcast") {
            return;
        }
        let payload = get("payload")
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Value::Null);
        let _ = self.broadcasts.send(DbBroadcast {
            topic: get("topic").unwrap_or_default(),
            event: get("event").unwrap_or_default(),
            payload,
            private: matches!(get("private").as_deref(), Some("t" | "true")),
            id: get("id").unwrap_or_default(),
        });
    }
}
