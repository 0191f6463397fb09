//! The loop each worker thread of a [`ThreadPoolExecutor`](crate::ThreadPoolExecutor) runs.

use std::cell::{Cell, RefCell};

use super::local_queue::{Closed, Entry, LocalQueue};
use super::{Job, Retire, Shared};
use crate::future::RunHooks;
use crate::future::local::{self, LocalExecutor};
use crate::sync::{Arc, Ordering, Pop, mutant, thread, thread_local};
use crate::unwind;

/// What the pool knows of one of its worker threads while it runs: the executor hook through which a wait on
/// this thread runs the pool's queued work. Aligned to its own cache lines: only its thread uses it, on every
/// submit, and no other thread's writes should slow that.
#[repr(align(128))]
pub(super) struct Worker {
    shared: Arc<Shared>,
    /// Where this worker starts looking when it steals (its number, so thieves spread over the queues).
    steal_from: usize,
}

thread_local! {
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static WORKER: RefCell<Option<Arc<Worker>>> = RefCell::new(None);
    /// This worker's own queue (see `local_queue.rs`), made and listed at its first push: a worker that never
    /// submits from inside the pool has none, and costs thieves nothing.
    #[allow(clippy::missing_const_for_thread_local)]
    static OWN: RefCell<Option<Arc<LocalQueue>>> = RefCell::new(None);
    /// Tasks this worker pushed to its own queue and has not taken back itself: an upper bound on what the queue
    /// holds (thieves only take away), so at 0 the queue is empty and the owner need not lock it to know.
    #[allow(clippy::missing_const_for_thread_local)]
    static OWN_QUEUED: Cell<usize> = Cell::new(0);
}

/// What [`push_local`] did with a task.
pub(super) enum LocalPush {
    /// It is in the calling worker's own queue.
    Pushed,
    /// The calling thread is a worker of this pool, which is shut down.
    Refused,
    /// The calling thread is no worker of this pool: the task goes to the shared queue.
    NotAWorker(Job),
}

/// A task submitted from one of the pool's own threads goes to that thread's queue.
pub(super) fn push_local(shared: &Arc<Shared>, job: Job) -> LocalPush {
    WORKER
        .try_with(|worker| match &*worker.borrow() {
            Some(worker) if Arc::ptr_eq(&worker.shared, shared) => OWN.with(|own| {
                if own.borrow().is_none() {
                    *own.borrow_mut() = Some(shared.locals.register());
                }
                let own = own.borrow();
                let queue = own.as_ref().expect("made above");
                let counted = shared.counts_local_pushes();
                match queue.push(job, counted) {
                    Ok(()) => {
                        OWN_QUEUED.with(|n| n.set(n.get() + 1));
                        // The pool's first fan-out task is counted, whatever the thread count: its read-modify-
                        // write of the demand orders it against idle threads that skipped stealing (see
                        // `Locals::mark_used`). (Mutant: it is not, like the pushes after it.)
                        let first = shared.locals.mark_used() && !mutant("uncounted_first_push");
                        let counted = if first && !counted {
                            queue.count_all() > 0
                        } else {
                            counted
                        };
                        shared.after_local_push(queue, counted);
                        LocalPush::Pushed
                    }
                    Err(Closed(job)) => {
                        unwind::drop_quietly("a refused task", job);
                        LocalPush::Refused
                    }
                }
            }),
            _ => LocalPush::NotAWorker(job),
        })
        .unwrap_or_else(|_| unreachable!("a submit runs while its thread's locals are alive"))
}

/// Whether the calling thread is one of `shared`'s workers.
pub(super) fn is_worker_of(shared: &Shared) -> bool {
    WORKER
        .try_with(|worker| {
            worker
                .borrow()
                .as_ref()
                .is_some_and(|w| std::ptr::eq(Arc::as_ptr(&w.shared), shared))
        })
        .unwrap_or(false)
}

impl Worker {
    /// The next task for this worker when it is free: its own newest, else the shared queue's oldest (Python's
    /// order for tasks from outside), else one stolen from another worker.
    fn find_job(&self) -> Option<Entry> {
        self.pop_own()
            .or_else(|| {
                let job = self.shared.queue.try_pop()?;
                Some(Entry { job, counted: true })
            })
            .or_else(|| self.steal())
    }

