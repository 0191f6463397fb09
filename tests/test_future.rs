//! Ported from CPython's `Lib/test/test_concurrent_futures/test_future.py` (`FutureTests`): each test names the
//! case it mirrors. Futures are driven through the producer API, as CPython's tests drive `Future` directly.

mod common;

use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use common::{Latch, blocked};
use concurrent_futures::{Error, Future, State};

fn pending() -> Future<i32> {
    Future::new()
}

fn running() -> Future<i32> {
    let f = Future::new();
    assert_eq!(f.set_running_or_notify_cancel(), Ok(true));
    f
}

fn cancelled() -> Future<i32> {
    let f = Future::new();
    assert!(f.cancel());
    f
}

fn failed() -> Future<i32> {
    let f = Future::new();
    f.set_exception(Error::Panicked {
        message: "OSError".into(),
    })
    .unwrap();
    f
}

fn successful() -> Future<i32> {
    Future::ready(42)
}

/// test_done_callback_with_result
#[test]
fn done_callback_with_result() {
    let seen = Arc::new(Mutex::new(None));
    let f = Future::new();
    let s = seen.clone();
    f.add_done_callback(move |f| *s.lock().unwrap() = Some(*f.result().unwrap()));
    assert_eq!(*seen.lock().unwrap(), None);
    f.set_result(5).unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(5));
}

/// test_done_callback_with_exception
#[test]
fn done_callback_with_exception() {
    let seen = Arc::new(Mutex::new(None));
    let f = pending();
    let s = seen.clone();
    f.add_done_callback(move |f| *s.lock().unwrap() = f.exception());
    f.set_exception(Error::Panicked {
        message: "test".into(),
    })
    .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Error::Panicked {
            message: "test".into()
        })
    );
}

/// test_done_callback_with_cancel
#[test]
fn done_callback_with_cancel() {
    let was_cancelled = Arc::new(Mutex::new(None));
    let f = pending();
    let w = was_cancelled.clone();
    f.add_done_callback(move |f| *w.lock().unwrap() = Some(f.cancelled()));
    assert!(f.cancel());
    assert_eq!(*was_cancelled.lock().unwrap(), Some(true));
}

/// test_done_callback_raises: a panicking callback is logged and the next callback still runs.
#[test]
fn done_callback_raises() {
    common::logged();
    let raising_was_called = Arc::new(Mutex::new(false));
    let fn_was_called = Arc::new(Mutex::new(false));
    let f = pending();
    let r = raising_was_called.clone();
    f.add_done_callback(move |_| {
        *r.lock().unwrap() = true;
        panic!("doh! (raising_fn)");
    });
    let c = fn_was_called.clone();
    f.add_done_callback(move |_| *c.lock().unwrap() = true);
    f.set_result(5).unwrap();
    assert!(*raising_was_called.lock().unwrap());
    assert!(*fn_was_called.lock().unwrap());
    let logs = common::logged();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("ERROR concurrent_futures") && l.contains("doh! (raising_fn)")),
        "{logs:?}"
    );
}

/// test_done_callback_already_successful: called at once, in the caller's thread.
#[test]
fn done_callback_already_successful() {
    let seen = Arc::new(Mutex::new(None));
    let f = Future::ready(5);
    let s = seen.clone();
    let me = thread::current().id();
    f.add_done_callback(move |f| {
        *s.lock().unwrap() = Some((*f.result().unwrap(), thread::current().id()))
    });
    assert_eq!(*seen.lock().unwrap(), Some((5, me)));
}

/// test_done_callback_already_failed
#[test]
fn done_callback_already_failed() {
    let seen = Arc::new(Mutex::new(None));
    let f = failed();
    let s = seen.clone();
    f.add_done_callback(move |f| *s.lock().unwrap() = f.exception());
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Error::Panicked {
            message: "OSError".into()
        })
    );
}

/// test_done_callback_already_cancelled
#[test]
fn done_callback_already_cancelled() {
    let seen = Arc::new(Mutex::new(None));
    let f = cancelled();
    let s = seen.clone();
    f.add_done_callback(move |f| *s.lock().unwrap() = Some(f.cancelled()));
    assert_eq!(*seen.lock().unwrap(), Some(true));
}

