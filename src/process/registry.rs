//! The task registry: the functions a worker may run, by name, and the one line in `main` that installs it.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::Payload;
use super::codec::Codec;
use super::protocol::{FNV_START, FrameBuf, Identity, Status, fnv1a};
use super::worker;
use crate::Error;
use crate::sync::OnceLock;

/// Runs a registered function on an encoded argument (or chunk of arguments) and appends the encoded result to
/// the frame; on failure the frame is left as it was and the failure is returned.
type Invoke = Box<dyn Fn(&[u8], bool, &mut FrameBuf) -> Status + Send + Sync>;

/// One registered function.
pub(crate) struct Entry {
    pub(crate) type_id: TypeId,
    /// How the worker runs it.
    pub(crate) invoke: Invoke,
    /// How a pool encodes its argument and decodes its result.
    pub(crate) codec: Codec,
}

/// The functions a process pool's workers may run, registered by the program itself: a worker runs nothing else.
///
/// A function is known by `std::any::type_name` of its type, so it must be a function item or a closure that
/// captures nothing (a zero-sized type): a `fn` pointer or a capturing closure is refused. Two functions with the
/// same name (two closures in one function, say) are refused too.
///
/// The usual way to build one is the [`process_main!`](crate::process_main) macro, the one line `main` needs.
/// [`serve`](Self::serve) is what it calls:
///
/// ```
/// use concurrent_futures::Registry;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn shout(s: String) -> String {
///     s.to_uppercase()
/// }
///
/// let registry = Registry::new().register(square).register(shout);
/// assert_eq!(registry.len(), 2);
/// // In a worker process, `serve` runs tasks and never returns; in the program itself it installs the
/// // registry for the process pools it builds.
/// registry.serve()?;
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[must_use]
#[cfg_attr(docsrs, doc(cfg(feature = "process")))]
pub struct Registry {
    entries: HashMap<&'static str, Entry>,
    error: Option<Error>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.entries.keys().collect();
        names.sort();
        f.debug_struct("Registry")
            .field("tasks", &names)
            .field("error", &self.error)
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// The name a function type is known by.
pub(crate) fn task_name<F>() -> &'static str {
    std::any::type_name::<F>()
}

/// Refuses a function that is not a zero-sized function item.
pub(crate) fn check_zero_sized<F>() -> Result<(), Error> {
    if std::mem::size_of::<F>() != 0 {
        return Err(Error::InvalidArgument(format!(
            "`{}` is not a function item or a closure capturing nothing: a process pool can only run \
             functions it can name (fn pointers and capturing closures cannot cross a process boundary)",
            task_name::<F>()
        )));
    }
    Ok(())
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            entries: HashMap::new(),
            error: None,
        }
    }

    /// How many functions are registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no function is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Registers `f`, a function item (or a closure capturing nothing) taking one serializable argument.
    ///
    /// A function that is not zero-sized, or whose name is already registered, makes the registry invalid:
    /// [`serve`](Self::serve) then returns [`Error::InvalidArgument`] naming it.
    ///
    /// ```
    /// use concurrent_futures::{Error, Registry};
    ///
    /// fn double(x: u32) -> u32 {
    ///     x * 2
    /// }
    /// let as_pointer: fn(u32) -> u32 = double;
    /// let refused = Registry::new().register(as_pointer).serve();
    /// assert!(matches!(refused, Err(Error::InvalidArgument(_))));
    /// let twice = Registry::new().register(double).register(double).serve();
    /// assert!(matches!(twice, Err(Error::InvalidArgument(_))));
    /// ```
    pub fn register<F, A, R>(mut self, f: F) -> Self
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Payload,
        R: Payload,
    {
        if self.error.is_some() {
            return self;
        }
        if let Err(error) = check_zero_sized::<F>() {
            self.error = Some(error);
            return self;
        }
        let name = task_name::<F>();
        if self.entries.contains_key(name) {
            self.error = Some(Error::InvalidArgument(format!(
                "a task named `{name}` is registered twice (two closures in one function share a name; \
                 use named functions)"
            )));
            return self;
        }
        // Decoding, the call and encoding all run under the panic guard: a panicking `Deserialize` or
        // `Serialize` impl fails the task, not the worker.
        // A chunk runs its items one by one, each under its own guard, and stops at the first that fails: the
        // reply carries the values before it and its failure, so none of them is lost.
        let invoke: Invoke = Box::new(move |payload, chunk, out| {
            let outcome = run_caught(|| {
                if chunk {
                    let inputs: Vec<A> = match postcard::from_bytes(payload) {
                        Ok(inputs) => inputs,
                        Err(e) => return decode_failure(name, e),
                    };
                    let mut values: Vec<R> = Vec::with_capacity(inputs.len());
                    let mut failure = None;
                    for input in inputs {
                        match run_caught(|| f(input)) {
                            Ok(value) => values.push(value),
                            Err(status) => {
                                failure = Some(status);
                                break;
                            }
                        }
                    }
                    encode(name, &(values, failure), out)
                } else {
                    let input: A = match postcard::from_bytes(payload) {
                        Ok(input) => input,
                        Err(e) => return decode_failure(name, e),
                    };
                    encode(name, &f(input), out)
                }
            });
            outcome.unwrap_or_else(|status| status)
        });
        self.entries.insert(
            name,
            Entry {
                type_id: TypeId::of::<F>(),
                invoke,
                codec: Codec::new::<A, R>(name),
            },
        );
        self
    }

    /// The one call a program makes at the top of `main` (what [`process_main!`](crate::process_main) expands
    /// to), like Python's `if __name__ == "__main__":` guard.
    ///
    /// In a worker process started by a [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) this serves tasks
    /// and exits the process when the pool is done with it: it never returns. Worker mode is entered only
    /// through a private handshake with the pool (an environment variable carrying a random token, the
    /// parent's pid and an inherited socket), so running the program normally never enters it.
    ///
    /// Anywhere else it installs the registry for the pools this program builds and returns `Ok(())`; an
    /// invalid registry (see [`register`](Self::register)) is returned as an error and not installed, and a
    /// second install is [`Error::InvalidState`].
    pub fn serve(self) -> Result<(), Error> {
        let worker = super::sys::invitation();
        if let Some(invitation) = worker {
            let installed = self.install();
            worker::run(invitation, installed)
        }
        #[cfg(feature = "mpi")]
        {
            let role = crate::mpi::role();
            if matches!(
                role,
                crate::mpi::Role::WorkerRank | crate::mpi::Role::Spawned
            ) {
                let installed = self.install();
                crate::mpi::serve_rank(installed, role)
            }
        }
        if let Some(error) = self.error {
            return Err(error);
        }
        self.install()?;
        #[cfg(feature = "mpi")]
        crate::mpi::main_started()?;
        Ok(())
    }

    /// Installs the registry process-wide (an invalid one as its error, so pools report it).
    fn install(self) -> Result<&'static Installed, Error> {
        let identity = identity_of(&self.entries);
        let entry = match self.error {
            Some(error) => Err(error),
            None => Ok(Installed {
                codecs: self
                    .entries
                    .values()
                    .map(|entry| (entry.type_id, entry.codec))
                    .collect(),
                entries: self.entries,
                identity,
            }),
        };
        if REGISTRY.set(entry).is_err() {
            return Err(Error::InvalidState(
                "a task registry is already installed in this process".into(),
            ));
        }
        installed()
    }
}

