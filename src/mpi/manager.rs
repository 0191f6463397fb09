//! The MPI thread: the one thread of the program that calls MPI. It spawns or claims each pool's worker ranks,
//! checks their hellos, sends them tasks as ranks free up, completes futures from their reports, and ends each
//! pool's session; at process exit it tells every rank to leave and finalises MPI.
//!
//! Pools reach it through a command queue; it waits on that queue with a backoff capped at 1 ms while messages
//! may arrive (MPI has no way to wake a thread blocked on a queue), and without a deadline when nothing is in
//! flight, so an idle program costs no CPU.

use std::time::{Duration, Instant};

use crate::Error;
use crate::sync::{Arc, AtomicBool, Ordering, Pop, Queue};

use super::comm::{self, Comm};
use super::launch::Latch;
use super::run::{InFlight, Phase, Run, new_slot, settle, verify_hello};
use super::shared::{Mode, Shared, WorkerRank};
use super::watchdog::Watchdog;
use super::wire::{Backoff, Build, Hello, InitFailure, Order, Report, decode, encode};

/// What pools (and the exit hook) ask of the MPI thread.
pub(crate) enum Command {
    /// Start serving a new pool.
    Open(Arc<Shared>),
    /// A pool has queued work or closed.
    Wake,
    /// The program is exiting: end everything, finalise MPI, then set the latch.
    Finalize(Arc<Latch>),
}

/// The MPI thread's view of the program's worker ranks in shared mode (`mpirun -n N`): ranks 1..N-1 of a private
/// copy of `MPI_COMM_WORLD`.
struct SharedRanks {
    comm: Comm,
    /// Each rank's hello, once it arrived (index: rank - 1).
    hellos: Vec<Option<Hello>>,
    /// A pool is using them.
    busy: bool,
}

/// The most groups of spare spawned ranks kept at once.
const MAX_SPARES: usize = 4;

/// Spawned worker ranks whose pool is done: they wait, connected, for the next pool of the same size and spawn
/// settings (spawning again and again is slow, and Open MPI 4's singleton can hang in a long series of spawns).
struct Spare {
    comm: Comm,
    hellos: Vec<Hello>,
    info: Vec<(String, String)>,
}

pub(crate) struct Manager {
    commands: Arc<Queue<Command>>,
    wake: Arc<AtomicBool>,
    build: Build,
    shared: Option<SharedRanks>,
    runs: Vec<Run>,
    spares: Vec<Spare>,
    /// Set by the pool that claims the shared ranks; cleared here when it is done with them.
    shared_claimed: Arc<AtomicBool>,
    watchdog: Arc<Watchdog>,
    /// Whether this thread initialised MPI (and so finalises it).
    owns_mpi: bool,
}

impl Manager {
    pub(crate) fn new(
        commands: Arc<Queue<Command>>,
        wake: Arc<AtomicBool>,
        shared_claimed: Arc<AtomicBool>,
        watchdog: Arc<Watchdog>,
        build: Build,
        shared_comm: Option<(Comm, usize)>,
        owns_mpi: bool,
    ) -> Self {
        Manager {
            commands,
            wake,
            build,
            shared: shared_comm.map(|(comm, workers)| SharedRanks {
                comm,
                hellos: (0..workers).map(|_| None).collect(),
                busy: false,
            }),
            runs: Vec::new(),
            spares: Vec::new(),
            shared_claimed,
            watchdog,
            owns_mpi,
        }
    }