/// test_done_callback_raises_already_succeeded
#[test]
fn done_callback_raises_already_succeeded() {
    common::logged();
    let f = successful();
    f.add_done_callback(|_| panic!("doh! (already succeeded)"));
    assert!(
        common::logged()
            .iter()
            .any(|l| l.contains("doh! (already succeeded)"))
    );
}

/// Callbacks run in the order they were added (the module documentation's promise).
#[test]
fn done_callbacks_run_in_order_added() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let f = pending();
    for i in 0..10 {
        let o = order.clone();
        f.add_done_callback(move |_| o.lock().unwrap().push(i));
    }
    f.set_result(1).unwrap();
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

/// test_repr
#[test]
fn repr() {
    assert_eq!(format!("{:?}", pending()), "Future { state: Pending, .. }");
    assert_eq!(format!("{:?}", running()), "Future { state: Running, .. }");
    assert_eq!(
        format!("{:?}", cancelled()),
        "Future { state: Cancelled, .. }"
    );
    assert_eq!(
        format!("{:?}", failed()),
        "Future { state: Finished, outcome: \"error\", .. }"
    );
    assert_eq!(
        format!("{:?}", successful()),
        "Future { state: Finished, outcome: \"value\", .. }"
    );
}

/// test_cancel
#[test]
fn cancel() {
    let f1 = pending();
    let f2 = running();
    let f3 = cancelled();
    let f4 = failed();
    let f5 = successful();

    assert!(f1.cancel());
    assert_eq!(f1.state(), State::Cancelled);
    assert!(!f2.cancel());
    assert_eq!(f2.state(), State::Running);
    assert!(f3.cancel());
    assert_eq!(f3.state(), State::Cancelled);
    assert!(!f4.cancel());
    assert_eq!(f4.state(), State::Finished);
    assert!(!f5.cancel());
    assert_eq!(f5.state(), State::Finished);
}

/// test_cancelled
#[test]
fn cancelled_states() {
    assert!(!pending().cancelled());
    assert!(!running().cancelled());
    assert!(cancelled().cancelled());
    assert!(!failed().cancelled());
    assert!(!successful().cancelled());
}

/// test_done
#[test]
fn done_states() {
    assert!(!pending().done());
    assert!(!running().done());
    assert!(cancelled().done());
    assert!(failed().done());
    assert!(successful().done());
}

/// test_running
#[test]
fn running_states() {
    assert!(!pending().running());
    assert!(running().running());
    assert!(!cancelled().running());
    assert!(!failed().running());
    assert!(!successful().running());
}

/// test_result_with_timeout (real time, with a short timeout on futures that cannot finish)
#[test]
fn result_with_timeout() {
    let timeout = Error::Timeout {
        unfinished: 1,
        total: 1,
    };
    assert_eq!(
        pending().result_timeout(Duration::ZERO),
        Err(timeout.clone())
    );
    assert_eq!(
        running().result_timeout(Duration::from_millis(20)),
        Err(timeout)
    );
    assert_eq!(
        cancelled().result_timeout(Duration::ZERO),
        Err(Error::Cancelled)
    );
    assert_eq!(
        failed().result_timeout(Duration::ZERO),
        Err(Error::Panicked {
            message: "OSError".into()
        })
    );
    assert_eq!(successful().result_timeout(Duration::ZERO), Ok(&42));
}

/// test_result_with_success: another thread sets the result while we wait.
#[test]
fn result_with_success() {
    let f1 = pending();
    let f = f1.clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let t = thread::spawn(move || {
        ready_rx.recv().unwrap();
        f.set_result(42).unwrap();
    });
    ready_tx.send(()).unwrap();
    assert_eq!(f1.result_timeout(Duration::from_secs(60)), Ok(&42));
    t.join().unwrap();
}

/// test_result_with_cancel: another thread cancels while we wait.
#[test]
fn result_with_cancel() {
    let f1 = pending();
    let f = f1.clone();
    let t = thread::spawn(move || assert!(f.cancel()));
    assert_eq!(
        f1.result_timeout(Duration::from_secs(60)),
        Err(Error::Cancelled)
    );
    t.join().unwrap();
}

