//! `crawler_bench --docs`: the crawler and `wget -r` on a real site with no latency (a documentation tree served by
//! nginx on 127.0.0.1), in one run: pages/s, peak resident memory, and whether both fetched the same pages.
//!
//! Each crawl is a process of its own, timed from start to exit and measured by `/usr/bin/time` (maximum resident
//! set size): wget, this benchmark re-run as the crawler (`RUN_CRAWLER`), and optionally a baseline crawler binary.
//! wget is told not to fetch page requisites (stylesheets, scripts, fonts, images), which the crawler does not
//! follow either; its robots.txt request is not counted (the crawler's is not either). Pages/s counts every
//! request a tool made (wget also requests strings it mistakes for links, which answer 404: counted, which favours
//! wget). The page sets compared are the pages answered 2xx: every crawler run must fetch the same set (and the
//! baseline too), and the difference with wget's is printed (wget also reads links inside `<noscript>`, which a
//! browser running scripts, and the crawler, do not).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first argument that makes the benchmark run as the crawler (the rest are the crawler's arguments).
pub const RUN_CRAWLER: &str = "--run-crawler";

/// What `--docs` measures.
pub struct Options {
    /// The tree to serve; `auto`: the newest toolchain's documentation under ~/.rustup.
    pub dir: PathBuf,
    pub start: String,
    pub depth: u32,
    pub workers: Vec<usize>,
    pub runs: usize,
    pub baseline: Option<PathBuf>,
}

/// Suffixes of page requisites wget would fetch (from `<link>`, `<script>`, `<img>` and CSS) and the crawler does
/// not follow.
const REQUISITES: &str = "css,js,mjs,png,svg,ico,gif,jpg,jpeg,webp,woff,woff2,ttf,otf,json,map";

/// One crawl: how long it took, its peak memory, the requests it made and the pages answered 2xx.
struct Sample {
    seconds: f64,
    peak_rss_kib: Option<u64>,
    requests: usize,
    urls: BTreeSet<String>,
    /// Status classes and errors, to say why a run differs.
    summary: String,
}

/// A private directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch, String> {
        // tmpfs when there is one, so that wget's writes cost it as little as possible.
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_owned()
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!("crawler-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// nginx serving `root` on 127.0.0.1, one process (no master), stopped when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _scratch: Scratch,
}

impl Nginx {
    fn start(root: &Path) -> Result<Nginx, String> {
        let scratch = Scratch::new("nginx")?;
        // A free port: bound, noted, released (nginx binds it a moment later).
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot pick a port: {e}"))?;
        let dir = scratch.0.display();
        let mime_types = if Path::new("/etc/nginx/mime.types").is_file() {
            "include /etc/nginx/mime.types;"
        } else {
            "types { text/html html; }"
        };
        // As root, nginx would serve as `nobody`, who cannot read ~/.rustup: serve as the current user.
        let user = if is_root() { "user root;" } else { "" };
        let config = format!(
            "daemon off;\nmaster_process off;\n{user}\nworker_processes 1;\nerror_log {dir}/error.log;\n\
             pid {dir}/nginx.pid;\nevents {{ worker_connections 4096; }}\nhttp {{\n  {mime_types}\n\
             default_type application/octet-stream;\n  access_log off;\n  sendfile on;\n  keepalive_timeout 75s;\n\
             keepalive_requests 1000000;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
             server {{ listen {addr}; root {root}; }}\n}}\n",
            root = root.display()
        );
        let config_path = scratch.0.join("nginx.conf");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("cannot write the nginx config: {e}"))?;
        let child = Command::new(find("nginx", &["/usr/sbin/nginx"])?)
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(&scratch.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nginx: {e}"))?;
        let mut nginx = Nginx {
            child,
            addr,
            _scratch: scratch,
        };
        // Up when it accepts a connection (a bounded wait: start-up, not synchronisation of measured work).
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log =
                    std::fs::read_to_string(nginx._scratch.0.join("error.log")).unwrap_or_default();
                return Err(format!("nginx exited ({status}): {log}"));
            }
            if Instant::now() > deadline {
                return Err("nginx did not start listening within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// `name` on the PATH, or one of `fallbacks`.
fn find(name: &str, fallbacks: &[&str]) -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| fallbacks.iter().map(PathBuf::from).find(|p| p.is_file()))
        .ok_or_else(|| format!("`{name}` is needed for --docs (Debian: apt-get install {name})"))
}

