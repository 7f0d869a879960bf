//! The per-client event queue and who drains it.
//!
//! The runtime thread only ever pushes into the queue; user callbacks run on the dispatcher
//! thread ([`DispatchMode::Thread`]) or inside [`Dispatcher::dispatch`] on the app's thread
//! ([`DispatchMode::AppPumped`]). The queue is bounded for data events: on overflow they are
//! dropped and a single `Lagged{dropped}` marker at that position counts them. Lifecycle events
//! are always queued. No lock is held while a callback runs, so callbacks may call any API.
//!
//! Per event the work does not grow with the number of channels: listeners are indexed by
//! channel, the runtime thread hands over all events of a socket read under one lock, and the
//! dispatcher thread takes them in batches. Broadcasts arrive as raw text
//! ([`Incoming::Broadcast`]) and are parsed here, once, just before the first Rust callback
//! that wants them; raw listeners (the C ABI) get the text itself.
//!
//! Deliveries come in runs: a run is what the dispatcher takes from the queue under one lock
//! (at most [`MAX_RUN`] items, never waiting for more), or one `dispatch` call in app-pumped
//! mode (cut every [`MAX_RUN`] items). A listener may carry a run-end hook, called then on the
//! delivering thread: the bindings' batching listeners collect events in their callback and
//! hand the batch to foreign code there, one foreign call per run instead of one per event.

use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::event::{ChannelId, Event};
use crate::incoming::{BroadcastRef, Emit, Incoming, RawBroadcast};
use crate::options::DispatchMode;

/// How long an idle dispatcher thread keeps polling (yielding its core) before it parks.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(50);
/// Delivered events waiting for the runtime thread to free them: past this many (it has
/// stopped collecting) the dispatcher thread frees them itself.
const SPENT_BACKLOG: usize = 4 * MAX_RUN;
/// The dispatcher thread takes up to this many queued items per lock; a run of deliveries
/// is at most this long, which bounds the batches of batching listeners (and how long the
/// first event of a batch waits for the rest).
pub(crate) const MAX_RUN: usize = 256;

/// Identifies a registered listener, for `remove_listener`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u64);

pub(crate) type Wakeup = Arc<dyn Fn() + Send + Sync>;
/// Called after each run of deliveries (see the module docs).
pub(crate) type RunEnd = Arc<dyn Fn() + Send + Sync>;

/// What a listener is called with.
#[derive(Clone)]
pub(crate) enum Callback {
    /// Every matching event, as the Rust API shows it (broadcasts parsed).
    Event(Arc<dyn Fn(&Event) + Send + Sync>),
    /// Matching broadcasts only, unparsed when they arrived raw.
    Broadcast(Arc<dyn Fn(BroadcastRef<'_>) + Send + Sync>),
}

/// Which events a listener receives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    All,
    /// The client's own events (connection, heartbeat, lag, errors), none of its channels':
    /// a binding watching the connection then is not handed every broadcast.
    Client,
    Channel(ChannelId),
    Broadcast {
        channel: ChannelId,
        event: String,
    },
    Presence(ChannelId),
    Postgres {
        channel: ChannelId,
        binding: usize,
    },
    System(ChannelId),
}

impl Filter {
    /// The channel whose events it wants; `None` for every event of the client.
    fn channel(&self) -> Option<ChannelId> {
        match self {
            Filter::All | Filter::Client => None,
            Filter::Channel(c)
            | Filter::Presence(c)
            | Filter::System(c)
            | Filter::Broadcast { channel: c, .. }
            | Filter::Postgres { channel: c, .. } => Some(*c),
        }
    }

    fn matches(&self, channel: Option<ChannelId>, event: &Event) -> bool {
        match self {
            Filter::All => true,
            Filter::Client => channel.is_none(),
            Filter::Channel(c) => channel == Some(*c) || matches!(event, Event::Lagged { .. }),
            Filter::Broadcast {
                channel: c,
                event: e,
            } => {
                channel == Some(*c)
                    && matches!(event, Event::Broadcast(b) if e == "*" || b.event.eq_ignore_ascii_case(e))
            }
            Filter::Presence(c) => channel == Some(*c) && matches!(event, Event::Presence(_)),
            Filter::Postgres {
                channel: c,
                binding,
            } => {
                channel == Some(*c)
                    && matches!(event, Event::PostgresChange(p) if p.bindings.contains(binding))
            }
            Filter::System(c) => channel == Some(*c) && matches!(event, Event::System { .. }),
        }
    }

