//! The MPI calls the pool makes, as checked wrappers over `mpi::ffi`: each return code becomes a `Result` whose
//! error carries MPI's own message. Every communicator the pool uses is set to return errors instead of aborting.
//!
//! Only the thread that initialised MPI calls these (the pool's MPI thread, or a worker rank's main thread):
//! MPI is initialised with `MPI_THREAD_FUNNELED`.

use std::ffi::{CString, c_char, c_int, c_void};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use mpi::ffi;

/// An MPI call that failed, with MPI's explanation.
#[derive(Debug, Clone)]
pub(crate) struct MpiError {
    pub(crate) call: &'static str,
    pub(crate) message: String,
}

impl fmt::Display for MpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, self.message)
    }
}

impl MpiError {
    fn new(call: &'static str, message: impl Into<String>) -> Self {
        MpiError {
            call,
            message: message.into(),
        }
    }
}

/// The largest message MPI can carry in one call: counts are C `int`s.
pub(crate) const MAX_MESSAGE: usize = c_int::MAX as usize;

fn check(call: &'static str, code: c_int) -> Result<(), MpiError> {
    if code == ffi::MPI_SUCCESS as c_int {
        Ok(())
    } else {
        Err(MpiError::new(call, error_string(code)))
    }
}

/// MPI's text for an error code.
pub(crate) fn error_string(code: c_int) -> String {
    let mut buf = vec![0 as c_char; ffi::MPI_MAX_ERROR_STRING as usize + 1];
    let mut len: c_int = 0;
    // SAFETY: `buf` has room for MPI_MAX_ERROR_STRING characters and a terminator, as MPI_Error_string requires;
    // it writes `len` characters.
    let rc = unsafe { ffi::MPI_Error_string(code, buf.as_mut_ptr(), &mut len) };
    if rc != ffi::MPI_SUCCESS as c_int {
        return format!("MPI error code {code}");
    }
    let len = usize::try_from(len).unwrap_or(0).min(buf.len());
    let bytes: Vec<u8> = buf[..len].iter().map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether MPI is initialised in this process (and not yet finalised).
pub(crate) fn is_initialized() -> bool {
    let mut flag: c_int = 0;
    let mut finalized: c_int = 0;
    // SAFETY: both may be called at any time, before MPI_Init and after MPI_Finalize; they write one int each.
    unsafe {
        ffi::MPI_Initialized(&mut flag);
        ffi::MPI_Finalized(&mut finalized);
    }
    flag != 0 && finalized == 0
}

/// Initialises MPI for calls from this thread only (`MPI_THREAD_FUNNELED`). MPI itself aborts the process if it
/// cannot start (that is not an error MPI lets a program handle).
pub(crate) fn init() -> Result<(), MpiError> {
    let mut provided: c_int = 0;
    // SAFETY: MPI_Init_thread accepts null argc/argv; called once per process (the caller checks
    // `is_initialized` first, on the only thread that initialises MPI).
    let rc = unsafe {
        ffi::MPI_Init_thread(
            ptr::null_mut(),
            ptr::null_mut(),
            ffi::RSMPI_THREAD_FUNNELED,
            &mut provided,
        )
    };
    check("MPI_Init_thread", rc)?;
    // SAFETY: reading constants the MPI library defines.
    let (world, own) = unsafe { (ffi::RSMPI_COMM_WORLD, ffi::RSMPI_COMM_SELF) };
    set_errors_return(Comm(world))?;
    set_errors_return(Comm(own))?;
    Ok(())
}

/// The thread level MPI provides, if it is initialised.
pub(crate) fn thread_level_is_multiple() -> bool {
    let mut provided: c_int = 0;
    // SAFETY: MPI is initialised (the caller checked); writes one int.
    unsafe { ffi::MPI_Query_thread(&mut provided) };
    // SAFETY: reading a constant.
    provided >= unsafe { ffi::RSMPI_THREAD_MULTIPLE }
}

/// Finalises MPI.
pub(crate) fn finalize() -> Result<(), MpiError> {
    // SAFETY: MPI is initialised and every request this process started has completed or was abandoned with
    // its communicator disconnected; called once, on the thread that initialised MPI.
    check("MPI_Finalize", unsafe { ffi::MPI_Finalize() })
}

/// A communicator handle, used only on the thread that initialised MPI.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Comm(ffi::MPI_Comm);

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Comm")
    }
}

