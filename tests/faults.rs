//! Faults during a write: the output is always the old or the new bytes, never a
//! mix; a SIGTERM leaves no temporary file and still ends the process by that
//! signal; a read-only folder leaves the old output intact.

use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keyfill");

/// A config of about 2 MB whose rendering depends on `KF_VERSION`.
fn big_config(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("secrets:\n  V: { env: KF_VERSION }\n");
    for i in 0..40_000 {
        text.push_str(&format!(
            "item_{i}:\n  version: $<V>\n  note: \"entry {i} with some padding text\"\n"
        ));
    }
    let p = dir.join("big.yaml");
    fs::write(&p, text).expect("write config");
    p
}

fn render_once(config: &Path, out: &Path, version: &str) {
    let st = Command::new(BIN)
        .args(["render", "-o"])
        .arg(out)
        .arg(config)
        .env("KF_VERSION", version)
        .status()
        .expect("run keyfill");
    assert!(st.success(), "render {version} failed");
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".keyfill-"))
        .collect()
}

/// Cheap deterministic jitter (no rand dependency): a few ms steps over the run.
fn delay(i: u64) -> Duration {
    Duration::from_millis((i * 37 + 11) % 400)
}

fn interrupt(signal: &str, rounds: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = big_config(dir.path());
    let out = dir.path().join("out.yaml");
    render_once(&config, &out, "aaaa");
    let old = fs::read(&out).expect("old");
    render_once(&config, &out, "bbbb");
    let new = fs::read(&out).expect("new");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut killed = 0;
    for i in 0..rounds {
        assert!(Instant::now() < deadline, "fault test ran out of time");
        // Alternate the target so each run really has to write.
        let (from, to, version) = if i % 2 == 0 {
            (&new, &old, "aaaa")
        } else {
            (&old, &new, "bbbb")
        };
        fs::write(&out, from).expect("reset");
        let mut child = Command::new(BIN)
            .args(["render", "-o"])
            .arg(&out)
            .arg(&config)
            .env("KF_VERSION", version)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay(i));
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        let status = child.wait().expect("wait");
        let now = fs::read(&out).expect("output must still exist");
        assert!(
            now == *from || now == *to,
            "round {i}: output is neither old nor new ({} bytes)",
            now.len()
        );
        if let Some(sig) = status.signal() {
            killed += 1;
            if signal == "-TERM" {
                assert_eq!(sig, 15, "round {i}: died of signal {sig}");
            }
        } else {
            assert!(status.success(), "round {i}: {status}");
            assert_eq!(
                now, *to,
                "round {i}: a finished render must leave the new output"
            );
        }
        if signal == "-TERM" {
            assert_eq!(
                leftovers(dir.path()),
                Vec::<String>::new(),
                "round {i}: temporary file left behind"
            );
        } else {
            for l in leftovers(dir.path()) {
                let _ = fs::remove_file(dir.path().join(l));
            }
        }
    }
    // The jitter must actually interrupt some renders, or this proves nothing.
    assert!(killed > 0, "no render was interrupted; widen the delays");
}

#[test]
fn sigterm_during_renders_leaves_old_or_new_and_no_temp_file() {
    interrupt("-TERM", 30);
}

#[test]
fn sigkill_during_renders_leaves_old_or_new() {
    interrupt("-KILL", 30);
}

#[test]
fn unwritable_targets_exit_6_and_keep_what_was_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.yaml");
    fs::write(&config, "secrets:\n  A: x\nk: $<A>\n").expect("write");
    let run = |out: &Path| {
        Command::new(BIN)
            .args(["render", "-o"])
            .arg(out)
            .arg(&config)
            .stderr(Stdio::null())
            .status()
            .expect("run")
            .code()
    };
    // The folder is a regular file (works as root too, unlike permissions).
    let blocker = dir.path().join("file");
    fs::write(&blocker, "old").expect("write");
    assert_eq!(run(&blocker.join("out.yaml")), Some(6));
    assert_eq!(fs::read_to_string(&blocker).expect("read"), "old");
    // The target is a directory: refused, and left as it was.
    let target = dir.path().join("target");
    fs::create_dir(&target).expect("mkdir");
    fs::write(target.join("keep"), "k").expect("write");
    assert_eq!(run(&target), Some(6));
    assert_eq!(fs::read_to_string(target.join("keep")).expect("read"), "k");
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}