    /// This worker's newest task, without locking its queue when it knows the queue is empty.
    fn pop_own(&self) -> Option<Entry> {
        let own = OWN_QUEUED.with(Cell::get);
        if own == 0 {
            return None;
        }
        let entry = OWN.with(|own| own.borrow().as_ref().and_then(|q| q.pop()));
        // None: thieves (or a shutdown's cancel) took the rest.
        OWN_QUEUED.with(|c| c.set(if entry.is_some() { own - 1 } else { 0 }));
        entry
    }

    /// The oldest task of another worker's queue, if any worker ever pushed one.
    fn steal(&self) -> Option<Entry> {
        if !self.shared.locals.used() {
            return None;
        }
        OWN.with(|own| {
            self.shared
                .locals
                .steal(own.borrow().as_ref(), self.steal_from)
        })
    }

    /// Whether this worker's own queue is empty (only it pushes there, so this stays true until it pushes).
    fn own_queue_is_empty() -> bool {
        OWN_QUEUED.with(Cell::get) == 0
    }

    /// Takes this worker's queue off the pool's list (it is leaving, its queue drained).
    fn drop_own_queue(&self) {
        if let Some(queue) = OWN.with(|own| own.borrow_mut().take()) {
            self.shared.locals.unregister(&queue);
        }
        OWN_QUEUED.with(|n| n.set(0));
    }
}

impl LocalExecutor for Worker {
    fn owns(&self, owner: usize) -> bool {
        owner != 0 && owner == self.shared.identity
    }

    fn help(&self) -> bool {
        // (Mutant: a waiting worker runs nothing, neither the task it waits for nor others.)
        if !self.shared.work_while_waiting || mutant("no_claim") {
            return false;
        }
        // Only tasks submitted from inside the pool (workers' own queues), never the shared queue: those are the
        // fan-out's subtasks, not the unrelated work of outside producers.
        let Some(entry) = self.pop_own().or_else(|| self.steal()) else {
            return false;
        };
        if entry.counted {
            // A busy thread took a task off the backlog.
            self.shared.add_demand(-1);
        }
        unwind::quietly("a task's cleanup", || entry.job.run(&Busy));
        true
    }
}

/// Hooks for a task a busy worker runs while it waits: the thread stays busy throughout.
struct Busy;

impl RunHooks for Busy {
    fn body_done(&self) {}
    fn callbacks_ahead(&self) {}
}

/// This worker's side of the pool's demand count (see `Shared::add_demand`): whether it is counted idle.
struct Idle<'a> {
    shared: &'a Arc<Shared>,
    idle: Cell<bool>,
}

impl Idle<'_> {
    /// Counts this thread idle (if it is not already).
    fn enter(&self) {
        if !self.idle.replace(true) {
            self.shared.add_demand(-1);
        }
    }

    /// This thread took a job off a queue: one job and one idle thread fewer, so the demand does not change; or,
    /// for a job the demand did not count (see `Shared::counts_local_pushes`), one idle thread fewer.
    fn took_job(&self, counted: bool) {
        debug_assert!(
            self.idle.get(),
            "a worker takes jobs only while counted idle"
        );
        self.idle.set(false);
        if !counted {
            // Leaving the idle count without a counted job may leave one with no idle thread to take it.
            self.shared.leave_idle();
        }
        if mutant("split_counts") {
            // (Mutant: takes the job off the backlog and this thread off the idle count in two steps, as two
            // separate counters would: a submit in between counts this thread idle and starts no thread for its
            // job, though this thread is about to run another.)
            self.shared.add_demand(-1);
            self.shared.add_demand(1);
        }
    }

    /// Leaves the idle count for good: this thread exits.
    fn exit(&self) {
        if self.idle.replace(false) {
            self.shared.add_demand(1);
        }
    }

    /// Leaves the idle state without a job; starts a thread if that leaves a job with none to take it.
    fn leave(&self) {
        if self.idle.replace(false) {
            self.shared.leave_idle();
        }
    }
}

