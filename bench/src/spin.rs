//! Busy-loop threads that saturate the cores while a group runs (workload 10).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Threads of this process that spin until stopped, each on a plain loop reading a shared stop flag.
pub struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Spinners {
    /// Starts `count` spinning threads.
    pub fn start(count: usize) -> Spinners {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|i| {
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name(format!("bench-spin-{i}"))
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    })
                    .expect("spawn a busy-loop thread")
            })
            .collect();
        Spinners { stop, threads }
    }

    /// How many threads are spinning.
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Stops every thread and joins it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("busy-loop thread");
        }
    }
}

impl Drop for Spinners {
    /// A group that panics still stops its spinners.
    fn drop(&mut self) {
        self.halt();
    }
}
