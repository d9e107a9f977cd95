//! Benchmark: keyfill's `aws` provider against a sequential boto3 loop.
//!
//! A real `moto_server` holds 100 distinct secrets. keyfill renders a config with
//! 100 references to them through a loopback proxy that adds 50 ms to every
//! request; the baseline is a Python loop doing one boto3 `GetSecretValue` per
//! secret through a second proxy with the same delay. Prints wall times, API
//! call counts, round trips and the speed-up. It is not a test: it has no
//! pass/fail exit status, but it refuses to time an error path (a wrong value or
//! a failed run panics). Both also run through a proxy with no added delay, to
//! show the fixed costs (process start, SDK set-up, moto itself).
//!
//! Run with `cargo bench --bench aws_fetch`. Optional knob: `AWS_FETCH_RUNS`
//! (timed runs per measurement, default 5).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::moto::moto;
use support::proxy::Proxy;
use support::{aws_env, keyfill};

const REGION: &str = "us-east-1";
/// Distinct secrets, each referenced once.
const SECRETS: usize = 100;
/// Latency the proxy adds to every request: one simulated round trip.
const DELAY: Duration = Duration::from_millis(50);
/// Target: keyfill's median wall time is at most this many round trips.
const MAX_ROUND_TRIPS: u32 = 4;
/// Target: keyfill is at least this many times faster than the baseline.
const MIN_SPEEDUP: f64 = 20.0;

/// One boto3 client, then one `GetSecretValue` per secret; the loop alone is
/// timed inside Python and printed as JSON with the number of wrong values.
const BASELINE: &str = r#"
import json, os, sys, time
import boto3
prefix, n = sys.argv[1], int(sys.argv[2])
client = boto3.client(
    "secretsmanager",
    region_name=os.environ["AWS_REGION"],
    endpoint_url=os.environ["AWS_ENDPOINT_URL"],
)
t0 = time.perf_counter()
values = [client.get_secret_value(SecretId=f"{prefix}/s{i}")["SecretString"] for i in range(n)]
loop = time.perf_counter() - t0
bad = sum(1 for i, v in enumerate(values) if v != f"value-{i}")
print(json.dumps({"loop_s": loop, "bad": bad}))
"#;

/// What the proxy saw during one run.
#[derive(Clone, PartialEq, Eq)]
struct Calls {
    total: usize,
    by_target: BTreeMap<String, usize>,
    /// Secret ids per BatchGetSecretValue call, largest first.
    batch_sizes: Vec<usize>,
    max_in_flight: usize,
}

impl Calls {
    fn take(proxy: &Proxy) -> Calls {
        let calls = proxy.calls();
        let mut by_target = BTreeMap::new();
        let mut batch_sizes = Vec::new();
        for c in &calls {
            *by_target.entry(c.target.clone()).or_insert(0) += 1;
            if c.target == "BatchGetSecretValue" {
                let v: serde_json::Value = serde_json::from_str(&c.body).expect("JSON body");
                batch_sizes.push(v["SecretIdList"].as_array().map_or(0, Vec::len));
            }
        }
        batch_sizes.sort_unstable_by(|a, b| b.cmp(a));
        Calls {
            total: calls.len(),
            by_target,
            batch_sizes,
            max_in_flight: proxy.max_in_flight(),
        }
    }

    /// When the first and the last request reached the proxy, in ms after `t0`.
    fn arrivals(proxy: &Proxy, t0: Instant) -> (f64, f64) {
        let at: Vec<f64> = proxy
            .calls()
            .iter()
            .map(|c| ms(c.at.duration_since(t0)))
            .collect();
        let first = at.iter().copied().fold(f64::INFINITY, f64::min);
        let last = at.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (first, last)
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .by_target
            .iter()
            .map(|(t, n)| format!("{n}x {t}"))
            .collect();
        let sizes = if self.batch_sizes.is_empty() {
            String::new()
        } else {
            let v: Vec<String> = self.batch_sizes.iter().map(usize::to_string).collect();
            format!(" of {} ids", v.join("+"))
        };
        format!(
            "{} ({}{sizes}; at most {} in flight)",
            self.total,
            parts.join(", "),
            self.max_in_flight
        )
    }
}

/// Timings of the runs of one measurement, in milliseconds.
struct Sample(Vec<f64>);

impl Sample {
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    fn all(&self) -> String {
        let v: Vec<String> = self.0.iter().map(|t| format!("{t:.0}")).collect();
        v.join(", ")
    }
}