impl RunHooks for Idle<'_> {
    fn body_done(&self) {
        // Idle before the outcome is published, so a caller that saw it and submits again finds this thread idle.
        self.enter();
    }

    fn callbacks_ahead(&self) {
        // (Mutant: stays counted idle while done-callbacks run, so a callback that submits a task and blocks on
        // it can wait forever for a thread that is never started.)
        if !mutant("idle_callbacks") {
            self.leave();
        }
    }
}

/// Runs the initializer, then jobs until the queue is closed and drained.
pub(super) fn run(shared: Arc<Shared>, number: usize) {
    // Counted idle from birth by `Shared::start_worker`.
    let idle = Idle {
        shared: &shared,
        idle: Cell::new(true),
    };
    if let Some(initializer) = &shared.initializer {
        let failure = match unwind::run_task(initializer) {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(panic) => Some(panic.to_string()),
        };
        if let Some(failure) = failure {
            log::error!(target: "concurrent_futures", "a thread pool initializer failed: {failure}");
            shared.break_pool(format!(
                "a thread initializer failed, the thread pool is not usable anymore: {failure}"
            ));
            idle.exit();
            shared.worker_exited();
            return;
        }
    }
    let worker = Arc::new(Worker {
        shared: shared.clone(),
        steal_from: number,
    });
    OWN_QUEUED.with(|own| own.set(0));
    let executor: Arc<dyn LocalExecutor> = worker.clone();
    let entered = local::enter(executor);
    WORKER.with(|current| *current.borrow_mut() = Some(worker.clone()));
    let leave = |retired: bool| {
        WORKER.with(|current| current.borrow_mut().take());
        worker.drop_own_queue();
        if !retired {
            shared.worker_exited();
        }
    };
    // Tasks run since this thread last added to `shared.completed` (flushed before it blocks, and every 64).
    let mut completed = 0;
    let flush = |completed: &mut usize| {
        if *completed > 0 {
            // ORDERING: Relaxed: a statistic; nothing is published through it.
            shared
                .completed
                .fetch_add(std::mem::take(completed), Ordering::Relaxed);
        }
    };
    loop {
        let entry = match worker.find_job() {
            Some(entry) => entry,
            None => {
                flush(&mut completed);
                match shared.queue.pop_until(shared.idle_deadline()) {
                    Pop::Item(job) => Entry { job, counted: true },
                    // Closed and drained; a task still in another worker's queue is left to its owner, which
                    // drains its own queue before it leaves. Look once more, for one pushed before the close.
                    Pop::Closed => match worker.find_job() {
                        Some(entry) => entry,
                        None => break,
                    },
                    wake @ (Pop::TimedOut | Pop::Nudged) => {
                        // A nudge may be for a task pushed to a worker's own queue: look before retiring.
                        if let Some(entry) = worker.find_job() {
                            entry
                        } else {
                            match shared.try_retire(matches!(wake, Pop::TimedOut)) {
                                Retire::Retired => {
                                    idle.idle.set(false);
                                    leave(true);
                                    drop(entered);
                                    return;
                                }
                                // A job is on its way (its submitter counted it and is about to push it), or
                                // another thread takes it: let them run before looking again.
                                Retire::Stayed => thread::yield_now(),
                                Retire::NotNeeded => {}
                            }
                            continue;
                        }
                    }
                }
            }
        };
        idle.took_job(entry.counted);
        let job = entry.job;
        // Everything a job does on this thread, down to dropping its result, runs inside the panic net: a panic
        // that escapes the task's own net (a result's `Drop`, say) is logged, and this thread goes on.
        if unwind::quietly("a task's cleanup", || job.run(&idle)).unwrap_or(true) {
            completed += 1;
            if completed == 64 {
                flush(&mut completed);
            }
        }
        idle.enter();
        if shared.over_max() {
            // `set_max_workers` lowered the maximum: the surplus threads leave as they finish a task (with their
            // own queue empty: it holds tasks only this thread would otherwise run).
            flush(&mut completed);
            if Worker::own_queue_is_empty() && shared.try_retire(false) == Retire::Retired {
                idle.idle.set(false);
                leave(true);
                drop(entered);
                return;
            }
        }
    }
    idle.exit();
    flush(&mut completed);
    leave(false);
    drop(entered);
}