/// The registry this process installed.
pub(crate) struct Installed {
    /// What a worker runs, by name.
    pub(crate) entries: HashMap<&'static str, Entry>,
    /// What a pool sends, by the function's type.
    pub(crate) codecs: HashMap<TypeId, Codec>,
    pub(crate) identity: Identity,
}

static REGISTRY: OnceLock<Result<Installed, Error>> = OnceLock::new();

/// The installed registry: an error if none was (or an invalid one was).
pub(crate) fn installed() -> Result<&'static Installed, Error> {
    match REGISTRY.get() {
        Some(Ok(installed)) => Ok(installed),
        Some(Err(error)) => Err(error.clone()),
        None => Err(Error::InvalidState(
            "no task registry is installed: a program using a process pool must call \
             `concurrent_futures::process_main!(task, ...)` at the top of `main` (see `Registry::serve`)"
                .into(),
        )),
    }
}

/// The build identity of this process with `entries` registered.
fn identity_of(entries: &HashMap<&'static str, Entry>) -> Identity {
    let mut names: Vec<&str> = entries.keys().copied().collect();
    names.sort_unstable();
    let mut names_hash = FNV_START;
    for name in &names {
        names_hash = fnv1a(name.bytes().chain([0]), names_hash);
    }
    let (exe_size, exe_mtime) = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|meta| {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            (meta.len(), mtime)
        })
        .unwrap_or((0, 0));
    Identity {
        tasks: names.len() as u64,
        names_hash,
        exe_size,
        exe_mtime,
    }
}

fn decode_failure(name: &str, error: postcard::Error) -> Status {
    Status::Serialization(format!(
        "could not decode the argument of `{name}` in the worker: {error}"
    ))
}

fn encode<R: Payload>(name: &str, result: &R, out: &mut FrameBuf) -> Status {
    match out.push(result) {
        Ok(()) => Status::Ok,
        Err(error) => Status::Serialization(format!(
            "could not encode the result of `{name}` in the worker: {error}"
        )),
    }
}

/// Runs a task, turning a panic into [`Status::Panicked`] with its message and location.
fn run_caught<T>(f: impl FnOnce() -> T) -> Result<T, Status> {
    let outer = worker::enter_task();
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let location = worker::leave_task(outer);
    outcome.map_err(|payload| {
        let message = crate::unwind::panic_message(&*payload);
        Status::Panicked(match location {
            Some(location) => format!("{message} (at {location})"),
            None => message,
        })
    })
}

/// The one line a program using a process pool adds at the top of `main`: registers the functions its workers
/// may run and, in a worker process, serves them (Python's `if __name__ == "__main__":` guard).
///
/// It expands to `Registry::new().register(f1).register(f2)...serve()`, a `Result<(), Error>`; see
/// [`Registry::serve`](crate::Registry::serve). Without the crate's `process` feature it is a no-op returning
/// `Ok(())` (its arguments must still exist), so one `main` builds with and without the feature.
///
/// ```no_run
/// use concurrent_futures::ProcessPoolExecutor;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::process_main!(square)?; // in a worker process, this line never returns
///
///     let pool = ProcessPoolExecutor::new(4)?;
///     let squares: Vec<u64> = pool.map(square, 1..=10)?.collect::<Result<_, _>>()?;
///     assert_eq!(squares[9], 100);
///     Ok(())
/// }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "process")))]
#[macro_export]
macro_rules! process_main {
    ($($task:expr),* $(,)?) => {
        $crate::Registry::new()$(.register($task))*.serve()
    };
}