    /// [`matches`](Self::matches) for a broadcast that is still raw text.
    fn matches_raw(&self, channel: Option<ChannelId>, raw: &RawBroadcast) -> bool {
        match self {
            Filter::All => true,
            Filter::Client => channel.is_none(),
            Filter::Channel(c) => channel == Some(*c),
            Filter::Broadcast {
                channel: c,
                event: e,
            } => channel == Some(*c) && (e == "*" || raw.event().eq_ignore_ascii_case(e)),
            _ => false,
        }
    }
}

struct Listener {
    id: u64,
    filter: Filter,
    callback: Callback,
    run_end: Option<RunEnd>,
}

/// Listeners in registration order (ids ascend), shared with deliveries in progress.
type List = Arc<Vec<Arc<Listener>>>;

/// The listeners, indexed so that an event looks at its channel's listeners only.
#[derive(Default)]
struct Table {
    global: List,
    by_channel: FxHashMap<ChannelId, List>,
    /// Where each listener is: `None` for global.
    place: HashMap<u64, Option<ChannelId>>,
}

impl Table {
    fn list_mut(&mut self, channel: Option<ChannelId>) -> &mut List {
        match channel {
            None => &mut self.global,
            Some(c) => self.by_channel.entry(c).or_default(),
        }
    }
}

enum Item {
    Event(Option<ChannelId>, Incoming),
    Lagged(u64),
    /// Drop a finished channel's listeners, in order (after its final status is delivered).
    RemoveChannel(ChannelId),
}

impl Item {
    fn is_data(&self) -> bool {
        matches!(self, Item::Event(_, i) if !i.is_lifecycle())
    }
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Data events currently queued (lifecycle events and lag markers are not counted).
    data_len: usize,
    closed: bool,
    /// Delivered runs on their way back to the runtime thread, which frees them: glibc's
    /// malloc makes every free of another thread's allocation contend on that thread's arena
    /// lock, and the frames' reference counts stay on one core.
    spent: VecDeque<Item>,
}

/// Moves the next run (at most [`MAX_RUN`] items) from the queue into `batch`, which is empty;
/// returns how many data events it took.
fn take_run(q: &mut Queue, batch: &mut VecDeque<Item>) -> usize {
    if q.items.len() <= MAX_RUN {
        // The usual case: the whole queue, by swapping buffers rather than moving each item.
        std::mem::swap(&mut q.items, batch);
        return std::mem::take(&mut q.data_len);
    }
    let mut taken = 0;
    for item in q.items.drain(..MAX_RUN) {
        taken += usize::from(item.is_data());
        batch.push_back(item);
    }
    q.data_len -= taken;
    taken
}

thread_local! {
    static IN_DISPATCH: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is delivering events (a blocking call here could deadlock).
pub(crate) fn on_dispatcher_thread() -> bool {
    IN_DISPATCH.with(Cell::get)
}

/// The event queue of one client plus its listeners.
pub(crate) struct Dispatcher {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    /// Data events the dispatcher thread has taken into its batch and not started yet: they
    /// still count against `capacity`, so batching does not enlarge the queue.
    batched: AtomicUsize,
    listeners: Mutex<Table>,
    /// Moves on with every change of `listeners` (made under its lock), so that cached lists
    /// ([`ListCache`]) are looked up again.
    listeners_version: AtomicU64,
    next_listener: AtomicU64,
    wakeup: Mutex<Option<Wakeup>>,
    /// Run-end hooks of the listeners that received events in the current run (kept even if
    /// the listener is removed during the run: its callback may hold events to hand on).
    touched: Mutex<Vec<RunEnd>>,
    pub(crate) dropped_total: AtomicU64,
    /// `Lagged` markers queued.
    pub(crate) lagged_total: AtomicU64,
}

impl Dispatcher {
    /// A dispatcher; in thread mode it also starts the "supa-dispatch" thread.
    pub(crate) fn start(mode: DispatchMode, capacity: usize) -> Arc<Dispatcher> {
        let d = Arc::new(Dispatcher {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            batched: AtomicUsize::new(0),
            listeners: Mutex::new(Table::default()),
            listeners_version: AtomicU64::new(0),
            next_listener: AtomicU64::new(1),
            wakeup: Mutex::new(None),
            touched: Mutex::new(Vec::new()),
            dropped_total: AtomicU64::new(0),
            lagged_total: AtomicU64::new(0),
        });
        if mode == DispatchMode::Thread {
            let d2 = d.clone();
            std::thread::Builder::new()
                .name("supa-dispatch".into())
                .spawn(move || d2.run_thread())
                .expect("spawning the dispatcher thread");
        }
        d
    }

    fn run_thread(self: Arc<Self>) {
        IN_DISPATCH.with(|f| f.set(true));
        // The run being delivered. Delivered, it goes back to the runtime thread whole: its
        // events are freed there, on the thread that allocated them (see `Queue::spent`).
        let mut batch: VecDeque<Item> = VecDeque::new();
        loop {
            let mut overflow = VecDeque::new();
            {
                let mut q = self.queue.lock();
                if q.spent.is_empty() {
                    std::mem::swap(&mut q.spent, &mut batch);
                } else {
                    // The runtime thread has not collected the last run yet. Only a backlog it
                    // has stopped collecting is freed here.
                    q.spent.append(&mut batch);
                    if q.spent.len() > SPENT_BACKLOG {
                        overflow = std::mem::take(&mut q.spent);
                    }
                }
                let mut idle_since: Option<Instant> = None;
                loop {
                    let taken = take_run(&mut q, &mut batch);
                    self.batched.fetch_add(taken, Ordering::Relaxed);
                    if !batch.is_empty() || q.closed {
                        break;
                    }
                    // Events come in bursts (one socket read holds many frames). Parking at
                    // once would cost the network thread a futex wake-up, and often a context
                    // switch, per burst; poll the queue briefly first.
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < SPIN_BEFORE_PARK {
                        MutexGuard::unlocked(&mut q, std::thread::yield_now);
                        continue;
                    }
                    if !q.spent.is_empty() {
                        // The network thread has been quiet for a while: free the leftovers
                        // here rather than keep them until its next event.
                        let leftovers = std::mem::take(&mut q.spent);
                        MutexGuard::unlocked(&mut q, || drop(leftovers));
                        continue;
                    }
                    self.ready.wait(&mut q);
                    idle_since = None;
                }
            }
            drop(overflow);
            if batch.is_empty() {
                break; // closed and drained
            }
            let mut cache = ListCache::default();
            for item in &batch {
                if item.is_data() {
                    self.batched.fetch_sub(1, Ordering::Relaxed);
                }
                self.deliver(item, &mut cache);
            }
            drop(cache);
            self.end_run();
        }
        self.drop_listeners();
    }

    fn pop_locked(&self, q: &mut Queue) -> Option<Item> {
        let item = q.items.pop_front()?;
        if item.is_data() {
            q.data_len -= 1;
        }
        Some(item)
    }

    /// Queues everything in `emits`, in order, under one lock (from the runtime thread).
    pub(crate) fn push_all(&self, emits: &mut Vec<Emit>) {
        if emits.is_empty() {
            return;
        }
        let was_empty;
        let mut spent = VecDeque::new();
        let mut dropped = Vec::new();
        {
            let mut q = self.queue.lock();
            if q.closed {
                drop(q);
                emits.clear();
                return;
            }
            if !q.spent.is_empty() {
                // The replacement is allocated here too: every queue buffer the dispatcher
                // thread hands around (and back) is this thread's.
                spent = std::mem::replace(&mut q.spent, VecDeque::with_capacity(MAX_RUN));
            }
            was_empty = q.items.is_empty();
            // Read once: the dispatcher thread writes it per event, and reading it per event
            // here would move its cache line between the cores per event. It only shrinks
            // while we hold the lock, so this copy errs towards a full queue, never past it.
            let batched = self.batched.load(Ordering::Relaxed);
            for emit in emits.drain(..) {
                let item = match emit {
                    Emit::Event(channel, incoming) => Item::Event(channel, incoming),
                    Emit::RemoveChannel(c) => Item::RemoveChannel(c),
                };
                let waiting = q.data_len + batched;
                if item.is_data() && waiting >= self.capacity {
                    self.dropped_total.fetch_add(1, Ordering::Relaxed);
                    match q.items.back_mut() {
                        Some(Item::Lagged(n)) => *n += 1,
                        _ => {
                            self.lagged_total.fetch_add(1, Ordering::Relaxed);
                            q.items.push_back(Item::Lagged(1))
                        }
                    }
                    // Freed below, outside the lock.
                    dropped.push(item);
                    continue;
                }
                if item.is_data() {
                    q.data_len += 1;
                }
                q.items.push_back(item);
            }
        }
        self.ready.notify_one();
        if was_empty {
            let hook = self.wakeup.lock().clone();
            if let Some(hook) = hook {
                // The hook is the app's; it must only schedule a `dispatch` call.
                let _ = catch_unwind(AssertUnwindSafe(|| hook()));
            }
        }
        // Freed here, on the thread that allocated them, outside the lock.
        drop((spent, dropped));
    }

    /// App-pumped mode: delivers up to `max` queued events on the calling thread.
    pub(crate) fn dispatch(&self, max: usize) -> usize {
        let was = on_dispatcher_thread();
        IN_DISPATCH.with(|f| f.set(true));
        let mut n = 0;
        let mut run_len = 0;
        let mut cache = ListCache::default();
        while n < max {
            let item = self.pop_locked(&mut self.queue.lock());
            let Some(item) = item else { break };
            let counted = matches!(item, Item::Event(..) | Item::Lagged(_));
            self.deliver(&item, &mut cache);
            n += usize::from(counted);
            run_len += 1;
            if run_len >= MAX_RUN {
                run_len = 0;
                cache = ListCache::default();
                self.end_run();
            }
        }
        if run_len > 0 {
            self.end_run();
        }
        IN_DISPATCH.with(|f| f.set(was));
        let finished = {
            let q = self.queue.lock();
            q.closed && q.items.is_empty()
        };
        if finished {
            self.drop_listeners();
        }
        n
    }

    /// Replaces the wakeup hook. The old one is dropped after the lock is released: its
    /// destructor is user code (a C destroy callback) and may call `set_wakeup` itself.
    pub(crate) fn set_wakeup(&self, hook: Option<Wakeup>) {
        let old = std::mem::replace(&mut *self.wakeup.lock(), hook);
        drop(old);
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.queue.lock().items.len() + self.batched.load(Ordering::Relaxed)
    }

    /// Runs the item's callbacks (the caller disposes of the item).
    fn deliver(&self, item: &Item, cache: &mut ListCache) {
        let lag;
        let (channel, incoming) = match item {
            Item::Event(c, e) => (*c, e),
            Item::Lagged(dropped) => {
                lag = Incoming::from(Event::Lagged { dropped: *dropped });
                (None, &lag)
            }
            Item::RemoveChannel(c) => return self.remove_channel_listeners(*c),
        };
        let lagged = matches!(incoming, Incoming::Event(e) if matches!(**e, Event::Lagged { .. }));
        // Per event this allocates nothing: at 1M events/s a small `Vec` here cost a tenth
        // of the dispatcher thread, in malloc and in its arena lock.
        let all;
        let lists = if lagged {
            // Channel listeners hear about drops too.
            let t = self.listeners.lock();
            let mut lists = vec![t.global.clone()];
            lists.extend(t.by_channel.values().cloned());
            all = Lists::All(lists);
            &all
        } else {
            self.lists_for(channel, cache)
        };
        // A raw broadcast is parsed once, for the first Rust callback that wants it.
        let mut parsed: Option<Event> = None;
        for_each_in_registration_order(lists.as_slice(), |l| {
            // A panicking callback must not kill the dispatcher (or cross an FFI boundary).
            let called = catch_unwind(AssertUnwindSafe(|| call(l, channel, incoming, &mut parsed)))
                .unwrap_or(true);
            if let (true, Some(hook)) = (called, &l.run_end) {
                let mut touched = self.touched.lock();
                if !touched.iter().any(|h| Arc::ptr_eq(h, hook)) {
                    touched.push(hook.clone());
                }
            }
        });
    }

    /// The client-wide list and `channel`'s, from `cache` while the table is unchanged.
    fn lists_for<'c>(&self, channel: Option<ChannelId>, cache: &'c mut ListCache) -> &'c Lists {
        let version = self.listeners_version.load(Ordering::Acquire);
        if cache.key != Some((version, channel)) {
            let t = self.listeners.lock();
            // Read again under the lock: the lists below are of this version.
            let version = self.listeners_version.load(Ordering::Relaxed);
            let lists = match channel.and_then(|c| t.by_channel.get(&c)) {
                Some(list) => Lists::Few([t.global.clone(), list.clone()], 2),
                None => Lists::Few([t.global.clone(), t.global.clone()], 1),
            };
            drop(t);
            // The lists replaced are dropped here, outside the lock (they may hold the last
            // reference to a removed listener, whose closure is the app's).
            cache.lists = lists;
            cache.key = Some((version, channel));
        }
        &cache.lists
    }

