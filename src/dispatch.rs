//! The per-client event queue and who drains it.
//!
//! The runtime thread only ever pushes into the queue; user callbacks run on the dispatcher
//! thread ([`DispatchMode::Thread`]) or inside [`Dispatcher::dispatch`] on the app's thread
//! ([`DispatchMode::AppPumped`]). The queue is bounded for data events: on overflow they are
//! dropped and a single `Lagged{dropped}` marker at that position counts them. Lifecycle events
//! are always queued. No lock is held while a callback runs, so callbacks may call any API.
//!
//! Deliveries come in runs: a run ends when the queue is momentarily empty (a run never waits
//! for more events), after [`MAX_RUN`] events, and at the end of each `dispatch` call. A
//! listener may carry a run-end hook, called then on the delivering thread: the bindings'
//! batching listeners collect events in their callback and hand the batch to foreign code
//! there, one foreign call per run instead of one per event.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::event::{ChannelId, Event};
use crate::options::DispatchMode;

/// How long an idle dispatcher thread keeps polling (yielding its core) before it parks.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(50);
/// The runtime thread collects delivered events in batches of this many.
const SPENT_BATCH: usize = 64;
/// A run of deliveries ends after this many items even if more are queued, which bounds the
/// batches of batching listeners (and how long the first event of a batch waits for the rest).
pub(crate) const MAX_RUN: usize = 256;

/// Identifies a registered listener, for `remove_listener`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u64);

pub(crate) type Callback = Arc<dyn Fn(&Event) + Send + Sync>;
pub(crate) type Wakeup = Arc<dyn Fn() + Send + Sync>;
/// Called after each run of deliveries (see the module docs).
pub(crate) type RunEnd = Arc<dyn Fn() + Send + Sync>;

/// Which events a listener receives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    All,
    Channel(ChannelId),
    Broadcast { channel: ChannelId, event: String },
    Presence(ChannelId),
    Postgres { channel: ChannelId, binding: usize },
    System(ChannelId),
}