/// `MPI_COMM_WORLD`.
pub(crate) fn world() -> Comm {
    // SAFETY: reading a constant the MPI library defines.
    Comm(unsafe { ffi::RSMPI_COMM_WORLD })
}

/// Makes `comm` return error codes instead of aborting the job.
pub(crate) fn set_errors_return(comm: Comm) -> Result<(), MpiError> {
    // SAFETY: `comm` is a valid communicator; MPI_ERRORS_RETURN is a predefined handler.
    let rc = unsafe { ffi::MPI_Comm_set_errhandler(comm.0, ffi::RSMPI_ERRORS_RETURN) };
    check("MPI_Comm_set_errhandler", rc)
}

/// A private copy of `comm` (collective over it), returning errors.
pub(crate) fn dup(comm: Comm) -> Result<Comm, MpiError> {
    // SAFETY: reading a constant.
    let mut new = unsafe { ffi::RSMPI_COMM_NULL };
    // SAFETY: `comm` is valid; MPI writes the new handle.
    check("MPI_Comm_dup", unsafe {
        ffi::MPI_Comm_dup(comm.0, &mut new)
    })?;
    let new = Comm(new);
    set_errors_return(new)?;
    Ok(new)
}

/// The intercommunicator to the process that spawned this one, if it was spawned.
pub(crate) fn parent() -> Result<Option<Comm>, MpiError> {
    // SAFETY: reading a constant.
    let null = unsafe { ffi::RSMPI_COMM_NULL };
    let mut comm = null;
    // SAFETY: MPI is initialised; writes one handle.
    check("MPI_Comm_get_parent", unsafe {
        ffi::MPI_Comm_get_parent(&mut comm)
    })?;
    if comm == null {
        return Ok(None);
    }
    let comm = Comm(comm);
    set_errors_return(comm)?;
    Ok(Some(comm))
}

/// This process's rank in `comm`.
pub(crate) fn rank(comm: Comm) -> Result<i32, MpiError> {
    let mut rank: c_int = 0;
    // SAFETY: `comm` is valid; writes one int.
    check("MPI_Comm_rank", unsafe {
        ffi::MPI_Comm_rank(comm.0, &mut rank)
    })?;
    Ok(rank)
}

/// The number of processes in `comm` (the local group of an intercommunicator).
pub(crate) fn size(comm: Comm) -> Result<i32, MpiError> {
    let mut size: c_int = 0;
    // SAFETY: `comm` is valid; writes one int.
    check("MPI_Comm_size", unsafe {
        ffi::MPI_Comm_size(comm.0, &mut size)
    })?;
    Ok(size)
}