    /// Changes the listener table (under its lock) and moves its version on.
    fn edit_listeners<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        let mut t = self.listeners.lock();
        let r = f(&mut t);
        self.listeners_version.fetch_add(1, Ordering::Release);
        r
    }

    pub(crate) fn add_listener(&self, filter: Filter, callback: Callback) -> ListenerId {
        self.add_batching_listener(filter, callback, None)
    }

    /// A listener whose `run_end` hook is called, on the delivering thread, at the end of each
    /// run in which its callback was called.
    pub(crate) fn add_batching_listener(
        &self,
        filter: Filter,
        callback: Callback,
        run_end: Option<RunEnd>,
    ) -> ListenerId {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        let channel = filter.channel();
        self.edit_listeners(|t| {
            t.place.insert(id, channel);
            Arc::make_mut(t.list_mut(channel)).push(Arc::new(Listener {
                id,
                filter,
                callback,
                run_end,
            }));
        });
        ListenerId(id)
    }

    /// Ends a run: calls the run-end hooks of the listeners that received events in it.
    fn end_run(&self) {
        let hooks = std::mem::take(&mut *self.touched.lock());
        for hook in hooks {
            let _ = catch_unwind(AssertUnwindSafe(|| hook()));
        }
    }

    pub(crate) fn remove_listener(&self, id: ListenerId) {
        let removed: Vec<Arc<Listener>> = self.edit_listeners(|t| {
            let Some(channel) = t.place.remove(&id.0) else {
                return Vec::new();
            };
            let list = Arc::make_mut(t.list_mut(channel));
            let (gone, keep) = std::mem::take(list).into_iter().partition(|l| l.id == id.0);
            *list = keep;
            gone
        });
        drop(removed); // outside the lock: a closure may own the last client handle
    }

    /// Removes every listener of a channel.
    pub(crate) fn remove_channel_listeners(&self, channel: ChannelId) {
        let removed = self.edit_listeners(|t| {
            let removed = t.by_channel.remove(&channel);
            if let Some(list) = &removed {
                for l in list.iter() {
                    t.place.remove(&l.id);
                }
            }
            removed
        });
        drop(removed);
    }

    /// Stops accepting events. Those already queued (the channels' final CLOSED statuses and
    /// `ShutDown` among them) are still delivered; the listeners go after the last one.
    pub(crate) fn close(&self) {
        {
            let mut q = self.queue.lock();
            if q.closed {
                return;
            }
            q.closed = true;
        }
        self.ready.notify_all();
        let hook = self.wakeup.lock().clone();
        if let Some(hook) = hook {
            let _ = catch_unwind(AssertUnwindSafe(|| hook()));
        }
    }

    /// Drops all listeners (and what their closures own) outside any lock.
    pub(crate) fn drop_listeners(&self) {
        let all = self.edit_listeners(std::mem::take);
        let touched = std::mem::take(&mut *self.touched.lock());
        let wakeup = self.wakeup.lock().take();
        drop((all, touched));
        drop(wakeup);
    }
}