/// test_exception_with_timeout
#[test]
fn exception_with_timeout() {
    let timeout = Error::Timeout {
        unfinished: 1,
        total: 1,
    };
    assert_eq!(
        pending().exception_timeout(Duration::ZERO),
        Err(timeout.clone())
    );
    assert_eq!(
        running().exception_timeout(Duration::from_millis(20)),
        Err(timeout)
    );
    assert_eq!(
        cancelled().exception_timeout(Duration::ZERO),
        Ok(Some(Error::Cancelled))
    );
    assert_eq!(
        failed().exception_timeout(Duration::ZERO),
        Ok(Some(Error::Panicked {
            message: "OSError".into()
        }))
    );
    assert_eq!(successful().exception_timeout(Duration::ZERO), Ok(None));
}

/// test_exception_with_success
#[test]
fn exception_with_success() {
    let f1 = pending();
    let f = f1.clone();
    let t = thread::spawn(move || {
        f.set_exception(Error::Panicked {
            message: "OSError".into(),
        })
        .unwrap()
    });
    assert_eq!(
        f1.exception_timeout(Duration::from_secs(60)),
        Ok(Some(Error::Panicked {
            message: "OSError".into()
        }))
    );
    t.join().unwrap();
}

/// test_multiple_set_result
#[test]
fn multiple_set_result() {
    let f = pending();
    f.set_result(1).unwrap();
    assert!(matches!(f.set_result(2), Err(Error::InvalidState(_))));
    assert!(f.done());
    assert_eq!(f.result(), Ok(&1));
}

/// test_multiple_set_exception
#[test]
fn multiple_set_exception() {
    let f = pending();
    let e = Error::Panicked {
        message: "first".into(),
    };
    f.set_exception(e.clone()).unwrap();
    assert!(matches!(
        f.set_exception(Error::Shutdown),
        Err(Error::InvalidState(_))
    ));
    assert!(f.done());
    assert_eq!(f.exception(), Some(e));
}