/// A toolchain's documentation under ~/.rustup (or $RUSTUP_HOME): nightly's if it has some, else the first by
/// name.
fn default_docs() -> Result<PathBuf, String> {
    let home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
        .ok_or("no RUSTUP_HOME or HOME")?;
    let toolchains = home.join("toolchains");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&toolchains)
        .map_err(|e| format!("cannot list {}: {e}", toolchains.display()))?
        .flatten()
        .map(|entry| entry.path().join("share/doc/rust/html"))
        .filter(|dir| dir.join("std/index.html").is_file())
        .collect();
    found.sort();
    let nightly = found.iter().position(|dir| {
        dir.components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("nightly"))
    });
    let chosen = match nightly {
        Some(i) => Some(found.swap_remove(i)),
        None => found.into_iter().next(),
    };
    chosen.ok_or_else(|| {
        "no Rust documentation found: `rustup component add rust-docs` (or give --docs DIR)".into()
    })
}

/// Runs `command` under `/usr/bin/time` (when there is one), timing it; returns its output, seconds and peak RSS.
fn measure(
    command: &mut Command,
    what: &str,
) -> Result<(std::process::Output, f64, Option<u64>), String> {
    let time = Path::new("/usr/bin/time");
    let scratch = Scratch::new("time")?;
    let report = scratch.0.join("rss");
    let mut wrapped = if time.is_file() {
        let mut wrapped = Command::new(time);
        wrapped.arg("-f").arg("%M").arg("-o").arg(&report);
        wrapped.arg(command.get_program()).args(command.get_args());
        wrapped
    } else {
        let mut plain = Command::new(command.get_program());
        plain.args(command.get_args());
        plain
    };
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let started = Instant::now();
    let output = wrapped
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let rss = std::fs::read_to_string(&report).ok().and_then(|text| {
        text.trim()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
    });
    Ok((output, seconds, rss))
}