/// The call counts of all runs, which must agree (a run that made a different
/// number of calls is reported, not averaged away).
fn calls_summary(runs: &[Calls]) -> String {
    let first = &runs[0];
    if runs.iter().all(|c| c == first) {
        first.describe()
    } else {
        let v: Vec<String> = runs.iter().map(Calls::describe).collect();
        format!("VARIES between runs: {}", v.join(" | "))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One timed keyfill run.
struct KeyfillRun {
    /// Wall time of the whole process, ms.
    wall: f64,
    calls: Calls,
    /// When the first and last requests reached the proxy, ms after the spawn.
    arrivals: (f64, f64),
}

/// Renders `config.yaml` in `dir` through `proxy`. Panics unless every value came
/// back right.
fn run_keyfill(dir: &std::path::Path, proxy: &Proxy) -> KeyfillRun {
    proxy.reset();
    let vars = aws_env(&proxy.url());
    let t0 = Instant::now();
    let r = keyfill(dir, &["render", "config.yaml"], &vars);
    let wall = ms(t0.elapsed());
    assert_eq!(r.code, 0, "keyfill failed: {}", r.stderr);
    for i in 0..SECRETS {
        assert!(
            r.stdout.contains(&format!("k{i}: value-{i}\n")),
            "keyfill output lacks secret {i}:\n{}",
            r.stdout
        );
    }
    KeyfillRun {
        wall,
        calls: Calls::take(proxy),
        arrivals: Calls::arrivals(proxy, t0),
    }
}

/// Runs the boto3 loop for the first `n` secrets through `proxy`: the loop's wall
/// time measured inside Python, the whole process's wall time, and the calls.
fn run_baseline(python: &str, prefix: &str, n: usize, proxy: &Proxy) -> (f64, f64, Calls) {
    proxy.reset();
    let mut cmd = Command::new(python);
    cmd.args(["-c", BASELINE, prefix, &n.to_string()])
        .stdin(Stdio::null());
    // The same isolation as keyfill's runs: no AWS setting of the host leaks in.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(aws_env(&proxy.url()));
    let t0 = Instant::now();
    let out = cmd.output().expect("run python3");
    let process = ms(t0.elapsed());
    assert!(
        out.status.success(),
        "baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("baseline JSON");
    assert_eq!(v["bad"], 0, "the baseline read wrong values");
    let loop_ms = v["loop_s"].as_f64().expect("loop_s") * 1000.0;
    (loop_ms, process, Calls::take(proxy))
}

/// The real interpreter behind `python3` (not a pyenv or similar shim, whose own
/// start-up would be charged to the baseline).
fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for the baseline");
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!exe.is_empty(), "python3 did not report sys.executable");
    exe
}

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "MISSED"
    }
}