/// The listener lists an event goes to: the client-wide list and its channel's (the first `n`
/// of the pair), or, for `Lagged`, every list.
enum Lists {
    Few([List; 2], usize),
    All(Vec<List>),
}

impl Lists {
    fn as_slice(&self) -> &[List] {
        match self {
            Lists::Few(pair, n) => &pair[..*n],
            Lists::All(all) => all,
        }
    }
}

/// The lists of the last channel delivered to, with the table version they are of. A run is
/// mostly one channel's events, and looking its lists up per event took a lock and two
/// reference counts. Kept for one run at most, so that a removed listener's closure is not
/// kept alive by it while the queue is idle.
struct ListCache {
    key: Option<(u64, Option<ChannelId>)>,
    lists: Lists,
}

impl Default for ListCache {
    fn default() -> Self {
        ListCache {
            key: None,
            lists: Lists::Few(Default::default(), 0),
        }
    }
}

/// Calls `f` on the listeners of several registration-ordered lists in one registration order.
fn for_each_in_registration_order(lists: &[List], mut f: impl FnMut(&Arc<Listener>)) {
    match lists {
        [one] => one.iter().for_each(f),
        [a, b] => {
            let (mut i, mut j) = (0, 0);
            loop {
                let next = match (a.get(i), b.get(j)) {
                    (Some(x), Some(y)) if x.id < y.id => {
                        i += 1;
                        x
                    }
                    (_, Some(y)) => {
                        j += 1;
                        y
                    }
                    (Some(x), None) => {
                        i += 1;
                        x
                    }
                    (None, None) => break,
                };
                f(next);
            }
        }
        _ => {
            let mut at = vec![0usize; lists.len()];
            while let Some((i, l)) = lists
                .iter()
                .enumerate()
                .filter_map(|(i, list)| list.get(at[i]).map(|l| (i, l)))
                .min_by_key(|(_, l)| l.id)
            {
                at[i] += 1;
                f(l);
            }
        }
    }
}

