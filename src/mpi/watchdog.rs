//! A watchdog for the MPI calls that block the MPI thread (`MPI_Comm_spawn`, `MPI_Comm_disconnect`): MPI offers
//! no timeout for them, and Open MPI 4 can hang in them. If one has not returned in time, every pool of the
//! program is broken with an error saying so: queued tasks and later submits fail, `shutdown(true)` returns,
//! and no new pool can be built while the call has not returned (the MPI thread is stuck, so nothing would run).
//! Tasks already on a rank stay pending: only the stuck thread could hear of them.

use std::time::{Duration, Instant};

use crate::Error;
use crate::sync::{Arc, Condvar, Mutex, thread};

use super::shared::Shared;

pub(crate) struct Watchdog {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// The blocking call in progress: its deadline and what it is.
    call: Option<(Instant, String)>,
    /// The pools opened and not yet finished (finished ones are pruned as new ones come).
    pools: Vec<Arc<Shared>>,
    broken: Option<Error>,
}

impl Watchdog {
    /// A watchdog with its thread running.
    pub(crate) fn start() -> Result<Arc<Watchdog>, Error> {
        let watchdog = Arc::new(Watchdog {
            state: Mutex::new(State {
                call: None,
                pools: Vec::new(),
                broken: None,
            }),
            changed: Condvar::new(),
        });
        let watching = watchdog.clone();
        thread::spawn_named("mpi-pool-watchdog".into(), move || watching.run()).map_err(
            |error| Error::Broken {
                reason: format!("could not start the MPI watchdog thread: {error}"),
            },
        )?;
        Ok(watchdog)
    }

    /// Watches `pool` too.
    pub(crate) fn watch(&self, pool: &Arc<Shared>) {
        let mut state = self.state.lock();
        state.pools.retain(|pool| !pool.state.lock().finished);
        state.pools.push(pool.clone());
    }

    /// Why the MPI thread is considered stuck, if it is.
    pub(crate) fn broken(&self) -> Option<Error> {
        self.state.lock().broken.clone()
    }

    /// A blocking MPI call (`what`) starts; it must return within `limit`.
    pub(crate) fn enter(&self, what: String, limit: Duration) {
        self.state.lock().call = Some((Instant::now() + limit, what));
        self.changed.notify_all();
    }

    /// The blocking call returned. If it was declared stuck, MPI works again: later pools may be built (the
    /// pools it broke stay broken).
    pub(crate) fn leave(&self) {
        let mut state = self.state.lock();
        state.call = None;
        if let Some(error) = state.broken.take() {
            log::warn!(target: "concurrent_futures", "the MPI call was late, not stuck: new pools can be built again (after: {error})");
        }
        self.changed.notify_all();
    }

    fn run(self: Arc<Self>) {
        let mut state = self.state.lock();
        loop {
            match &state.call {
                None => self.changed.wait(&mut state),
                Some((deadline, what)) => {
                    let deadline = *deadline;
                    if Instant::now() < deadline {
                        self.changed.wait_until(&mut state, deadline);
                        continue;
                    }
                    let error = Error::Broken {
                        reason: format!(
                            "{what} did not return in time: the MPI library is stuck, and this program's MPI pools \
                             can run nothing more"
                        ),
                    };
                    log::error!(target: "concurrent_futures", "{error}");
                    state.broken = Some(error.clone());
                    // Fired once per call: `leave` clears it when (if) the call returns.
                    state.call = None;
                    let pools = std::mem::take(&mut state.pools);
                    drop(state);
                    for pool in pools {
                        pool.break_with(error.clone());
                        pool.set_finished();
                    }
                    state = self.state.lock();
                }
            }
        }
    }
}