fn main() {
    let runs: usize = std::env::var("AWS_FETCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5);
    let python = python();
    let delay_ms = ms(DELAY);

    eprintln!("== starting moto_server and creating {SECRETS} secrets (directly, no proxy)");
    let m = moto();
    let prefix = format!("bench-{}", std::process::id());
    let mut config = String::new();
    for i in 0..SECRETS {
        m.create(REGION, &format!("{prefix}/s{i}"), &format!("value-{i}"));
        let _ = writeln!(config, "k{i}: <<aws|{prefix}/s{i}>>");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.yaml"), &config).expect("write config");

    // boto3 reuses one keep-alive connection; the proxy writes each response at
    // once with TCP_NODELAY, so no delayed ACK adds to its calls.
    let kf_proxy = Proxy::start(m.addr, DELAY);
    let py_proxy = Proxy::start(m.addr, DELAY);
    let floor_proxy = Proxy::start(m.addr, Duration::ZERO);

    eprintln!("== keyfill: 1 warm-up + {runs} timed runs through the +50 ms proxy");
    let _ = run_keyfill(dir.path(), &kf_proxy);
    let kf_runs: Vec<KeyfillRun> = (0..runs)
        .map(|_| run_keyfill(dir.path(), &kf_proxy))
        .collect();
    let kf = Sample(kf_runs.iter().map(|r| r.wall).collect());
    let kf_calls: Vec<Calls> = kf_runs.iter().map(|r| r.calls.clone()).collect();
    let kf_first = Sample(kf_runs.iter().map(|r| r.arrivals.0).collect());
    let kf_last = Sample(kf_runs.iter().map(|r| r.arrivals.1).collect());

    eprintln!("== keyfill: {runs} timed runs through a proxy with no added delay (floor)");
    let floor_runs: Vec<KeyfillRun> = (0..runs)
        .map(|_| run_keyfill(dir.path(), &floor_proxy))
        .collect();
    let floor = Sample(floor_runs.iter().map(|r| r.wall).collect());
    let floor_calls: Vec<Calls> = floor_runs.iter().map(|r| r.calls.clone()).collect();

    eprintln!(
        "== boto3 baseline ({python}): 1 warm-up (1 secret) + {runs} timed runs through the +50 ms proxy"
    );
    let _ = run_baseline(&python, &prefix, 1, &py_proxy);
    let mut py_loop = Vec::new();
    let mut py_proc = Vec::new();
    let mut py_calls = Vec::new();
    for _ in 0..runs {
        let (l, p, c) = run_baseline(&python, &prefix, SECRETS, &py_proxy);
        py_loop.push(l);
        py_proc.push(p);
        py_calls.push(c);
    }
    let (py_loop, py_proc) = (Sample(py_loop), Sample(py_proc));

    eprintln!("== boto3 baseline: {runs} timed runs through a proxy with no added delay (floor)");
    let mut pyf_loop = Vec::new();
    let mut pyf_calls = Vec::new();
    for _ in 0..runs {
        let (l, _, c) = run_baseline(&python, &prefix, SECRETS, &floor_proxy);
        pyf_loop.push(l);
        pyf_calls.push(c);
    }
    let pyf_loop = Sample(pyf_loop);

    let kf_med = kf.median();
    let speedup_loop = py_loop.median() / kf_med;
    let speedup_proc = py_proc.median() / kf_med;
    let rt = |t: f64| t / delay_ms;

    println!();
    println!(
        "aws_fetch: {SECRETS} distinct secrets, {SECRETS} references, +{delay_ms:.0} ms per request at the proxy, \
         {runs} timed runs each ({} cores)",
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
    );
    println!();
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>12}  API calls per run",
        "measurement", "median ms", "min ms", "max ms", "round trips"
    );
    println!("{}", "-".repeat(120));
    let row = |name: &str, s: &Sample, calls: &str| {
        println!(
            "{name:<40} {:>9.1} {:>9.1} {:>9.1} {:>12.2}  {calls}",
            s.median(),
            s.min(),
            s.max(),
            rt(s.median())
        );
    };
    row(
        "keyfill render, whole process",
        &kf,
        &calls_summary(&kf_calls),
    );
    row(
        "boto3 loop, timed inside python",
        &py_loop,
        &calls_summary(&py_calls),
    );
    row(
        "boto3 script, whole python process",
        &py_proc,
        "(same runs as the line above)",
    );
    row(
        "keyfill render, no added delay (floor)",
        &floor,
        &calls_summary(&floor_calls),
    );
    row(
        "boto3 loop, no added delay (floor)",
        &pyf_loop,
        &calls_summary(&pyf_calls),
    );
    println!();
    println!("runs, ms: keyfill [{}]", kf.all());
    println!("          boto3 loop [{}]", py_loop.all());
    println!("          boto3 process [{}]", py_proc.all());
    println!("          keyfill floor [{}]", floor.all());
    println!("          boto3 loop floor [{}]", pyf_loop.all());
    println!(
        "keyfill's requests reached the proxy {:.1}..{:.1} ms after its spawn (medians of first..last)",
        kf_first.median(),
        kf_last.median()
    );
    println!("round trips = median wall ms / {delay_ms:.0} ms");
    println!();
    println!("speed-up (boto3 loop median / keyfill median):    {speedup_loop:.1}x");
    println!("speed-up (boto3 process median / keyfill median): {speedup_proc:.1}x");
    println!();
    let budget = f64::from(MAX_ROUND_TRIPS) * delay_ms;
    println!(
        "target: keyfill median wall <= {MAX_ROUND_TRIPS} x {delay_ms:.0} ms = {budget:.0} ms: \
         {kf_med:.1} ms ({:.2} round trips) -> {}",
        rt(kf_med),
        verdict(kf_med <= budget)
    );
    println!(
        "target: keyfill >= {MIN_SPEEDUP:.0}x faster than the baseline, judged on the boto3 loop alone \
         (the stricter figure): {speedup_loop:.1}x -> {}",
        verdict(speedup_loop >= MIN_SPEEDUP)
    );
}
