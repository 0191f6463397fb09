//! Each worker's own queue of the tasks it submitted (LIFO for itself, FIFO for thieves), and the pool's list of them.
//!
//! A task submitted from inside one of the pool's own tasks (a fan-out) goes to the submitting worker's queue, not
//! to the shared one: the worker takes its newest task first (the one it is most likely about to wait for, still
//! warm in its cache), and other workers steal the oldest (the largest share of a recursive split). Tasks from
//! outside the pool keep the shared FIFO queue, in Python's order.
//!
//! Each queue is a `VecDeque` behind the pool's (loom-checkable) mutex: its owner is nearly its only user, so the
//! lock is uncontended, and the same code runs under loom as in production. Locks are taken in one order only:
//! the list, then a queue.
//!
//! Happens-before: a push (under the queue's lock) happens before the pop or steal that takes the task (under the
//! same lock). Closing marks every queue closed under its lock, so a push either lands before the close (and the
//! close's drain, or the owner, takes it) or sees the queue closed and is refused.

use std::collections::VecDeque;

use super::Job;
use crate::sync::{Arc, AtomicBool, Mutex, Ordering};

/// One worker's queue, aligned to its own cache lines: its owner locks it for every push and pop.
#[repr(align(128))]
pub(super) struct LocalQueue {
    state: Mutex<LocalState>,
}

/// A queued task, and whether it is counted in the pool's demand (see `Shared::after_local_push`).
pub(super) struct Entry {
    pub(super) job: Job,
    pub(super) counted: bool,
}

struct LocalState {
    jobs: VecDeque<Entry>,
    /// The pool is shut down: pushes are refused.
    closed: bool,
}

/// Why a push to a [`LocalQueue`] was refused: the pool no longer accepts tasks.
pub(super) struct Closed(pub(super) Job);

impl LocalQueue {
    /// The owner pushes a task it submitted.
    pub(super) fn push(&self, job: Job, counted: bool) -> Result<(), Closed> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(Closed(job));
        }
        state.jobs.push_back(Entry { job, counted });
        Ok(())
    }

    /// The owner takes its newest task.
    pub(super) fn pop(&self) -> Option<Entry> {
        self.state.lock().jobs.pop_back()
    }

    /// Another thread takes the oldest task.
    fn steal(&self) -> Option<Entry> {
        self.state.lock().jobs.pop_front()
    }

    /// Marks every task here counted; returns how many were not.
    pub(super) fn count_all(&self) -> usize {
        let mut state = self.state.lock();
        let mut newly = 0;
        for entry in state.jobs.iter_mut().filter(|e| !e.counted) {
            entry.counted = true;
            newly += 1;
        }
        newly
    }

    fn len(&self) -> usize {
        self.state.lock().jobs.len()
    }

    fn counted_len(&self) -> usize {
        self.state.lock().jobs.iter().filter(|e| e.counted).count()
    }

    /// Whether the queue holds no task.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The pool's list of its workers' queues.
#[derive(Default)]
pub(super) struct Locals {
    list: Mutex<LocalList>,
    /// Set by the pool's first push to a worker's own queue: until then thieves need not look (a pool whose tasks
    /// never submit tasks never locks the list to steal).
    used: AtomicBool,
}

#[derive(Default)]
struct LocalList {
    queues: Vec<Arc<LocalQueue>>,
    /// Set by [`Locals::close`]: a queue created later starts closed.
    closed: bool,
}

impl Locals {
    /// Whether any worker ever pushed a task to its own queue (see [`mark_used`](Self::mark_used)).
    pub(super) fn used(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `mark_used`.
        self.used.load(Ordering::Acquire)
    }

    /// Records that a worker pushed a task to its own queue; `true` for the pool's first such push.
    ///
    /// A thread that read `used` as false skipped stealing. The first push is therefore counted in the demand
    /// (its pusher's read-modify-write of the demand comes after this store): an idle thread counts itself idle
    /// with its own read-modify-write, so either it comes second and then reads `used` as true, or the pusher
    /// comes second, sees it idle, and nudges it. Later pushes need no such care: `used` stays true.
    pub(super) fn mark_used(&self) -> bool {
        // ORDERING: Relaxed load: a hint (true forever once set); Release store pairs with the Acquire in `used`.
        if self.used.load(Ordering::Relaxed) {
            return false;
        }
        !self.used.swap(true, Ordering::Release)
    }

    /// A new queue, listed, for a worker's first push (the list's lock orders it against thieves: one that locks
    /// the list after this sees the queue, one that locked it before counted itself idle before, which the
    /// pusher's later read of the demand sees).
    pub(super) fn register(&self) -> Arc<LocalQueue> {
        let mut list = self.list.lock();
        let queue = Arc::new(LocalQueue {
            state: Mutex::new(LocalState {
                jobs: VecDeque::new(),
                closed: list.closed,
            }),
        });
        list.queues.push(queue.clone());
        queue
    }

    /// Removes the queue of a worker that is leaving (its owner drained it first: only the owner pushes to it).
    pub(super) fn unregister(&self, queue: &Arc<LocalQueue>) {
        let mut list = self.list.lock();
        if let Some(position) = list.queues.iter().position(|q| Arc::ptr_eq(q, queue)) {
            list.queues.swap_remove(position);
        }
        debug_assert!(queue.is_empty(), "a worker leaves with its queue drained");
    }

    /// Takes the oldest task of another worker's queue, looking from `start` on (callers rotate it to spread
    /// thefts); `None` if every other queue is empty.
    pub(super) fn steal(&self, me: Option<&Arc<LocalQueue>>, start: usize) -> Option<Entry> {
        let list = self.list.lock();
        let n = list.queues.len();
        (0..n)
            .map(|i| &list.queues[(start + i) % n])
            .filter(|q| me.is_none_or(|me| !Arc::ptr_eq(q, me)))
            .find_map(|q| q.steal())
    }

    /// Refuses later pushes to every queue (now and to come); returns what they hold if `drain`.
    pub(super) fn close(&self, drain: bool) -> Vec<Entry> {
        let mut list = self.list.lock();
        list.closed = true;
        let mut drained = Vec::new();
        for queue in &list.queues {
            let mut state = queue.state.lock();
            state.closed = true;
            if drain {
                drained.extend(state.jobs.drain(..));
            }
        }
        drained
    }

    /// Marks every queued task counted in the demand; returns how many were not (the caller adds them).
    pub(super) fn count_all(&self) -> usize {
        self.list.lock().queues.iter().map(|q| q.count_all()).sum()
    }

    /// Tasks waiting in the workers' queues that the demand counts (a snapshot).
    pub(super) fn counted_len(&self) -> usize {
        self.list
            .lock()
            .queues
            .iter()
            .map(|q| q.counted_len())
            .sum()
    }

    /// Tasks waiting in the workers' queues (a snapshot).
    pub(super) fn len(&self) -> usize {
        self.list.lock().queues.iter().map(|q| q.len()).sum()
    }
}