/// set_running_or_notify_cancel on a running or finished future is an invalid-state error (CPython raises
/// RuntimeError/InvalidStateError there).
#[test]
fn set_running_twice_is_invalid_state() {
    assert!(matches!(
        running().set_running_or_notify_cancel(),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        successful().set_running_or_notify_cancel(),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(cancelled().set_running_or_notify_cancel(), Ok(false));
    assert!(matches!(
        cancelled().set_result(1),
        Err(Error::InvalidState(_))
    ));
}

/// The result is readable any number of times, from any handle, without `T: Clone`.
#[test]
fn result_read_many_times_from_any_handle() {
    struct NotClone(String);
    let f = Future::new();
    let g = f.clone();
    f.set_result(NotClone("value".into())).unwrap();
    for _ in 0..3 {
        assert_eq!(f.result().unwrap().0, "value");
        assert_eq!(g.result().unwrap().0, "value");
    }
}

/// `into_result` moves the value out of the last handle, and refuses while other handles exist.
#[test]
fn into_result_needs_the_only_handle() {
    let f = Future::new();
    let g = f.clone();
    f.set_result(String::from("v")).unwrap();
    assert!(matches!(f.into_result(), Err(Error::InvalidState(_))));
    assert_eq!(g.into_result(), Ok(String::from("v")));
}

/// `into_result` waits for the callbacks (which see the value) before moving it out. A pool task has no producer
/// handle, so the taker's handle is the only one once the callbacks are done.
#[test]
fn into_result_waits_for_running_callbacks() {
    let pool = concurrent_futures::ThreadPoolExecutor::new(1).unwrap();
    let start = Latch::new();
    let in_callback = Latch::new();
    let release = Latch::new();
    let (seen_tx, seen_rx) = mpsc::channel();
    let f = blocked(&pool, &start, String::from("v"));
    {
        let (in_callback, release) = (in_callback.clone(), release.clone());
        f.add_done_callback(move |f: &Future<String>| {
            in_callback.open();
            release.wait();
            seen_tx.send(f.result().cloned()).unwrap();
        });
    }
    start.open();
    in_callback.wait();
    // The callback runs (and holds a handle) until released: into_result must wait for it, not fail.
    let taker = thread::spawn(move || f.into_result());
    release.open();
    assert_eq!(taker.join().unwrap(), Ok(String::from("v")));
    assert_eq!(seen_rx.recv().unwrap(), Ok(String::from("v")));
}

/// Handles are Send + Sync when T is, and cheap to clone (a pointer).
#[test]
fn handles_are_send_sync_and_small() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Future<Vec<u8>>>();
    assert!(std::mem::size_of::<Future<u8>>() <= 2 * std::mem::size_of::<usize>());
}

/// `Future::failed(Error::Cancelled)` is a cancelled future.
#[test]
fn failed_with_cancelled_is_cancelled() {
    let f: Future<u8> = Future::failed(Error::Cancelled);
    assert!(f.cancelled());
    assert_eq!(f.result(), Err(Error::Cancelled));
}

/// Awaiting a future from async code (std::future::Future impl) while a worker completes it. A pool task has no
/// producer handle, so the awaited handle is the only one and the value moves out.
#[test]
fn await_from_async_code() {
    let pool = concurrent_futures::ThreadPoolExecutor::new(1).unwrap();
    let release = Latch::new();
    let r = release.clone();
    let f = pool
        .submit(move || {
            r.wait();
            7
        })
        .unwrap();
    let opener = thread::spawn(move || release.open());
    assert_eq!(pollster::block_on(f), Ok(7));
    opener.join().unwrap();
    assert_eq!(pollster::block_on(cancelled()), Err(Error::Cancelled));
}

/// Errors carry messages a user can act on.
#[test]
fn error_messages() {
    assert_eq!(
        Error::Shutdown.to_string(),
        "cannot schedule new futures after shutdown"
    );
    assert_eq!(
        Error::Timeout {
            unfinished: 2,
            total: 4
        }
        .to_string(),
        "2 (of 4) futures unfinished"
    );
    assert!(
        Error::Panicked {
            message: "boom".into()
        }
        .to_string()
        .contains("boom")
    );
}

/// Issue 11.3: `into_result` on a clone inside the future's own done-callback would wait for that very callback
/// (it waits for the callbacks to finish); it returns `InvalidState` instead, as documented for a shared handle.
#[test]
fn into_result_inside_own_callback_is_invalid_state() {
    let (tx, rx) = mpsc::channel();
    let f = pending();
    let keep = f.clone();
    f.add_done_callback(move |f| {
        let clone = f.clone();
        let moved = clone.into_result();
        tx.send(moved).unwrap();
    });
    // Bounded, so that a deadlock fails the test instead of hanging it.
    let setter = thread::spawn(move || keep.set_result(3).unwrap());
    let moved = rx.recv_timeout(common::PATIENCE);
    assert!(
        matches!(moved, Ok(Err(Error::InvalidState(_)))),
        "{moved:?}"
    );
    setter.join().unwrap();
    assert_eq!(f.into_result(), Ok(3));
}

/// Issue 11.3: the same for `.await` on a clone inside the future's own done-callback.
#[test]
fn await_inside_own_callback_is_invalid_state() {
    let (tx, rx) = mpsc::channel();
    let pool = concurrent_futures::ThreadPoolExecutor::new(1).unwrap();
    let release = Latch::new();
    let f = blocked(&pool, &release, 5);
    f.add_done_callback(move |f| {
        tx.send(pollster::block_on(f.clone())).unwrap();
    });
    release.open();
    let awaited = rx.recv_timeout(common::PATIENCE);
    assert!(
        matches!(awaited, Ok(Err(Error::InvalidState(_)))),
        "{awaited:?}"
    );
    assert_eq!(f.into_result(), Ok(5));
}

/// Issue 11.11: CPython's `set_running_or_notify_cancel` returns False once for a cancelled future (CANCELLED ->
/// CANCELLED_AND_NOTIFIED) and raises on a second call; so does this.
#[test]
fn set_running_on_a_cancelled_future_reports_once() {
    let f = cancelled();
    assert_eq!(f.set_running_or_notify_cancel(), Ok(false));
    assert!(matches!(
        f.set_running_or_notify_cancel(),
        Err(Error::InvalidState(_))
    ));
    assert!(f.cancelled());
    assert_eq!(f.result(), Err(Error::Cancelled));
}
