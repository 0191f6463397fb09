//! The shapes Python users know from `concurrent.futures`, in one run: submit + callbacks, map, wait,
//! as_completed, cancel and shutdown. `cargo run --example quickstart`

use std::time::Duration;

use concurrent_futures::{Error, ReturnWhen, ThreadPoolExecutor, as_completed, wait};

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(10 * (x % 4)));
    x * x
}

fn main() -> Result<(), Error> {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(4)
        .thread_name_prefix("demo")
        .build()?;

    // submit + add_done_callback (seed program 1's shape)
    for x in 1..=4 {
        let future = pool.submit(move || slow_square(x))?;
        future.add_done_callback(move |f| {
            let thread = std::thread::current();
            println!(
                "{} finished square({x}) = {:?}",
                thread.name().unwrap_or("?"),
                f.result()
            );
        });
    }

    // map keeps input order
    let squares: Vec<u64> = pool.map(slow_square, 1..=8)?.collect::<Result<_, _>>()?;
    println!("map: {squares:?}");

    // spawn, join all, read values (seed program 5's shape)
    let eat = pool.submit(|| "noah eats")?;
    let play = pool.submit(|| "bobo plays")?;
    let (done, _) = wait([&eat, &play], None, ReturnWhen::AllCompleted);
    println!(
        "joined {} greenlets: {} / {}",
        done.len(),
        eat.result()?,
        play.result()?
    );

    // as_completed yields in completion order
    let futures: Vec<_> = [3u64, 1, 2]
        .into_iter()
        .map(|x| pool.submit(move || slow_square(x)))
        .collect::<Result<_, _>>()?;
    for future in as_completed(futures, Some(Duration::from_secs(5))) {
        println!("as_completed: {}", future?.result()?);
    }

    // a panic is an error value; the worker survives. Rust prints every panic's message on stderr, so say first
    // that this one is deliberate (on stderr too, so that it comes right before it).
    eprintln!(
        "quickstart: the next task panics on purpose (expected): its message follows on stderr"
    );
    let boom = pool.submit(|| -> u8 { panic!("boom") })?;
    println!(
        "panicking task, as expected: {}",
        boom.result()
            .err()
            .map_or_else(|| "no error?!".to_owned(), |e| e.to_string())
    );

    pool.shutdown(true);
    println!(
        "after shutdown, submit says: {}",
        pool.submit(|| ()).unwrap_err()
    );
    Ok(())
}