impl Filter {
    fn matches(&self, channel: Option<ChannelId>, event: &Event) -> bool {
        match self {
            Filter::All => true,
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
}

struct Listener {
    id: u64,
    filter: Filter,
    callback: Callback,
    run_end: Option<RunEnd>,
}

enum Item {
    Event(Option<ChannelId>, Event),
    Lagged(u64),
    /// Drop a finished channel's listeners, in order (after its final status is delivered).
    RemoveChannel(ChannelId),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Data events currently queued (lifecycle events and lag markers are not counted).
    data_len: usize,
    closed: bool,
    /// Delivered events on their way back to the runtime thread, which frees them: glibc's
    /// malloc makes every free of another thread's allocation contend on that thread's arena
    /// lock, which made freeing events the dispatcher thread's largest cost.
    spent: Vec<Event>,
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
    listeners: Mutex<Vec<Listener>>,
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
            listeners: Mutex::new(Vec::new()),
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
        let mut spent: Option<Event> = None;
        let mut run_len = 0;
        loop {
            let mut overflow = None;
            let item = {
                let mut q = self.queue.lock();
                if let Some(e) = spent.take() {
                    if q.spent.len() < SPENT_BATCH * 4 {
                        q.spent.push(e);
                    } else {
                        overflow = Some(e);
                    }
                }
                let mut idle_since: Option<Instant> = None;
                loop {
                    if let Some(item) = self.pop_locked(&mut q) {
                        break Some(item);
                    }
                    if run_len > 0 {
                        // The queue ran empty: end the run rather than wait for more.
                        run_len = 0;
                        MutexGuard::unlocked(&mut q, || self.end_run());
                        continue;
                    }
                    if q.closed {
                        break None;
                    }
                    // Events come in bursts (one socket read holds many frames). Parking at
                    // once would cost the network thread a futex wake-up, and often a context
                    // switch, per event; poll the queue briefly first.
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
            };
            drop(overflow);
            match item {
                Some(item) => spent = self.deliver(item),
                None => break,
            }
            run_len += 1;
            if run_len >= MAX_RUN {
                run_len = 0;
                self.end_run();
            }
        }
        self.drop_listeners();
    }

    fn pop_locked(&self, q: &mut Queue) -> Option<Item> {
        let item = q.items.pop_front()?;
        if matches!(&item, Item::Event(_, e) if !e.is_lifecycle()) {
            q.data_len -= 1;
        }
        Some(item)
    }

    /// Queues an event (from the runtime thread). Never blocks on user code.
    pub(crate) fn push(&self, channel: Option<ChannelId>, event: Event) {
        let was_empty;
        let mut spent = Vec::new();
        {
            let mut q = self.queue.lock();
            if q.closed {
                return;
            }
            if q.spent.len() >= SPENT_BATCH {
                // The replacement is allocated here too, so the dispatcher only ever pushes
                // into a buffer this thread owns (capacity covers the dispatcher's limit).
                spent = std::mem::replace(&mut q.spent, Vec::with_capacity(SPENT_BATCH * 4));
            }
            was_empty = q.items.is_empty();
            if !event.is_lifecycle() && q.data_len >= self.capacity {
                self.dropped_total.fetch_add(1, Ordering::Relaxed);
                match q.items.back_mut() {
                    Some(Item::Lagged(n)) => *n += 1,
                    _ => {
                        self.lagged_total.fetch_add(1, Ordering::Relaxed);
                        q.items.push_back(Item::Lagged(1))
                    }
                }
            } else {
                if !event.is_lifecycle() {
                    q.data_len += 1;
                }
                q.items.push_back(Item::Event(channel, event));
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
        drop(spent);
    }

    /// Queues the removal of a channel's listeners behind the events already queued.
    pub(crate) fn push_remove_channel(&self, channel: ChannelId) {
        {
            let mut q = self.queue.lock();
            if q.closed {
                return;
            }
            q.items.push_back(Item::RemoveChannel(channel));
        }
        self.ready.notify_one();
    }

    /// App-pumped mode: delivers up to `max` queued events on the calling thread.
    pub(crate) fn dispatch(&self, max: usize) -> usize {
        let was = on_dispatcher_thread();
        IN_DISPATCH.with(|f| f.set(true));
        let mut n = 0;
        let mut run_len = 0;
        while n < max {
            let item = self.pop_locked(&mut self.queue.lock());
            let Some(item) = item else { break };
            let counted = matches!(item, Item::Event(..) | Item::Lagged(_));
            self.deliver(item);
            n += usize::from(counted);
            run_len += 1;
            if run_len >= MAX_RUN {
                run_len = 0;
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

    pub(crate) fn set_wakeup(&self, hook: Option<Wakeup>) {
        *self.wakeup.lock() = hook;
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.queue.lock().items.len()
    }

    /// Runs the item's callbacks; returns the delivered event for the caller to dispose of.
    fn deliver(&self, item: Item) -> Option<Event> {
        let (channel, event) = match item {
            Item::Event(c, e) => (c, e),
            Item::Lagged(dropped) => (None, Event::Lagged { dropped }),
            Item::RemoveChannel(c) => {
                self.remove_channel_listeners(c);
                return None;
            }
        };
        let callbacks: Vec<Callback> = {
            let listeners = self.listeners.lock();
            let matching = listeners
                .iter()
                .filter(|l| l.filter.matches(channel, &event));
            let mut touched = None;
            for hook in matching.clone().filter_map(|l| l.run_end.as_ref()) {
                let touched = touched.get_or_insert_with(|| self.touched.lock());
                if !touched.iter().any(|h| Arc::ptr_eq(h, hook)) {
                    touched.push(hook.clone());
                }
            }
            matching.map(|l| l.callback.clone()).collect()
        };
        for cb in callbacks {
            // A panicking callback must not kill the dispatcher (or cross an FFI boundary).
            let _ = catch_unwind(AssertUnwindSafe(|| cb(&event)));
        }
        Some(event)
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
        self.listeners.lock().push(Listener {
            id,
            filter,
            callback,
            run_end,
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
        let removed: Vec<Listener> = {
            let mut ls = self.listeners.lock();
            let (gone, keep) = std::mem::take(&mut *ls)
                .into_iter()
                .partition(|l| l.id == id.0);
            *ls = keep;
            gone
        };
        drop(removed); // outside the lock: a closure may own the last client handle
    }

    /// Removes every listener of a channel.
    pub(crate) fn remove_channel_listeners(&self, channel: ChannelId) {
        let removed: Vec<Listener> = {
            let mut ls = self.listeners.lock();
            let (gone, keep) = std::mem::take(&mut *ls).into_iter().partition(|l| {
                matches!(l.filter,
                    Filter::Channel(c) | Filter::Presence(c) | Filter::System(c)
                    | Filter::Broadcast { channel: c, .. } | Filter::Postgres { channel: c, .. }
                    if c == channel)
            });
            *ls = keep;
            gone
        };
        drop(removed);
    }

    /// Stops delivery: queued events are discarded except `last`, which is still delivered.
    pub(crate) fn close(&self, last: Option<Event>) {
        let discarded: VecDeque<Item> = {
            let mut q = self.queue.lock();
            if q.closed {
                return;
            }
            let items = std::mem::take(&mut q.items);
            q.data_len = 0;
            if let Some(e) = last {
                q.items.push_back(Item::Event(None, e));
            }
            q.closed = true;
            items
        };
        drop(discarded);
        self.ready.notify_all();
        let hook = self.wakeup.lock().clone();
        if let Some(hook) = hook {
            let _ = catch_unwind(AssertUnwindSafe(|| hook()));
        }
    }

    /// Drops all listeners (and what their closures own) outside any lock.
    pub(crate) fn drop_listeners(&self) {
        let all = std::mem::take(&mut *self.listeners.lock());
        let touched = std::mem::take(&mut *self.touched.lock());
        *self.wakeup.lock() = None;
        drop((all, touched));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: u64) -> Event {
        Event::System {
            topic: "t".into(),
            payload: serde_json::json!(n),
        }
    }

    #[test]
    fn overflow_drops_data_and_reports_lag_in_place() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 2);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        d.add_listener(
            Filter::All,
            Arc::new(move |e: &Event| s.lock().push(e.clone())),
        );
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
            Arc::new(move |_e: &Event| s1.lock().0 += 1),
            Some(Arc::new(move || {
                let mut s = s2.lock();
                let n = std::mem::take(&mut s.0);
                s.1.push(n);
            })),
        );
        state
    }

    #[test]
    fn runs_end_when_the_queue_is_empty_and_after_max_run() {
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
        d.push_remove_channel(1); // the channel's listeners go, behind its last events
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
        d.close(None);
    }

    #[test]
    fn callbacks_may_reenter() {
        let d = Dispatcher::start(DispatchMode::AppPumped, 10);
        let d2 = d.clone();
        d.add_listener(
            Filter::All,
            Arc::new(move |_e: &Event| {
                // Re-entering: registering and queueing from inside a callback must not deadlock.
                d2.add_listener(Filter::All, Arc::new(|_e: &Event| {}));
                assert!(on_dispatcher_thread());
            }),
        );
        d.push(None, data(1));
        assert_eq!(d.dispatch(10), 1);
        assert!(!on_dispatcher_thread());
    }
}