    /// The MPI thread's loop; returns once MPI is finalised.
    pub(crate) fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            let mut active = false;
            while let Some(command) = self.commands.try_pop() {
                active = true;
                if let Some(latch) = self.command(command) {
                    self.finalize();
                    latch.set();
                    return;
                }
            }
            // ORDERING: SeqCst; cleared before the queues are read: a submitter that queues a job after that read
            // sets it again (its swap follows its queue push, and the pool's lock orders the two reads), and
            // pushes a new `Wake`.
            self.wake.store(false, Ordering::SeqCst);
            let mut runs = std::mem::take(&mut self.runs);
            for run in &mut runs {
                active |= self.step(run);
            }
            runs.retain(|run| run.phase != Phase::Done);
            self.runs = runs;
            active |= self.idle_hellos();
            if active {
                backoff.reset();
                continue;
            }
            let deadline = if self.expecting() {
                match backoff.next() {
                    Duration::ZERO => {
                        std::thread::yield_now();
                        continue;
                    }
                    wait => Some(Instant::now() + wait),
                }
            } else {
                // Nothing can arrive: sleep until a pool sends a command. (A startup deadline matters only while
                // hellos are awaited, and then `expecting` holds.)
                None
            };
            match self.commands.pop_until(deadline) {
                Pop::Item(command) => {
                    backoff.reset();
                    if let Some(latch) = self.command(command) {
                        self.finalize();
                        latch.set();
                        return;
                    }
                }
                Pop::TimedOut | Pop::Nudged => {}
                Pop::Closed => return,
            }
        }
    }

    /// Handles a command; a `Finalize` is handed back.
    fn command(&mut self, command: Command) -> Option<Arc<Latch>> {
        match command {
            Command::Open(pool) => self.open(pool),
            Command::Wake => {}
            Command::Finalize(latch) => return Some(latch),
        }
        None
    }

    /// Whether a message may arrive: the loop must keep probing.
    fn expecting(&self) -> bool {
        let shared_waiting = self
            .shared
            .as_ref()
            .is_some_and(|s| !s.busy && s.hellos.iter().any(Option::is_none));
        shared_waiting
            || self.runs.iter().any(|run| {
                !run.sends.is_empty()
                    || matches!(run.phase, Phase::Hello | Phase::Starting | Phase::Ending)
                    || run.slots.iter().any(|slot| !slot.in_flight.is_empty())
            })
    }

    /// Starts a pool: spawns its workers, or claims the shared ranks.
    fn open(&mut self, pool: Arc<Shared>) {
        let deadline = Instant::now() + pool.config.startup_timeout;
        let mut run = Run {
            pool,
            comm: None,
            spawned: false,
            phase: Phase::Hello,
            slots: Vec::new(),
            sends: Vec::new(),
            deadline,
            reusable: true,
        };
        match run.pool.config.mode {
            Mode::Spawn(n) => {
                let info = &run.pool.config.spawn_info;
                if let Some(at) = self
                    .spares
                    .iter()
                    .position(|spare| spare.hellos.len() == n && spare.info == *info)
                {
                    let spare = self.spares.swap_remove(at);
                    run.comm = Some(spare.comm);
                    run.spawned = true;
                    run.slots = (0..n as i32).map(new_slot).collect();
                    for (slot, hello) in run.slots.iter_mut().zip(spare.hellos) {
                        slot.hello = Some(hello);
                    }
                    self.runs.push(run);
                    return;
                }
                // Spare ranks of other sizes stay for a pool of their size: a spawn after a disconnect is what
                // hangs Open MPI 4's singleton (seen under load). Only past a few groups does the oldest leave.
                if self.spares.len() >= MAX_SPARES {
                    let oldest = self.spares.remove(0);
                    self.retire(vec![oldest]);
                }
                let exe = match std::env::current_exe() {
                    Ok(exe) => exe,
                    Err(error) => {
                        return self.fail_open(
                            run,
                            format!("cannot find the current executable: {error}"),
                        );
                    }
                };
                self.watchdog.enter(
                    format!("MPI_Comm_spawn of {n} worker rank(s)"),
                    run.pool.config.startup_timeout,
                );
                let spawned = comm::spawn(&exe, &[super::launch::MARKER], n, info);
                self.watchdog.leave();
                match spawned {
                    Ok(inter) => {
                        // The startup timeout counts from here: the spawn itself waited for MPI_Init.
                        run.deadline = Instant::now() + run.pool.config.startup_timeout;
                        run.comm = Some(inter);
                        run.spawned = true;
                        run.slots = (0..n as i32).map(new_slot).collect();
                    }
                    Err(error) => {
                        return self.fail_open(
                            run,
                            format!(
                                "could not start {n} MPI worker rank(s) of {}: {error}",
                                exe.display()
                            ),
                        );
                    }
                }
            }
            Mode::Shared(n) => {
                let Some(shared) = self.shared.as_mut() else {
                    return self.fail_open(
                        run,
                        "this program was not started by mpirun with worker ranks".into(),
                    );
                };
                shared.busy = true;
                run.comm = Some(shared.comm);
                run.slots = (1..=n as i32).map(new_slot).collect();
                for slot in &mut run.slots {
                    slot.hello = shared.hellos[(slot.dest - 1) as usize].clone();
                }
            }
        }
        self.runs.push(run);
    }

    fn fail_open(&mut self, run: Run, reason: String) {
        if matches!(run.pool.config.mode, Mode::Shared(_)) {
            self.release_shared();
        }
        run.pool.break_with(Error::Broken { reason });
        run.pool.set_finished();
    }

    /// With no pool on the shared ranks, collects their hellos as they arrive.
    fn idle_hellos(&mut self) -> bool {
        let Some(shared) = self.shared.as_mut() else {
            return false;
        };
        if shared.busy {
            return false;
        }
        let mut active = false;
        while let Ok(Some((source, bytes))) = comm::try_receive(shared.comm) {
            active = true;
            match decode::<Report>(&bytes) {
                Ok((Report::Hello(hello), _)) if source >= 1 => {
                    if let Some(entry) = shared.hellos.get_mut((source - 1) as usize) {
                        *entry = Some(hello);
                    }
                }
                _ => {
                    log::warn!(target: "concurrent_futures", "MPI rank {source} sent a message no pool expected")
                }
            }
        }
        active
    }

    /// Advances one pool; whether anything happened.
    fn step(&mut self, run: &mut Run) -> bool {
        let Some(comm) = run.comm else {
            run.phase = Phase::Done;
            return true;
        };
        let mut active = false;
        loop {
            match comm::try_receive(comm) {
                Ok(Some((source, bytes))) => {
                    active = true;
                    self.on_message(run, source, &bytes);
                }
                Ok(None) => break,
                Err(error) => {
                    self.abandon(run, format!("receiving from the worker ranks: {error}"));
                    break;
                }
            }
        }
        let mut failed = None;
        run.sends.retain_mut(|sending| match sending.test() {
            Ok(done) => !done,
            Err(error) => {
                failed = Some(error);
                false
            }
        });
        if let Some(error) = failed {
            self.abandon(run, format!("sending to the worker ranks: {error}"));
        }
        match run.phase {
            Phase::Hello => {
                if run.slots.iter().all(|slot| slot.hello.is_some()) {
                    self.check_hellos(run);
                    active = true;
                } else if Instant::now() >= run.deadline {
                    run.reusable = false;
                    let limit = run.pool.config.startup_timeout;
                    run.pool.break_with(Error::Broken {
                        reason: format!(
                            "the MPI worker ranks did not start serving within {limit:?}; \
                             `concurrent_futures::process_main!` must run at the top of `main`"
                        ),
                    });
                    self.end(run);
                    active = true;
                }
            }
            Phase::Running => active |= self.dispatch(run),
            Phase::Ending => {
                let ended = if run.spawned && !run.reusable {
                    run.sends.is_empty()
                } else {
                    run.slots.iter().all(|slot| !slot.started || slot.ended)
                };
                if ended {
                    self.finish(run);
                    active = true;
                }
            }
            Phase::Starting | Phase::Done => {}
        }
        active
    }

    /// Checks every rank's hello; on success tells them to start the session.
    fn check_hellos(&mut self, run: &mut Run) {
        let mut problem = None;
        let mut workers = Vec::new();
        for slot in &run.slots {
            let hello = slot.hello.as_ref().expect("checked by the caller");
            workers.push(WorkerRank {
                rank: hello.rank,
                host: hello.host.clone(),
                pid: hello.pid,
            });
            if problem.is_some() {
                continue;
            }
            problem = verify_hello(hello, &self.build, &slot.place()).err();
        }
        run.pool.state.lock().workers = workers;
        if let Some(error) = problem {
            run.reusable = false;
            run.pool.break_with(error);
            self.end(run);
            return;
        }
        let start = encode(&Order::Start(run.pool.config.session.clone()));
        for i in 0..run.slots.len() {
            run.slots[i].started = true;
            let dest = run.slots[i].dest;
            self.send(run, dest, start.clone());
        }
        run.phase = Phase::Starting;
    }

    fn send(&mut self, run: &mut Run, dest: i32, bytes: Vec<u8>) -> bool {
        let Some(comm) = run.comm else { return false };
        match comm::isend(comm, dest, bytes) {
            Ok(sending) => {
                run.sends.push(sending);
                true
            }
            Err(error) => {
                self.abandon(run, format!("sending to MPI rank {dest}: {error}"));
                false
            }
        }
    }

    /// Handles one message from a rank of `run`.
    fn on_message(&mut self, run: &mut Run, source: i32, bytes: &[u8]) {
        let Some(index) = run.slots.iter().position(|slot| slot.dest == source) else {
            log::warn!(target: "concurrent_futures", "MPI rank {source} is not a worker of this pool");
            return;
        };
        let (report, payload) = match decode::<Report>(bytes) {
            Ok(decoded) => decoded,
            Err(error) => {
                let place = run.slots[index].place();
                run.pool
                    .break_with(Error::Protocol(format!("the worker {place} sent {error}")));
                if run.phase != Phase::Ending {
                    self.end(run);
                }
                return;
            }
        };
        match report {
            Report::Hello(hello) => {
                if let (false, Some(shared)) = (run.spawned, self.shared.as_mut()) {
                    // Kept for the next pool on these ranks too.
                    shared.hellos[(source - 1) as usize] = Some(hello.clone());
                }
                run.slots[index].hello = Some(hello);
            }
            Report::Ready(outcome) => {
                let slot = &mut run.slots[index];
                slot.ready = true;
                if run.phase != Phase::Starting {
                    return;
                }
                if let Err(failure) = outcome {
                    let reason = match failure {
                        InitFailure::Failed(reason) => reason,
                        InitFailure::Returned(bytes) => match &run.pool.config.init_check {
                            Some(check) => {
                                check(&bytes).err().unwrap_or_else(|| "it failed".into())
                            }
                            None => "it failed".into(),
                        },
                    };
                    let place = slot.place();
                    run.pool.break_with(Error::Broken {
                        reason: format!("the initializer failed {place}: {reason}"),
                    });
                    self.end(run);
                } else if run.slots.iter().all(|slot| slot.ready) {
                    run.phase = Phase::Running;
                }
            }
            Report::Done { id, outcome } => {
                let slot = &mut run.slots[index];
                let Some(task) = slot.in_flight.remove(&id) else {
                    log::warn!(target: "concurrent_futures", "MPI rank {source} answered task {id}, which it was not running");
                    return;
                };
                let place = slot.place();
                // The rank gets its next task before this one's future completes (and its callbacks run).
                if run.phase == Phase::Running {
                    let _ = self.fill(run, index);
                }
                settle(&run.pool, task, outcome, payload, &place);
            }
            Report::Ended => run.slots[index].ended = true,
        }
    }

    /// Sends queued tasks to ranks with a free slot; whether any was sent. Ends the session once the pool is
    /// closed and drained.
    fn dispatch(&mut self, run: &mut Run) -> bool {
        let mut sent = false;
        for i in 0..run.slots.len() {
            match self.fill(run, i) {
                Some(any) => sent |= any,
                None => return true,
            }
        }
        let drained = {
            let state = run.pool.state.lock();
            state.closed && state.queue.is_empty()
        };
        if drained && run.slots.iter().all(|slot| slot.in_flight.is_empty()) {
            self.end(run);
            return true;
        }
        sent
    }

    /// Sends queued tasks to rank `i` until its slots are full; whether any was sent (`None`: sending failed and
    /// the pool was abandoned).
    fn fill(&mut self, run: &mut Run, i: usize) -> Option<bool> {
        let session = &run.pool.config.session;
        let capacity = (session.slots + session.ahead) as usize;
        let mut sent = false;
        while run.slots[i].in_flight.len() < capacity {
            let job = {
                let mut state = run.pool.state.lock();
                state.queue.pop_front()
            };
            let Some(job) = job else { break };
            // Cancelled while queued: skip it (a task stays cancellable until it is sent).
            if !job.pending.start() {
                continue;
            }
            let dest = run.slots[i].dest;
            run.slots[i].in_flight.insert(
                job.id,
                InFlight {
                    name: job.name,
                    pending: job.pending,
                },
            );
            sent = true;
            if !self.send(run, dest, job.message) {
                return None;
            }
        }
        Some(sent)
    }

    /// Ends the session on every rank: ranks that may serve again end the session, spawned ranks that failed
    /// their checks are told to exit.
    fn end(&mut self, run: &mut Run) {
        run.phase = Phase::Ending;
        let exit = run.spawned && !run.reusable;
        let order = encode(if exit { &Order::Exit } else { &Order::End });
        for i in 0..run.slots.len() {
            let slot = &run.slots[i];
            if exit || slot.started {
                let dest = slot.dest;
                if !self.send(run, dest, order.clone()) {
                    return;
                }
            }
        }
    }

    /// The pool is done with its ranks: disconnects spawned ones, frees shared ones, wakes `shutdown(true)`.
    fn finish(&mut self, run: &mut Run) {
        // A rank that never said hello may never reach the disconnect either: then the intercommunicator is
        // left connected rather than blocking this thread.
        let all_alive = run.slots.iter().all(|slot| slot.hello.is_some());
        if run.spawned
            && let Some(inter) = run.comm.take()
        {
            if run.reusable {
                self.spares.push(Spare {
                    comm: inter,
                    hellos: run
                        .slots
                        .iter_mut()
                        .filter_map(|slot| slot.hello.take())
                        .collect(),
                    info: run.pool.config.spawn_info.clone(),
                });
            } else if all_alive && let Err(error) = self.disconnect(inter) {
                log::warn!(target: "concurrent_futures", "disconnecting the MPI worker ranks: {error}");
            }
        }
        if !run.spawned {
            self.release_shared();
        }
        run.phase = Phase::Done;
        run.pool.set_finished();
    }

    /// Tells the spare spawned ranks to exit and disconnects them.
    fn retire_spares(&mut self) {
        let spares = std::mem::take(&mut self.spares);
        self.retire(spares);
    }

    /// Tells `spares` to exit and disconnects them.
    fn retire(&mut self, spares: Vec<Spare>) {
        if spares.is_empty() {
            return;
        }
        let exit = encode(&Order::Exit);
        let mut sends = Vec::new();
        for spare in &spares {
            for dest in 0..spare.hellos.len() as i32 {
                if let Ok(sending) = comm::isend(spare.comm, dest, exit.clone()) {
                    sends.push(sending);
                }
            }
        }
        complete(sends, Duration::from_secs(10));
        for spare in spares {
            if let Err(error) = self.disconnect(spare.comm) {
                log::warn!(target: "concurrent_futures", "disconnecting spare MPI worker ranks: {error}");
            }
        }
    }

    /// `MPI_Comm_disconnect`, under the watchdog (it waits for the other side).
    fn disconnect(&self, comm: Comm) -> Result<(), comm::MpiError> {
        self.watchdog
            .enter("MPI_Comm_disconnect".into(), Duration::from_secs(60));
        let result = comm::disconnect(comm);
        self.watchdog.leave();
        result
    }

    /// Frees the shared ranks for the next pool.
    fn release_shared(&mut self) {
        if let Some(shared) = self.shared.as_mut() {
            shared.busy = false;
        }
        // ORDERING: Release: a pool that claims the ranks after this sees them free only after this pool's run
        // is over (its Acquire compare-exchange pairs with this store).
        self.shared_claimed.store(false, Ordering::Release);
    }

    /// MPI itself failed for this pool: fails everything it holds and forgets its ranks.
    fn abandon(&mut self, run: &mut Run, reason: String) {
        let error = Error::Broken { reason };
        run.pool.break_with(error.clone());
        for slot in &mut run.slots {
            for (_, task) in slot.in_flight.drain() {
                let callbacks = task.pending.fail(error.clone());
                run.pool.defer(callbacks);
            }
        }
        run.sends.clear();
        run.comm = None;
        if !run.spawned {
            self.release_shared();
        }
        run.phase = Phase::Done;
        run.pool.set_finished();
    }

    /// At process exit: fails what is left, tells every rank to leave, waits (briefly) for the messages to go,
    /// disconnects spawned ranks and finalises MPI.
    fn finalize(&mut self) {
        // No pool can be opened any more (`Service::open` fails), nor woken.
        self.commands.close();
        let exiting = Error::Broken {
            reason: "the program is exiting".into(),
        };
        let exit = encode(&Order::Exit);
        let mut sends = Vec::new();
        let mut spawned = Vec::new();
        for run in &mut self.runs {
            run.pool.break_with(exiting.clone());
            for slot in &mut run.slots {
                for (_, task) in slot.in_flight.drain() {
                    let callbacks = task.pending.fail(exiting.clone());
                    run.pool.defer(callbacks);
                }
            }
            if run.spawned
                && let Some(inter) = run.comm.take()
            {
                for slot in &run.slots {
                    if let Ok(sending) = comm::isend(inter, slot.dest, exit.clone()) {
                        sends.push(sending);
                    }
                }
                spawned.push(inter);
            }
            sends.append(&mut run.sends);
        }
        if let Some(shared) = &self.shared {
            for dest in 1..=shared.hellos.len() as i32 {
                if let Ok(sending) = comm::isend(shared.comm, dest, exit.clone()) {
                    sends.push(sending);
                }
            }
        }
        let sent = complete(sends, Duration::from_secs(10));
        self.retire_spares();
        for inter in spawned {
            let _ = self.disconnect(inter);
        }
        for run in &self.runs {
            run.pool.set_finished();
        }
        self.runs.clear();
        if self.owns_mpi
            && sent
            && let Err(error) = comm::finalize()
        {
            log::warn!(target: "concurrent_futures", "{error}");
        }
    }
}

/// Waits (polling) until every send completed, at most `limit`; whether they all did.
fn complete(mut sends: Vec<comm::Sending>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    while !sends.is_empty() && Instant::now() < deadline {
        sends.retain_mut(|sending| matches!(sending.test(), Ok(false)));
        backoff.pause();
    }
    sends.is_empty()
}
