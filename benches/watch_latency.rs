//! Benchmark: how fast `keyfill watch` follows an edit, and what it costs idle.
//!
//! A real `keyfill watch` process (the release binary) watches a small config
//! with three env secrets. Each of 50 saves is made the way editors save: the
//! new content goes to a temporary file in the same folder, which is renamed
//! over the config. The latency of a save is the time from that rename to the
//! output file holding the new render, polled every 0.5 ms. Runs with the
//! default `--debounce 50ms` and, to show the fixed part, with `--debounce
//! 10ms`. Then the idle process is left alone for 10 s and the CPU time it used
//! (utime + stime from `/proc/PID/stat`) and its context switches are read.
//!
//! It prints figures and whether two targets are met (median latency at most
//! 100 ms with the default debounce; idle CPU about zero); it is not a test and
//! has no pass/fail exit status, but it refuses to time an error path (a wrong
//! output, a failed or missing render line, panics).
//!
//! Run with `cargo bench --bench watch_latency`. Optional knobs:
//! `WATCH_LATENCY_SAVES` (saves per run, default 50), `WATCH_IDLE_SECS`
//! (default 10).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::watch::{wait_for_file, Watch};

/// Poll interval for the output while timing.
const POLL: Duration = Duration::from_micros(500);
/// Pause between saves: each save is its own burst, and the wake-up caused by
/// the previous render's own reads of the input has passed.
const PAUSE: Duration = Duration::from_millis(150);
/// Target: median edit-to-output latency with the default debounce.
const TARGET_MS: f64 = 100.0;

const ENV: &[(&str, &str)] = &[
    ("DB_PASSWORD", "s3cr3t-pw"),
    ("API_KEY", "k-0123456789"),
    ("SLACK_TOKEN", "xoxb-not-a-real-token"),
];

/// A small service config whose rendering shows `version`.
fn config(version: usize) -> String {
    let mut s = String::from(
        "secrets:\n  DB_USER: app\n  DB_PASSWORD: { env: DB_PASSWORD }\n  API_KEY: { env: API_KEY }\n  \
         SLACK_TOKEN: { env: SLACK_TOKEN }\n  DB_URL: \"postgres://$<DB_USER>:$<DB_PASSWORD>@db:5432/app\"\n\n",
    );
    let _ = write!(
        s,
        "# service config\nrelease: {version}\ndatabase:\n  url: $<DB_URL>\n  pool: 10\n\
         integrations:\n  - name: slack\n    token: \"$<SLACK_TOKEN>\"\n  - name: api\n    key: $<API_KEY>\n\
         features: [a, b, c]\nlimits: {{ cpu: 500m, memory: 256Mi }}\n"
    );
    s
}