/// The name of this node, as MPI reports it.
pub(crate) fn processor_name() -> String {
    let mut buf = vec![0 as c_char; ffi::MPI_MAX_PROCESSOR_NAME as usize + 1];
    let mut len: c_int = 0;
    // SAFETY: `buf` has room for MPI_MAX_PROCESSOR_NAME characters and a terminator; MPI writes `len` of them.
    let rc = unsafe { ffi::MPI_Get_processor_name(buf.as_mut_ptr(), &mut len) };
    if rc != ffi::MPI_SUCCESS as c_int {
        return "unknown host".into();
    }
    let len = usize::try_from(len).unwrap_or(0).min(buf.len());
    let bytes: Vec<u8> = buf[..len].iter().map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Starts `n` copies of `program` with `args` (`MPI_Comm_spawn` from this process alone), with the given
/// `MPI_Info` keys; returns the intercommunicator to them. A failure (no slots left, a missing program, an
/// unknown host) is an error with MPI's reason.
pub(crate) fn spawn(
    program: &Path,
    args: &[&str],
    n: usize,
    info: &[(String, String)],
) -> Result<Comm, MpiError> {
    let count =
        c_int::try_from(n).map_err(|_| MpiError::new("MPI_Comm_spawn", "too many workers"))?;
    let program = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| MpiError::new("MPI_Comm_spawn", "the program path contains a NUL byte"))?;
    let args: Vec<CString> = args
        .iter()
        .map(|a| CString::new(*a))
        .collect::<Result<_, _>>()
        .map_err(|_| MpiError::new("MPI_Comm_spawn", "an argument contains a NUL byte"))?;
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    argv.push(ptr::null_mut());
    let info = Info::new(info)?;
    // SAFETY: reading constants.
    let (null, own) = unsafe { (ffi::RSMPI_COMM_NULL, ffi::RSMPI_COMM_SELF) };
    let mut inter = null;
    let mut errcodes: Vec<c_int> = vec![0; n];
    // SAFETY: `program` and `argv` are NUL-terminated and live across the call (MPI does not keep them);
    // `errcodes` has room for `n` codes; COMM_SELF returns errors (set in `init`).
    let rc = unsafe {
        ffi::MPI_Comm_spawn(
            program.as_ptr(),
            argv.as_mut_ptr(),
            count,
            info.0,
            0,
            own,
            &mut inter,
            errcodes.as_mut_ptr(),
        )
    };
    drop(info);
    check("MPI_Comm_spawn", rc)?;
    if let Some(code) = errcodes.iter().find(|&&c| c != ffi::MPI_SUCCESS as c_int) {
        let failed = errcodes
            .iter()
            .filter(|&&c| c != ffi::MPI_SUCCESS as c_int)
            .count();
        let message = format!(
            "{failed} of {n} processes did not start: {}",
            error_string(*code)
        );
        if inter != null {
            let _ = disconnect(Comm(inter));
        }
        return Err(MpiError::new("MPI_Comm_spawn", message));
    }
    if inter == null {
        return Err(MpiError::new(
            "MPI_Comm_spawn",
            "no communicator was returned",
        ));
    }
    let inter = Comm(inter);
    set_errors_return(inter)?;
    Ok(inter)
}

/// An `MPI_Info` object, freed on drop.
struct Info(ffi::MPI_Info);

impl Info {
    fn new(pairs: &[(String, String)]) -> Result<Info, MpiError> {
        if pairs.is_empty() {
            // SAFETY: reading a constant.
            return Ok(Info(unsafe { ffi::RSMPI_INFO_NULL }));
        }
        // SAFETY: reading a constant.
        let mut info = unsafe { ffi::RSMPI_INFO_NULL };
        // SAFETY: writes one handle.
        check("MPI_Info_create", unsafe {
            ffi::MPI_Info_create(&mut info)
        })?;
        let info = Info(info);
        for (key, value) in pairs {
            let (Ok(k), Ok(v)) = (CString::new(key.as_str()), CString::new(value.as_str())) else {
                return Err(MpiError::new(
                    "MPI_Info_set",
                    "a key or value contains a NUL byte",
                ));
            };
            // SAFETY: `info` is a valid info object; MPI copies the NUL-terminated strings.
            check("MPI_Info_set", unsafe {
                ffi::MPI_Info_set(info.0, k.as_ptr(), v.as_ptr())
            })?;
        }
        Ok(info)
    }
}

impl Drop for Info {
    fn drop(&mut self) {
        // SAFETY: reading a constant.
        if self.0 != unsafe { ffi::RSMPI_INFO_NULL } {
            // SAFETY: a valid info object created by `new`, freed once.
            unsafe { ffi::MPI_Info_free(&mut self.0) };
        }
    }
}

/// Disconnects `comm` (collective: waits for the other side to disconnect too).
pub(crate) fn disconnect(comm: Comm) -> Result<(), MpiError> {
    let mut comm = comm.0;
    // SAFETY: `comm` is a valid intercommunicator with no pending requests of ours.
    check("MPI_Comm_disconnect", unsafe {
        ffi::MPI_Comm_disconnect(&mut comm)
    })
}

fn count_of(len: usize) -> Result<c_int, MpiError> {
    c_int::try_from(len).map_err(|_| {
        MpiError::new(
            "send",
            format!("a message of {len} bytes is larger than MPI's limit of {MAX_MESSAGE} bytes"),
        )
    })
}