/// Calls one listener if the event is for it (returns whether it did). `parsed` caches the Rust view of a raw
/// broadcast: a broadcast whose payload does not parse reaches the client-wide listeners as
/// the `Event::Error` that reports it (and no channel listener), as it always did.
fn call(
    l: &Listener,
    channel: Option<ChannelId>,
    incoming: &Incoming,
    parsed: &mut Option<Event>,
) -> bool {
    match (&l.callback, incoming) {
        (Callback::Event(f), Incoming::Event(e)) => {
            let wanted = l.filter.matches(channel, e);
            if wanted {
                f(e)
            }
            wanted
        }
        (Callback::Event(f), Incoming::Broadcast(raw)) => {
            if !l.filter.matches_raw(channel, raw) {
                return false;
            }
            let e = parsed.get_or_insert_with(|| incoming.to_event());
            let wanted = matches!(e, Event::Broadcast(_)) || l.filter == Filter::All;
            if wanted {
                f(e)
            }
            wanted
        }
        (Callback::Broadcast(f), Incoming::Event(e)) => {
            let Event::Broadcast(b) = &**e else {
                return false;
            };
            let wanted = l.filter.matches(channel, e);
            if wanted {
                f(BroadcastRef::Parsed(b))
            }
            wanted
        }
        (Callback::Broadcast(f), Incoming::Broadcast(raw)) => {
            let wanted = l.filter.matches_raw(channel, raw);
            if wanted {
                f(BroadcastRef::Raw(raw))
            }
            wanted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Payload;
    use crate::incoming::RawPayload;
    use tokio_tungstenite::tungstenite::Bytes;

    fn data(n: u64) -> Event {
        Event::System {
            topic: "t".into(),
            payload: serde_json::json!(n),
        }
    }

    fn record(seen: &Arc<Mutex<Vec<Event>>>) -> Callback {
        let s = seen.clone();
        Callback::Event(Arc::new(move |e: &Event| s.lock().push(e.clone())))
    }

    impl Dispatcher {
        fn push(&self, channel: Option<ChannelId>, event: Event) {
            self.push_all(&mut vec![Emit::Event(channel, Incoming::from(event))]);
        }
    }

    fn raw(event: &str, payload: &str) -> Incoming {
        Incoming::Broadcast(RawBroadcast::new(
            "realtime:a".into(),
            &Bytes::new(),
            event,
            RawPayload::Json(payload),
            None,
        ))
    }

    #[test]
    fn overflow_drops_data_and_reports_lag_in_place() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 2);
        let seen = Arc::new(Mutex::new(Vec::new()));
        d.add_listener(Filter::All, record(&seen));
        for i in 0..5 {
            d.push(None, data(i));
        }
        d.push(
            None,
            Event::Error {
                message: "x".into(),
            },
        );
        assert_eq!(d.dispatch(100), 4);
        let seen = seen.lock();
        assert_eq!(seen[0], data(0));
        assert_eq!(seen[1], data(1));
        assert_eq!(seen[2], Event::Lagged { dropped: 3 });
        assert!(matches!(seen[3], Event::Error { .. }));
    }

    /// A batching listener: its callback collects, its run-end hook records the batch sizes.
    fn batching(d: &Dispatcher, filter: Filter) -> Arc<Mutex<(usize, Vec<usize>)>> {
        let state = Arc::new(Mutex::new((0, Vec::new())));
        let (s1, s2) = (state.clone(), state.clone());
        d.add_batching_listener(
            filter,
            Callback::Event(Arc::new(move |_e: &Event| s1.lock().0 += 1)),
            Some(Arc::new(move || {
                let mut s = s2.lock();
                let n = std::mem::take(&mut s.0);
                s.1.push(n);
            })),
        );
        state
    }

    #[test]
    fn runs_end_after_each_dispatch_and_after_max_run() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 10_000);
        let batches = batching(&d, Filter::All);
        let idle = batching(&d, Filter::Channel(7)); // never matches: never called
        for i in 0..3 {
            d.push(None, data(i));
        }
        assert_eq!(d.dispatch(100), 3);
        for i in 0..(MAX_RUN as u64 + 4) {
            d.push(None, data(i));
        }
        assert_eq!(d.dispatch(10_000), MAX_RUN + 4);
        assert_eq!(batches.lock().1, vec![3, MAX_RUN, 4]);
        assert!(idle.lock().1.is_empty());
    }

    #[test]
    fn a_listener_removed_during_a_run_still_ends_it() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 100);
        let batches = batching(&d, Filter::Channel(1));
        d.push(Some(1), data(1));
        d.push(Some(1), data(2));
        d.push_all(&mut vec![Emit::RemoveChannel(1)]); // behind the channel's last events
        d.push(Some(1), data(3));
        assert_eq!(d.dispatch(100), 3);
        assert_eq!(batches.lock().1, vec![2]);
    }

    #[test]
    fn thread_mode_ends_runs_by_itself() {
        let d = Dispatcher::start(DispatchMode::Thread, 100);
        let batches = batching(&d, Filter::All);
        d.push(None, data(1));
        let deadline = Instant::now() + Duration::from_secs(10);
        while batches.lock().1.is_empty() {
            assert!(Instant::now() < deadline, "no run end");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(batches.lock().1, vec![1]);
        d.close();
    }

    #[test]
    fn callbacks_may_reenter() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 10);
        let d2 = d.clone();
        d.add_listener(
            Filter::All,
            Callback::Event(Arc::new(move |_e: &Event| {
                // Re-entering: registering and queueing from inside a callback must not deadlock.
                d2.add_listener(Filter::All, Callback::Event(Arc::new(|_e: &Event| {})));
                assert!(on_dispatcher_thread());
            })),
        );
        d.push(None, data(1));
        assert_eq!(d.dispatch(10), 1);
        assert!(!on_dispatcher_thread());
    }

    /// Global and per-channel listeners run in registration order; channel listeners see
    /// only their channel (and lag markers); removal works on both.
    #[test]
    fn listeners_are_indexed_by_channel_in_registration_order() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 10);
        let order = Arc::new(Mutex::new(Vec::new()));
        let tag = |name: &'static str| {
            let o = order.clone();
            Callback::Event(Arc::new(move |_e: &Event| o.lock().push(name)))
        };
        d.add_listener(Filter::Channel(1), tag("c1-a"));
        let all = d.add_listener(Filter::All, tag("all"));
        d.add_listener(Filter::Channel(2), tag("c2"));
        d.add_listener(Filter::System(1), tag("c1-system"));
        d.push(Some(1), data(1));
        d.dispatch(10);
        assert_eq!(*order.lock(), vec!["c1-a", "all", "c1-system"]);
        order.lock().clear();
        // A lag marker goes to every list, still in registration order.
        d.push_all(&mut vec![Emit::Event(
            None,
            Incoming::from(Event::Lagged { dropped: 1 }),
        )]);
        d.dispatch(10);
        assert_eq!(*order.lock(), vec!["c1-a", "all", "c2"]);
        order.lock().clear();
        d.remove_listener(all);
        d.remove_channel_listeners(1);
        d.push(Some(1), data(2));
        d.push_all(&mut vec![Emit::Event(
            None,
            Incoming::from(Event::Lagged { dropped: 1 }),
        )]);
        d.dispatch(10);
        assert_eq!(*order.lock(), vec!["c2"], "only the lag marker reached c2");
    }

    /// A listener added or removed by a callback takes effect from the next event of the same
    /// run (the lists a run caches are looked up again after every change).
    #[test]
    fn listener_changes_take_effect_at_the_next_event_of_a_run() {
        for mode in [DispatchMode::AppPumped, DispatchMode::Thread] {
            let d = Dispatcher::start(mode, 100);
            let seen = Arc::new(Mutex::new(Vec::new()));
            let late: Arc<Mutex<Option<ListenerId>>> = Arc::default();
            let (d2, s2, l2) = (d.clone(), seen.clone(), late.clone());
            d.add_listener(
                Filter::Channel(1),
                Callback::Event(Arc::new(move |e: &Event| {
                    let Event::System { payload, .. } = e else {
                        return;
                    };
                    let n = payload.as_u64().unwrap_or_default();
                    s2.lock().push(format!("first {n}"));
                    match n {
                        2 => {
                            let s3 = s2.clone();
                            let id = d2.add_listener(
                                Filter::Channel(1),
                                Callback::Event(Arc::new(move |e: &Event| {
                                    if let Event::System { payload, .. } = e {
                                        s3.lock().push(format!("late {payload}"));
                                    }
                                })),
                            );
                            *l2.lock() = Some(id);
                        }
                        4 => d2.remove_listener(l2.lock().take().unwrap()),
                        _ => {}
                    }
                })),
            );
            // One push: the five events are one run.
            let mut emits: Vec<Emit> = (1..=5)
                .map(|n| Emit::Event(Some(1), Incoming::from(data(n))))
                .collect();
            d.push_all(&mut emits);
            if mode == DispatchMode::AppPumped {
                assert_eq!(d.dispatch(100), 5);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while seen.lock().len() < 7 {
                assert!(Instant::now() < deadline, "{:?}", seen.lock());
                std::thread::sleep(Duration::from_millis(1));
            }
            // Removed while event 4 is delivered, `late` still hears event 4, as an event's
            // listeners are those registered when its delivery starts.
            let expected = [
                "first 1", "first 2", "first 3", "late 3", "first 4", "late 4", "first 5",
            ];
            assert_eq!(*seen.lock(), expected, "{mode:?}");
            d.close();
        }
    }

    #[test]
    fn a_client_listener_sees_the_client_events_only() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 10);
        let seen = Arc::new(Mutex::new(Vec::new()));
        d.add_listener(Filter::Client, record(&seen));
        let state = Event::ConnectionStatus {
            state: crate::event::ConnectionState::Connected,
            reason: None,
        };
        d.push_all(&mut vec![
            Emit::Event(Some(1), raw("e", "1")),
            Emit::Event(Some(1), Incoming::from(data(2))),
            Emit::Event(None, Incoming::from(state.clone())),
            Emit::Event(None, Incoming::from(Event::Lagged { dropped: 3 })),
        ]);
        assert_eq!(d.dispatch(10), 4);
        assert_eq!(*seen.lock(), vec![state, Event::Lagged { dropped: 3 }]);
    }

    #[test]
    fn raw_broadcasts_are_parsed_once_for_rust_and_handed_on_raw() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 10);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let texts = Arc::new(Mutex::new(Vec::new()));
        d.add_listener(
            Filter::Broadcast {
                channel: 1,
                event: "E".into(),
            },
            record(&seen),
        );
        let t = texts.clone();
        d.add_listener(
            Filter::Broadcast {
                channel: 1,
                event: "*".into(),
            },
            Callback::Broadcast(Arc::new(move |b: BroadcastRef<'_>| {
                if let BroadcastRef::Raw(r) = b {
                    t.lock()
                        .push(r.payload_json().unwrap_or_default().to_owned());
                }
            })),
        );
        let all = Arc::new(Mutex::new(Vec::new()));
        d.add_listener(Filter::All, record(&all));
        d.push_all(&mut vec![
            Emit::Event(Some(1), raw("e", r#"{"n" : 1}"#)),
            Emit::Event(Some(1), raw("other", "2")),
            Emit::Event(Some(1), raw("e", r#""\ud800""#)),
        ]);
        assert_eq!(d.dispatch(10), 3);
        match &seen.lock()[..] {
            [Event::Broadcast(b)] => {
                assert_eq!(b.payload, Payload::Json(serde_json::json!({"n": 1})))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*texts.lock(), vec![r#"{"n" : 1}"#, "2", r#""\ud800""#]);
        let all = all.lock();
        assert!(matches!(all[2], Event::Error { .. }), "{all:?}");
    }

    /// A wakeup hook's destructor (a C destroy callback) that calls `set_wakeup` again: it ran
    /// under the wakeup lock and deadlocked (issue 11 known defect).
    #[test]
    fn a_wakeup_destructor_may_set_the_wakeup() {
        struct Reenter(Arc<Dispatcher>);
        impl Drop for Reenter {
            fn drop(&mut self) {
                self.0.set_wakeup(None);
            }
        }
        let d = Dispatcher::start(DispatchMode::AppPumped, 10);
        let guard = Reenter(d.clone());
        d.set_wakeup(Some(Arc::new(move || {
            let _ = &guard;
        })));
        let (tx, rx) = std::sync::mpsc::channel();
        let d2 = d.clone();
        std::thread::spawn(move || {
            d2.set_wakeup(Some(Arc::new(|| {})));
            d2.close();
            d2.drop_listeners();
            let _ = tx.send(());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("replacing the hook deadlocked in its destructor");
    }
}