fn rendered(version: usize) -> String {
    format!(
        "\n# service config\nrelease: {version}\ndatabase:\n  url: postgres://app:s3cr3t-pw@db:5432/app\n  pool: 10\n\
         integrations:\n  - name: slack\n    token: \"xoxb-not-a-real-token\"\n  - name: api\n    key: k-0123456789\n\
         features: [a, b, c]\nlimits: {{ cpu: 500m, memory: 256Mi }}\n"
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latencies in milliseconds.
struct Sample(Vec<f64>);

impl Sample {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(&self) -> f64 {
        let v = self.sorted();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    /// Nearest-rank percentile.
    fn pct(&self, p: f64) -> f64 {
        let v = self.sorted();
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    fn min(&self) -> f64 {
        self.sorted()[0]
    }

    fn max(&self) -> f64 {
        *self.sorted().last().expect("not empty")
    }
}

/// A watch process on `dir/conf/app.yaml` writing `dir/rendered/out.yaml`.
fn start(dir: &Path, extra: &[&str]) -> Watch {
    fs::create_dir_all(dir.join("conf")).expect("mkdir");
    fs::create_dir_all(dir.join("rendered")).expect("mkdir");
    fs::write(dir.join("conf/app.yaml"), config(0)).expect("write config");
    let mut args = vec!["watch", "conf/app.yaml", "-o", "rendered/out.yaml"];
    args.extend_from_slice(extra);
    let mut w = Watch::start(dir, &args, ENV);
    w.wait_renders(1, Duration::from_secs(10));
    wait_for_file(
        &dir.join("rendered/out.yaml"),
        rendered(0).as_bytes(),
        Duration::from_secs(10),
        POLL,
    )
    .expect("first render");
    w
}

/// `saves` editor saves (after 3 untimed ones); the latency of each.
fn latencies(dir: &Path, w: &mut Watch, saves: usize) -> Sample {
    let input = dir.join("conf/app.yaml");
    let tmp = dir.join("conf/.app.yaml.swp-new");
    let out = dir.join("rendered/out.yaml");
    let mut sample = Vec::new();
    for i in 1..=saves + 3 {
        // A little deterministic jitter, so saves do not fall in step with anything.
        std::thread::sleep(PAUSE + Duration::from_millis((i as u64 * 7) % 20));
        let before = w.renders();
        fs::write(&tmp, config(i)).expect("write temporary file");
        let t0 = Instant::now();
        fs::rename(&tmp, &input).expect("rename over the config");
        if wait_for_file(&out, rendered(i).as_bytes(), Duration::from_secs(10), POLL).is_err() {
            panic!("save {i} was not rendered\n{}", w.stderr());
        }
        let took = t0.elapsed();
        // Exactly one render for the save, and it wrote.
        w.wait_renders(before + 1, Duration::from_secs(10));
        let line = &w.render_lines()[before];
        assert!(
            line.ends_with(" written"),
            "save {i}: unexpected render line `{line}`"
        );
        if i > 3 {
            sample.push(ms(took));
        }
    }
    std::thread::sleep(PAUSE);
    let lines = w.render_lines();
    assert_eq!(
        lines.len(),
        saves + 4,
        "one render per save expected:\n{}",
        lines.join("\n")
    );
    Sample(sample)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot say).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn row(name: &str, s: &Sample) {
    println!(
        "{name:<34} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        s.median(),
        s.min(),
        s.pct(90.0),
        s.max(),
        s.0.iter().sum::<f64>() / s.0.len() as f64
    );
}

fn main() {
    let saves = knob("WATCH_LATENCY_SAVES", 50);
    let idle_secs = knob("WATCH_IDLE_SECS", 10);
    let hz = clock_ticks();

    eprintln!("== default --debounce (50ms): 3 warm-up + {saves} timed saves");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut w = start(dir.path(), &[]);
    let default = latencies(dir.path(), &mut w, saves);

    eprintln!("== idle for {idle_secs} s");
    std::thread::sleep(Duration::from_secs(1));
    let (ticks0, switches0, renders0) = (w.cpu_ticks(), w.context_switches(), w.renders());
    std::thread::sleep(Duration::from_secs(idle_secs as u64));
    let (ticks1, switches1, renders1) = (w.cpu_ticks(), w.context_switches(), w.renders());
    let (fds, threads, rss) = (w.fds(), w.threads(), rss_kib(w.pid()));
    let total_ticks = ticks1;
    drop(w);

    eprintln!("== --debounce 10ms: 3 warm-up + {saves} timed saves");
    let dir10 = tempfile::tempdir().expect("temp dir");
    let mut w10 = start(dir10.path(), &["--debounce", "10ms"]);
    let fast = latencies(dir10.path(), &mut w10, saves);
    drop(w10);

    let idle_ticks = ticks1 - ticks0;
    let idle_ms = idle_ticks as f64 * 1000.0 / hz as f64;
    println!();
    println!(
        "watch_latency: {saves} editor saves (temporary file renamed over the config) per run, \
         output polled every {:.1} ms ({} cores)",
        ms(POLL),
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
    );
    println!();
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "edit-to-output latency, ms", "median", "min", "p90", "max", "mean"
    );
    println!("{}", "-".repeat(34 + 5 * 9));
    row("--debounce 50ms (default)", &default);
    row("--debounce 10ms", &fast);
    println!();
    let round = |s: &Sample| {
        s.0.iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("runs, ms (50ms): [{}]", round(&default));
    println!("runs, ms (10ms): [{}]", round(&fast));
    println!();
    println!(
        "idle {idle_secs} s (default flags, after the saves): cpu {idle_ticks} ticks = {idle_ms:.0} ms \
         (1 tick = {:.0} ms), context switches {}, renders {}; \
         process total {total_ticks} ticks, {fds} fds, {threads} threads, RSS {:.1} MiB",
        1000.0 / hz as f64,
        switches1 - switches0,
        renders1 - renders0,
        rss as f64 / 1024.0
    );
    println!();
    let met = |ok: bool| if ok { "MET" } else { "MISSED" };
    println!(
        "target: median latency <= {TARGET_MS:.0} ms with the default 50 ms debounce: {:.1} ms -> {}",
        default.median(),
        met(default.median() <= TARGET_MS)
    );
    println!(
        "target: idle CPU about 0 over {idle_secs} s (at most 1 tick): {idle_ticks} ticks -> {}",
        met(idle_ticks <= 1)
    );
}
