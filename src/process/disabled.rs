//! Without the `process` feature there is no process pool; [`process_main!`](crate::process_main) stays, as a
//! no-op, so that a program whose `main` starts with it builds with and without the feature.

/// Without the `process` feature: does nothing and returns `Ok(())` (with the feature it registers the functions
/// a process pool's workers may run and, in a worker, serves them; see the feature's documentation).
///
/// It still names its arguments, so they must exist; it does not check that they could be process-pool tasks
/// (serde arguments and results), which the feature's version does at compile time.
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::process_main!(square)?;
///     Ok(())
/// }
/// ```
#[macro_export]
macro_rules! process_main {
    ($($task:expr),* $(,)?) => {{
        $(let _ = &$task;)*
        ::core::result::Result::<(), $crate::Error>::Ok(())
    }};
}
