//! A loopback HTTP/1.1 proxy in front of a test server: it counts and records
//! every request, measures how many are in flight at once, can add latency, and
//! injects faults (error statuses, stalls, dropped connections) by API target.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One request that reached the proxy.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// `X-Amz-Target` without the service prefix (e.g. `BatchGetSecretValue`), or
    /// `METHOD PATH` for other requests.
    pub(crate) target: String,
    /// Request headers, names lower-cased.
    pub(crate) headers: HashMap<String, String>,
    /// Request body.
    pub(crate) body: String,
    /// When it arrived.
    pub(crate) at: Instant,
}

/// What to do instead of forwarding.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Answer with this status, extra headers and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Hold the request this long, then drop the connection.
    Stall(Duration),
    /// Drop the connection without answering.
    Close,
}

impl Fault {
    /// An AWS JSON-protocol error response.
    pub(crate) fn aws(status: u16, code: &str, message: &str) -> Fault {
        Fault::Respond {
            status,
            headers: vec![("x-amzn-errortype".into(), code.into())],
            body: serde_json::json!({ "__type": code, "message": message }).to_string(),
        }
    }
}

struct Rule {
    target: String,
    body: Option<String>,
    remaining: usize,
    fault: Fault,
}

struct State {
    upstream: SocketAddr,
    delay: Duration,
    calls: Mutex<Vec<Call>>,
    rules: Mutex<Vec<Rule>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running proxy; stops accepting when dropped.
pub(crate) struct Proxy {
    /// Where clients connect.
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `upstream` that adds `delay` before forwarding each request.
    pub(crate) fn start(upstream: SocketAddr, delay: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream,
            delay,
            calls: Mutex::new(Vec::new()),
            rules: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let st = st.clone();
                    thread::spawn(move || serve(conn, &st));
                }
            }
        });
        Proxy { addr, state, stop }
    }

    /// The URL to give clients (`AWS_ENDPOINT_URL`, `VAULT_ADDR`, …).
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes the next `times` requests whose target contains `target` fail with `fault`.
    pub(crate) fn inject(&self, target: &str, times: usize, fault: Fault) {
        self.push_rule(target, None, times, fault);
    }

    /// Like [`Proxy::inject`], for requests whose body also contains `body`.
    pub(crate) fn inject_matching(&self, target: &str, body: &str, times: usize, fault: Fault) {
        self.push_rule(target, Some(body), times, fault);
    }

    fn push_rule(&self, target: &str, body: Option<&str>, times: usize, fault: Fault) {
        self.state.rules.lock().expect("rules").push(Rule {
            target: target.into(),
            body: body.map(str::to_owned),
            remaining: times,
            fault,
        });
    }

    /// Every request so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().expect("calls").clone()
    }

    /// How many requests had a target containing `target`.
    pub(crate) fn count(&self, target: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.target.contains(target))
            .count()
    }

    /// Most requests that were in flight at the same time.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Forgets the recorded calls and the in-flight maximum.
    pub(crate) fn reset(&self) {
        self.state.calls.lock().expect("calls").clear();
        self.state.max_in_flight.store(0, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A parsed HTTP/1.1 message head and body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one message; `None` at a clean end of stream. Bodies are delimited by
/// Content-Length, chunked encoding, or (responses only) the end of the stream.
fn read_message(r: &mut impl BufRead, response: bool) -> Option<Message> {
    let mut start = String::new();
    if r.read_line(&mut start).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':')?;
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let mut m = Message {
        start: start.trim_end().to_owned(),
        headers,
        body: Vec::new(),
    };
    if let Some(len) = m.header("content-length") {
        let len: usize = len.parse().ok()?;
        m.body.resize(len, 0);
        r.read_exact(&mut m.body).ok()?;
    } else if m
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            m.body.extend_from_slice(&chunk[..size]);
        }
    } else if response {
        r.read_to_end(&mut m.body).ok()?;
    }
    Some(m)
}

fn write_response(w: &mut impl Write, status: &str, headers: &[(String, String)], body: &[u8]) {
    let mut out = format!("{status}\r\n");
    for (n, v) in headers {
        let skip = ["content-length", "transfer-encoding", "connection"];
        if !skip.iter().any(|s| n.eq_ignore_ascii_case(s)) {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    // One write: a separate write for the body would wait for the client's
    // delayed ACK (Nagle), adding about 40 ms on a reused connection.
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    let _ = w.write_all(&bytes);
    let _ = w.flush();
}

fn serve(conn: TcpStream, st: &State) {
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Some(req) = read_message(&mut reader, false) {
        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let keep = handle(&req, &mut writer, st);
        st.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep {
            return;
        }
    }
}

/// Answers one request; `false` when the connection must be dropped.
fn handle(req: &Message, writer: &mut TcpStream, st: &State) -> bool {
    let target = match req.header("x-amz-target") {
        Some(t) => t.rsplit('.').next().unwrap_or(t).to_owned(),
        None => req
            .start
            .rsplit_once(' ')
            .map_or(req.start.clone(), |(a, _)| a.to_owned()),
    };
    st.calls.lock().expect("calls").push(Call {
        target: target.clone(),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        at: Instant::now(),
    });
    if !st.delay.is_zero() {
        thread::sleep(st.delay);
    }
    let body = String::from_utf8_lossy(&req.body);
    let fault = {
        let mut rules = st.rules.lock().expect("rules");
        rules
            .iter_mut()
            .find(|r| {
                r.remaining > 0
                    && target.contains(&r.target)
                    && r.body.as_ref().is_none_or(|b| body.contains(b.as_str()))
            })
            .map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            })
    };
    match fault {
        Some(Fault::Respond {
            status,
            headers,
            body,
        }) => {
            let mut hs = headers;
            if !hs
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                hs.push(("content-type".into(), "application/x-amz-json-1.1".into()));
            }
            write_response(
                writer,
                &format!("HTTP/1.1 {status} Fault"),
                &hs,
                body.as_bytes(),
            );
            true
        }
        Some(Fault::Stall(d)) => {
            thread::sleep(d);
            false
        }
        Some(Fault::Close) => false,
        None => forward(req, writer, st),
    }
}

fn forward(req: &Message, writer: &mut TcpStream, st: &State) -> bool {
    let Ok(mut up) = TcpStream::connect(st.upstream) else {
        return false;
    };
    let _ = up.set_nodelay(true);
    let mut head = format!("{}\r\n", req.start);
    for (n, v) in &req.headers {
        if !n.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    if up.write_all(head.as_bytes()).is_err() || up.write_all(&req.body).is_err() {
        return false;
    }
    let Some(resp) = read_message(&mut BufReader::new(up), true) else {
        return false;
    };
    write_response(writer, &resp.start, &resp.headers, &resp.body);
    true
}
