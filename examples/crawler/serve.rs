//! A small HTTP/1.1 server for GET requests on 127.0.0.1: every connection is a task on a `ThreadPoolExecutor`,
//! requests are parsed by `httparse`, connections are kept alive. It serves the demo site (and the tests' sites).
//!
//! One task per connection means one worker per open connection, so the pool is large (threads start only when
//! needed) and idle keep-alive connections are closed after `IDLE_TIMEOUT`. Dropping the server closes every open
//! connection and waits for the tasks to finish.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use concurrent_futures::ThreadPoolExecutor;

/// An idle keep-alive connection is closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many connections are served at once (more wait in the pool's queue).
pub const MAX_CONNECTIONS: usize = 512;
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A parsed request (the body, if any, is read and dropped).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Open connections, so that stopping the server can close them.
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
}

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    connections: Arc<Connections>,
    acceptor: Option<JoinHandle<()>>,
    pool: ThreadPoolExecutor,
}

impl Server {
    /// Listens on 127.0.0.1 and a free port; `handler` answers every request (on a pool thread).
    pub fn start(
        name: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let pool = ThreadPoolExecutor::builder()
            .max_workers(MAX_CONNECTIONS)
            .thread_name_prefix(name)
            .build()
            .map_err(io::Error::other)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Connections::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let acceptor = {
            let (pool, stopping, connections) =
                (pool.clone(), stopping.clone(), connections.clone());
            std::thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let id = connections.next.fetch_add(1, Ordering::Relaxed);
                        if let Ok(clone) = stream.try_clone() {
                            connections
                                .open
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(id, clone);
                        }
                        let (handler, connections) = (handler.clone(), connections.clone());
                        // After shutdown the submit fails, and the connection is dropped (closed).
                        let _ = pool.submit(move || {
                            let _ = serve_connection(stream, &*handler);
                            connections
                                .open
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&id);
                        });
                    }
                })?
        };
        Ok(Server {
            addr,
            stopping,
            connections,
            acceptor: Some(acceptor),
            pool,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor with a connection of our own.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.pool.shutdown(true);
    }
}

/// Serves requests on one connection until the client closes it, asks to, or stays idle too long.
fn serve_connection(stream: TcpStream, handler: &Handler) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        let (request, version) = match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => (
                Request {
                    method: parsed.method.unwrap_or("GET").to_owned(),
                    path: parsed.path.unwrap_or("/").to_owned(),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                },
                parsed.version.unwrap_or(1),
            ),
            _ => {
                let response = Response::new(400, "text/plain", "bad request\n");
                return write_response(&mut writer, &response, false, false);
            }
        };
        // A request body (none expected for GET) is read and dropped.
        let length: u64 = request
            .header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        io::copy(&mut (&mut reader).take(length), &mut io::sink())?;
        let connection = request.header("Connection").map(str::to_ascii_lowercase);
        let keep_alive = match version {
            0 => connection
                .as_deref()
                .is_some_and(|c| c.contains("keep-alive")),
            _ => !connection.as_deref().is_some_and(|c| c.contains("close")),
        };
        let response = handler(&request);
        write_response(&mut writer, &response, keep_alive, request.method == "HEAD")?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Reads the request line and headers, up to the empty line. `None` on a clean end of the connection.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader
            .by_ref()
            .take((MAX_HEAD_BYTES - before) as u64 + 1)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                // Blank lines before a request are allowed (RFC 9112 2.2).
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

fn write_response(
    out: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!(
        "Content-Length: {}\r\nConnection: {}\r\n\r\n",
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    let mut bytes = text.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    out.write_all(&bytes)?;
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_and_close() {
        let server = Server::start("serve-test", |request: &Request| {
            Response::new(
                200,
                "text/plain",
                format!("{} {}", request.method, request.path),
            )
        })
        .unwrap();
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two?q HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Connection: keep-alive\r\n"));
        assert!(answer.contains("\r\n\r\nGET /one"));
        assert!(answer.ends_with("\r\n\r\nGET /two?q"), "{answer}");

        let mut bad = TcpStream::connect(server.addr()).unwrap();
        bad.write_all(b"NONSENSE\r\n\r\n").unwrap();
        let mut answer = String::new();
        bad.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

        // An idle keep-alive connection does not keep the server from stopping.
        let _idle = TcpStream::connect(server.addr()).unwrap();
        drop(server);
    }
}