/// Sends `bytes` to `dest` and waits until the buffer may be reused.
pub(crate) fn send(comm: Comm, dest: i32, bytes: &[u8]) -> Result<(), MpiError> {
    let count = count_of(bytes.len())?;
    // SAFETY: `bytes` is valid for `count` bytes for the whole (blocking) call.
    let rc = unsafe {
        ffi::MPI_Send(
            bytes.as_ptr() as *const c_void,
            count,
            ffi::RSMPI_UINT8_T,
            dest,
            0,
            comm.0,
        )
    };
    check("MPI_Send", rc)
}

/// A send in progress: owns its buffer until MPI is done with it.
pub(crate) struct Sending {
    request: ffi::MPI_Request,
    /// Read by MPI until the request completes; its heap buffer never moves.
    _bytes: Vec<u8>,
}

/// Starts sending `bytes` to `dest`.
pub(crate) fn isend(comm: Comm, dest: i32, bytes: Vec<u8>) -> Result<Sending, MpiError> {
    let count = count_of(bytes.len())?;
    // SAFETY: reading a constant.
    let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
    // SAFETY: `bytes` moves into the returned `Sending`, which keeps its heap buffer (which does not move)
    // alive until `test` reports the request complete.
    let rc = unsafe {
        ffi::MPI_Isend(
            bytes.as_ptr() as *const c_void,
            count,
            ffi::RSMPI_UINT8_T,
            dest,
            0,
            comm.0,
            &mut request,
        )
    };
    check("MPI_Isend", rc)?;
    Ok(Sending {
        request,
        _bytes: bytes,
    })
}

impl Sending {
    /// Whether the send is complete (then the buffer is released).
    pub(crate) fn test(&mut self) -> Result<bool, MpiError> {
        let mut flag: c_int = 0;
        // SAFETY: a request started by `isend`, not yet completed (MPI sets it to null when it completes, and
        // testing a null request is allowed).
        let rc = unsafe { ffi::MPI_Test(&mut self.request, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
        check("MPI_Test", rc)?;
        Ok(flag != 0)
    }
}

/// Receives the next message waiting on `comm` from anyone, if there is one: its source and bytes.
pub(crate) fn try_receive(comm: Comm) -> Result<Option<(i32, Vec<u8>)>, MpiError> {
    let mut flag: c_int = 0;
    // SAFETY: reading constants.
    let (any_source, any_tag) = unsafe { (ffi::RSMPI_ANY_SOURCE, ffi::RSMPI_ANY_TAG) };
    // SAFETY: reading a constant.
    let mut message = unsafe { ffi::RSMPI_MESSAGE_NULL };
    let mut status = std::mem::MaybeUninit::<ffi::MPI_Status>::zeroed();
    // SAFETY: `comm` is valid; MPI writes the flag, the message handle and the status.
    let rc = unsafe {
        ffi::MPI_Improbe(
            any_source,
            any_tag,
            comm.0,
            &mut flag,
            &mut message,
            status.as_mut_ptr(),
        )
    };
    check("MPI_Improbe", rc)?;
    if flag == 0 {
        return Ok(None);
    }
    // SAFETY: MPI_Improbe set the flag, so it filled in the status.
    let mut status = unsafe { status.assume_init() };
    let mut count: c_int = 0;
    // SAFETY: a status filled in by MPI; writes one int.
    check("MPI_Get_count", unsafe {
        ffi::MPI_Get_count(&status, ffi::RSMPI_UINT8_T, &mut count)
    })?;
    let len =
        usize::try_from(count).map_err(|_| MpiError::new("MPI_Get_count", "a negative count"))?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len).map_err(|_| {
        MpiError::new(
            "MPI_Mrecv",
            format!("no memory for a message of {len} bytes"),
        )
    })?;
    // SAFETY: `bytes` has capacity for `len` bytes; MPI_Mrecv writes exactly the message's `count` bytes into
    // it, and `set_len` runs only after it succeeded.
    let rc = unsafe {
        ffi::MPI_Mrecv(
            bytes.as_mut_ptr() as *mut c_void,
            count,
            ffi::RSMPI_UINT8_T,
            &mut message,
            &mut status,
        )
    };
    check("MPI_Mrecv", rc)?;
    // SAFETY: MPI wrote `len` bytes (the message's whole length, measured above).
    unsafe { bytes.set_len(len) };
    Ok(Some((status.MPI_SOURCE, bytes)))
}