/// One crawl by the crawler (this benchmark re-run as the crawler, or `binary`) with `workers` workers.
fn crawler_sample(
    binary: Option<&Path>,
    url: &str,
    depth: u32,
    workers: usize,
) -> Result<Sample, String> {
    let mut command = match binary {
        Some(binary) => Command::new(binary),
        None => {
            let mut own = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            own.arg(RUN_CRAWLER);
            own
        }
    };
    command.args([
        url,
        "--depth",
        &depth.to_string(),
        "--max-pages",
        "10000000",
        "--workers",
        &workers.to_string(),
        "--timeout",
        "60s",
        "--quiet",
        "--json",
    ]);
    let (output, seconds, peak_rss_kib) = measure(&mut command, "the crawler")?;
    if !output.status.success() {
        return Err(format!(
            "the crawler failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the crawler's output is not JSON: {e}"))?;
    let pages = doc["pages"]
        .as_array()
        .ok_or("no pages in the crawler's output")?;
    let urls = pages
        .iter()
        .filter(|page| {
            page["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
        })
        .filter_map(|page| page["url"].as_str().map(str::to_owned))
        .collect();
    Ok(Sample {
        seconds,
        peak_rss_kib,
        requests: pages.len(),
        urls,
        summary: format!(
            "statuses {}, errors {}",
            doc["status_classes"], doc["errors"]
        ),
    })
}

/// One crawl by `wget -r` (one connection), requisites not fetched.
fn wget_sample(wget: &Path, url: &str, depth: u32) -> Result<Sample, String> {
    let scratch = Scratch::new("wget")?;
    let mut command = Command::new(wget);
    command
        .args(["--recursive", "--level", &depth.to_string(), "--no-verbose"])
        .args(["--no-host-directories", "--reject", REQUISITES])
        .arg("--directory-prefix")
        .arg(&scratch.0)
        .arg(url)
        .current_dir(&scratch.0);
    let (output, seconds, peak_rss_kib) = measure(&mut command, "wget")?;
    // 8: the server answered an error (a 404) somewhere, which the crawler counts too.
    if !matches!(output.status.code(), Some(0 | 8)) {
        return Err(format!(
            "wget failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // `... URL:<url> [size/size] -> "file" [1]` for a page fetched; `<url>:` then `... ERROR 404: Not Found.` for
    // an error status (which the crawler also lists).
    let log = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = log.lines().collect();
    let urls: BTreeSet<String> = lines
        .iter()
        .filter_map(|line| line.split_once("URL:"))
        .filter_map(|(_, rest)| rest.split_whitespace().next())
        .filter(|u| !u.ends_with("/robots.txt"))
        .map(str::to_owned)
        .collect();
    let failed = lines
        .windows(2)
        .filter(|pair| pair[1].contains(" ERROR "))
        .count();
    Ok(Sample {
        seconds,
        peak_rss_kib,
        requests: urls.len() + failed,
        urls,
        summary: format!("{failed} errors"),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The samples of one row of the table.
struct Row {
    tool: String,
    workers: String,
    samples: Vec<Sample>,
}

impl Row {
    fn requests(&self) -> usize {
        self.samples.first().map_or(0, |s| s.requests)
    }

    fn pages_per_s(&self) -> f64 {
        median(
            self.samples
                .iter()
                .map(|s| s.requests as f64 / s.seconds)
                .collect(),
        )
    }

    fn peak_rss_mib(&self) -> Option<f64> {
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter_map(|s| s.peak_rss_kib.map(|k| k as f64 / 1024.0))
            .collect();
        (!values.is_empty()).then(|| median(values))
    }
}

/// Runs the comparison and prints the table.
pub fn run(options: &Options) -> Result<(), String> {
    let dir = if options.dir.as_os_str() == "auto" {
        default_docs()?
    } else {
        options.dir.clone()
    };
    if !dir.join(&options.start).is_file() {
        return Err(format!("no {} under {}", options.start, dir.display()));
    }
    let wget = find("wget", &["/usr/bin/wget"])?;
    let nginx = Nginx::start(&dir)?;
    let url = nginx.url(&options.start);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Crawler vs wget -r: {} served by nginx at {}, depth {}, {cpus} CPUs, median of {} runs each{}",
        dir.display(),
        url,
        options.depth,
        options.runs,
        if Path::new("/usr/bin/time").is_file() {
            ""
        } else {
            " (no /usr/bin/time: no memory figures)"
        }
    );
    let _ = std::io::stdout().flush();

    let mut rows = vec![Row {
        tool: "wget -r".into(),
        workers: "1 conn.".into(),
        samples: Vec::new(),
    }];
    for &workers in &options.workers {
        rows.push(Row {
            tool: "crawler".into(),
            workers: workers.to_string(),
            samples: Vec::new(),
        });
        if options.baseline.is_some() {
            rows.push(Row {
                tool: "baseline".into(),
                workers: workers.to_string(),
                samples: Vec::new(),
            });
        }
    }
    // Interleaved: each round runs every row once, so that a busy moment of the machine hits all of them.
    for round in 0..options.runs {
        eprint!("round {}/{}...", round + 1, options.runs);
        rows[0]
            .samples
            .push(wget_sample(&wget, &url, options.depth)?);
        for row in rows.iter_mut().skip(1) {
            let workers: usize = row.workers.parse().map_err(|_| "a worker count")?;
            let binary = (row.tool == "baseline")
                .then_some(options.baseline.as_deref())
                .flatten();
            row.samples
                .push(crawler_sample(binary, &url, options.depth, workers)?);
        }
        eprintln!(" done");
    }

    let wget_rate = rows[0].pages_per_s();
    println!();
    println!(
        "{:<9} {:>8} {:>8} {:>9} {:>8} {:>13}",
        "tool", "workers", "requests", "pages/s", "vs wget", "peak RSS MiB"
    );
    for row in &rows {
        let rate = row.pages_per_s();
        println!(
            "{:<9} {:>8} {:>8} {:>9.0} {:>7.2}x {:>13}",
            row.tool,
            row.workers,
            row.requests(),
            rate,
            rate / wget_rate,
            row.peak_rss_mib()
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.0}"))
        );
    }
    // The same pages: every crawler run (and the baseline's) fetched exactly the same 2xx pages.
    let reference = &rows[1].samples[0].urls;
    let mut same = true;
    for row in &rows[1..] {
        for sample in &row.samples {
            if &sample.urls != reference {
                same = false;
                let only_here: Vec<_> = sample.urls.difference(reference).take(3).collect();
                let missing: Vec<_> = reference.difference(&sample.urls).take(3).collect();
                println!(
                    "DIFFERENT page set: {} with {} workers fetched {} pages ({}), the first crawler run {}; only \
                     there: {only_here:?}; not there: {missing:?}",
                    row.tool,
                    row.workers,
                    sample.urls.len(),
                    sample.summary,
                    reference.len()
                );
            }
        }
    }
    let wget_pages = &rows[0].samples[0].urls;
    let only_wget: Vec<_> = wget_pages.difference(reference).collect();
    let only_crawler: Vec<_> = reference.difference(wget_pages).collect();
    let some = |urls: &[&String]| {
        let shown: Vec<&str> = urls.iter().take(4).map(|u| u.as_str()).collect();
        format!(
            "{}{}{}",
            urls.len(),
            if urls.len() > shown.len() {
                " e.g. "
            } else {
                " "
            },
            if shown.is_empty() {
                String::new()
            } else {
                format!("{shown:?}")
            },
        )
    };
    println!(
        "Pages answered 2xx: {} in every crawler run{}; wget {}: {} in both, only wget {}, only the crawler {}",
        reference.len(),
        if same { ", the same set each time" } else { "" },
        wget_pages.len(),
        wget_pages.intersection(reference).count(),
        some(&only_wget),
        some(&only_crawler),
    );
    if !only_wget.is_empty() {
        println!(
            "(wget also follows links inside <noscript>, e.g. mdBook's <iframe src=\"toc.html\">, which the crawler, \
             like a browser running scripts, does not read)"
        );
    }
    if same {
        Ok(())
    } else {
        Err("the crawler's page sets differ between runs".into())
    }
}
