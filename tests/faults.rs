//! Faults during a write: the output is always the old or the new bytes, never a
//! mix; a SIGTERM leaves no temporary file and still ends the process by that
//! signal; a SIGKILL's temporary file is gone after the next run; a file-size
//! limit is exit 6; a read-only folder leaves the old output intact.
//!
//! Also what `-o` may name (SPEC §5): symlinks followed to their final target,
//! FIFOs, devices and `/dev/stdout` written through, an input refused, and the
//! mode and owner enforced on every write.

use std::fs;
use std::os::unix::fs::FileTypeExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{command, scrub, BIN};

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
    let st = command()
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
        let mut child = command()
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
            // A SIGKILLed run cannot clean up; the next run's sweep takes what
            // any earlier round left, so at most this round's file is here.
            let left = leftovers(dir.path());
            assert!(
                left.len() <= 1,
                "round {i}: earlier temps not swept: {left:?}"
            );
        }
    }
    // The jitter must actually interrupt some renders, or this proves nothing.
    assert!(killed > 0, "no render was interrupted; widen the delays");
    if signal == "-KILL" {
        // Also one a dead run surely left (unlocked), whatever the timing did.
        fs::write(dir.path().join(".keyfill-dead0.tmp"), "partial").expect("plant");
        let before = fs::read(&out).expect("output");
        let version = if before == new { "aaaa" } else { "bbbb" };
        render_once(&config, &out, version);
        assert_eq!(
            leftovers(dir.path()),
            Vec::<String>::new(),
            "stray temp after the next run"
        );
        let after = fs::read(&out).expect("output");
        assert!(
            after == old || after == new,
            "output is neither old nor new"
        );
    }
}

#[test]
fn sigterm_during_renders_leaves_old_or_new_and_no_temp_file() {
    interrupt("-TERM", 30);
}

#[test]
fn sigkill_leaves_old_or_new_and_no_stray_temp_after_next_run() {
    interrupt("-KILL", 30);
}

#[test]
fn unwritable_targets_exit_6_and_keep_what_was_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.yaml");
    fs::write(&config, "secrets:\n  A: x\nk: $<A>\n").expect("write");
    let run = |out: &Path| {
        command()
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
    // A link to a directory is the directory.
    std::os::unix::fs::symlink("target", dir.path().join("dirlink")).expect("link");
    assert_eq!(run(&dir.path().join("dirlink")), Some(6));
    assert!(fs::symlink_metadata(dir.path().join("dirlink"))
        .expect("link")
        .file_type()
        .is_symlink());
}

/// Runs `sh -c SCRIPT` in `dir` with `$K` the keyfill binary and `KA` set.
fn sh(dir: &Path, script: &str, value: &str) -> std::process::Output {
    scrub(&mut Command::new("sh"))
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("K", BIN)
        .env("KA", value)
        .output()
        .expect("run sh")
}

/// A folder with `c.yaml`, whose one secret is the env var `KA`.
fn small() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("c.yaml"),
        "secrets:\n  A: { env: KA }\nk: $<A>\n",
    )
    .expect("write");
    dir
}

fn is_link(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn sigxfsz_leaves_old_output_and_no_temp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = big_config(dir.path());
    let out = dir.path().join("out.yaml");
    render_once(&config, &out, "aaaa");
    let old = fs::read(&out).expect("old");
    // 100 blocks (at most 100 KiB) is far below the 2 MB output.
    let o = sh(
        dir.path(),
        "ulimit -f 100 && KF_VERSION=bbbb exec \"$K\" render -o out.yaml big.yaml",
        "",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.signal(), None, "died of a signal: {err}");
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(
        err.contains("File too large") && err.contains("ulimit -f"),
        "{err}"
    );
    assert_eq!(fs::read(&out).expect("output"), old);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn output_symlink_is_followed_and_the_link_kept() {
    let dir = small();
    let d = dir.path();
    fs::create_dir(d.join("real")).expect("mkdir");
    // out.yaml -> link2 -> real/target.yaml (relative to the link's folder),
    // dangling at first: the final target is created, as `>` would.
    std::os::unix::fs::symlink("real/target.yaml", d.join("link2")).expect("link");
    std::os::unix::fs::symlink("link2", d.join("out.yaml")).expect("link");
    let mut last_ino = 0;
    for (i, value) in ["one", "two", "two"].into_iter().enumerate() {
        let o = sh(d, "\"$K\" render -o out.yaml --mode 0640 c.yaml", value);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(is_link(&d.join("out.yaml")) && is_link(&d.join("link2")));
        let target = d.join("real/target.yaml");
        assert_eq!(
            fs::read_to_string(&target).expect("target"),
            format!("k: {value}\n")
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&target).expect("meta").permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);
        // Unchanged bytes are not rewritten through the link either.
        use std::os::unix::fs::MetadataExt as _;
        let ino = fs::metadata(&target).expect("meta").ino();
        assert_eq!(ino == last_ino, i == 2, "round {i}");
        last_ino = ino;
        assert_eq!(leftovers(d), Vec::<String>::new());
        assert_eq!(leftovers(&d.join("real")), Vec::<String>::new());
    }
}

#[test]
fn output_dev_stdout_is_written_through() {
    let dir = small();
    let d = dir.path();
    // stdout a regular file: written through the descriptor where it stands,
    // /dev/stdout stays the link it was.
    let o = sh(
        d,
        "{ echo start; \"$K\" render -o /dev/stdout c.yaml; \"$K\" render -o /dev/stderr c.yaml 2>&1; echo end; } > log",
        "v1",
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        fs::read_to_string(d.join("log")).expect("log"),
        "start\nk: v1\nk: v1\nend\n"
    );
    assert!(
        is_link(Path::new("/dev/stdout")),
        "/dev/stdout was replaced"
    );
    // stdout a pipe.
    let o = sh(d, "\"$K\" render -o /dev/stdout c.yaml | cat", "v2");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "k: v2\n");
    assert_eq!(leftovers(d), Vec::<String>::new());
}

#[test]
fn output_fifo_is_written_through_and_waits_for_a_reader_until_the_timeout() {
    let dir = small();
    let d = dir.path();
    let o = sh(
        d,
        "mkfifo f && { cat f > got & \"$K\" render -o f c.yaml; st=$?; wait; exit $st; }",
        "v1",
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(fs::read_to_string(d.join("got")).expect("got"), "k: v1\n");
    assert!(fs::symlink_metadata(d.join("f"))
        .expect("fifo")
        .file_type()
        .is_fifo());
    // No reader: exit 6 once --timeout passes, not a hang.
    let o = sh(d, "\"$K\" render -o f --timeout 100ms c.yaml", "v1");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(err.contains("no reader opened it"), "{err}");
    assert_eq!(leftovers(d), Vec::<String>::new());
}

/// A config whose one secret would be fetched from AWS at a closed port
/// (exit 5 if it ever were), and a `--secrets` catalogue.
fn remote(d: &Path) {
    fs::write(d.join("c.yaml"), "k: <<aws|prod/db:password>>\nv: $<C>\n").expect("write");
    fs::write(d.join("cat.yaml"), "secrets:\n  C: inline\n").expect("write");
}

fn remote_run(d: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = command()
        .args(args)
        .current_dir(d)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn output_that_is_an_input_is_refused_before_fetching() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    remote(d);
    fs::hard_link(d.join("cat.yaml"), d.join("hard.yaml")).expect("link");
    std::os::unix::fs::symlink("c.yaml", d.join("soft.yaml")).expect("link");
    let cases: [(&[&str], &str); 4] = [
        (&["-o", "c.yaml"], "the input `c.yaml`"),
        (&["-o", "./soft.yaml"], "the input `c.yaml`"),
        (&["-o", "hard.yaml"], "the --secrets file `cat.yaml`"),
        (&["-o", "sub/../c.yaml"], "the input `c.yaml`"),
    ];
    fs::create_dir(d.join("sub")).expect("mkdir");
    let before = fs::read(d.join("c.yaml")).expect("read");
    let catalogue = fs::read(d.join("cat.yaml")).expect("read");
    for (out, what) in cases {
        for cmd in [&["render"][..], &["watch"], &["exec"]] {
            let mut args: Vec<&str> = cmd.to_vec();
            args.extend(["c.yaml", "--secrets", "cat.yaml"]);
            args.extend(out);
            if cmd == ["exec"] {
                args.extend(["--", "sh", "-c", ": > ran"]);
            }
            let (code, err) = remote_run(d, &args);
            assert_eq!(code, Some(2), "{args:?}: {err}");
            assert!(
                err.contains(what) && err.contains("would destroy it"),
                "{args:?}: {err}"
            );
            assert!(!d.join("ran").exists(), "{args:?}: the command ran");
        }
    }
    assert_eq!(fs::read(d.join("c.yaml")).expect("read"), before);
    assert_eq!(fs::read(d.join("cat.yaml")).expect("read"), catalogue);
    assert!(is_link(&d.join("soft.yaml")));
    // The premise: with a new output (which collides with nothing) the same
    // run fetches, and fails to (exit 5).
    let (code, err) = remote_run(
        d,
        &[
            "render",
            "c.yaml",
            "--secrets",
            "cat.yaml",
            "-o",
            "new.yaml",
        ],
    );
    assert_eq!(code, Some(5), "{err}");
    assert!(!d.join("new.yaml").exists());
}

#[test]
fn unchanged_output_still_gets_its_mode_and_owner() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = small();
    let d = dir.path();
    let out = d.join("out.yaml");
    let o = sh(d, "\"$K\" render -o out.yaml c.yaml", "v1");
    assert_eq!(o.status.code(), Some(0));
    fs::set_permissions(&out, fs::Permissions::from_mode(0o666)).expect("chmod");
    let ino = fs::metadata(&out).expect("meta").ino();
    let o = sh(d, "\"$K\" -v render -o out.yaml c.yaml", "v1");
    assert!(String::from_utf8_lossy(&o.stderr).contains("unchanged"));
    let m = fs::metadata(&out).expect("meta");
    assert_eq!((m.mode() & 0o7777, m.ino()), (0o600, ino));
    // --owner needs the right to chown; the suite runs as root in CI, and the
    // ownership half is skipped elsewhere.
    if rustix::process::geteuid().is_root() {
        let o = sh(
            d,
            "\"$K\" render -o out.yaml --owner 4321:8765 --mode 0640 c.yaml",
            "v1",
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let m = fs::metadata(&out).expect("meta");
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777, m.ino()),
            (4321, 8765, 0o640, ino)
        );
        // A new file gets them before it appears under its name.
        let o = sh(d, "\"$K\" render -o out.yaml --owner 4321 c.yaml", "v2");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let m = fs::metadata(&out).expect("meta");
        assert_ne!(m.ino(), ino);
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (4321, 0, 0o600));
    }
}

#[test]
fn in_place_fallback_works_through_a_link_and_enforces_the_mode() {
    let dir = small();
    let d = dir.path();
    let probe = Command::new("unshare").args(["-rm", "true"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "this test needs `unshare -rm` (util-linux, unprivileged user namespaces)"
    );
    // A single bind-mounted file (as Kubernetes mounts a subPath) behind a link:
    // rename over it fails with EBUSY.
    let script = r#"
        set -e
        mkdir m && echo old > m/real.yaml && echo old > src && mount --bind src m/real.yaml
        ln -s m/real.yaml link
        st=0; "$K" render -o link c.yaml 2>err || st=$?
        echo "plain: $st $(cat m/real.yaml)"
        "$K" render -o link --in-place-fallback --mode 0640 c.yaml 2>/dev/null
        echo "fallback: $(cat m/real.yaml) $(stat -c %a m/real.yaml) $(stat -c %F link)"
        chmod 0666 m/real.yaml
        "$K" -v render -o link --in-place-fallback c.yaml 2>log
        echo "unchanged: $(stat -c %a m/real.yaml) $(grep -c unchanged log)"
        ls -A m | tr '\n' ' '
    "#;
    let o = scrub(&mut Command::new("unshare"))
        .args(["-rm", "sh", "-c", script])
        .current_dir(d)
        .env("K", BIN)
        .env("KA", "v1")
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "plain: 6 old\nfallback: k: v1 640 symbolic link\nunchanged: 600 1\nreal.yaml ",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = fs::read_to_string(d.join("err")).expect("err");
    assert!(err.contains("--in-place-fallback"), "{err}");
}

// ---------------------------------------------------------------------------
// Bounds: secret sizes, the output's size, files that never end
// ---------------------------------------------------------------------------

/// Runs `keyfill render ARGS` in `dir`, killed if it has not ended after a
/// bound that only a hang can reach; (exit code, stdout, stderr).
fn render_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = command()
        .arg("render")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(fs::File::create(dir.join("stdout")).expect("stdout file"))
        .stderr(fs::File::create(dir.join("stderr")).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keyfill render {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |n: &str| fs::read_to_string(dir.join(n)).expect("read capture");
    (status.code(), read("stdout"), read("stderr"))
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo failed");
}

#[test]
fn file_secret_from_dev_zero_stops_at_the_size_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("c.yaml"),
        "secrets:\n  Z: { file: /dev/zero }\nk: $<Z>\n",
    )
    .expect("write");
    let (code, out, err) = render_in(dir.path(), &["c.yaml"]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(out, "");
    assert!(
        err.starts_with(
            "error: secret `Z`: file `/dev/zero` is larger than 16777216 bytes (raise with --max-secret-size)\n"
        ),
        "{err}"
    );
    assert!(err.contains("note: locator: file|/dev/zero"), "{err}");
}

#[test]
fn file_secret_fifo_without_writer_gives_up_at_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    mkfifo(&dir.path().join("fifo"));
    fs::write(
        dir.path().join("c.yaml"),
        "secrets:\n  F: { file: fifo }\nk: $<F>\nd: <<file|fifo>>\n",
    )
    .expect("write");
    let (code, out, err) = render_in(dir.path(), &["--timeout", "1s", "c.yaml"]);
    assert_eq!(code, Some(5), "{err}");
    assert_eq!(out, "");
    let why = "gave up reading file `fifo` after 1s: its end never came (a FIFO without a writer?); raise with --timeout";
    assert!(
        err.contains(&format!("error: secret `F`: {why}\n")),
        "{err}"
    );
    assert!(
        err.contains(&format!("error: reference <<file|fifo>>: {why}\n")),
        "{err}"
    );
}

#[test]
fn file_secret_fifo_filled_by_a_writer_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    fs::write(
        dir.path().join("c.yaml"),
        "secrets:\n  F: { file: fifo }\nk: $<F>\n",
    )
    .expect("write");
    // Opening for writing waits for keyfill to open it for reading; the value
    // comes in two writes with a pause, so that keyfill waits for the end.
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        f.write_all(b"s3c").expect("write");
        f.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
        f.write_all(b"ret").expect("write");
    });
    let (code, out, err) = render_in(dir.path(), &["--timeout", "30s", "c.yaml"]);
    writer.join().expect("writer");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "k: s3cret\n");
}

#[test]
fn file_secret_at_exactly_the_limit_is_read_and_one_byte_over_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("ten"), "abcdefghij").expect("write");
    fs::write(dir.path().join("eleven"), "abcdefghijk").expect("write");
    // Declared in the config, referenced directly, and from a catalogue.
    fs::write(
        dir.path().join("cat.yaml"),
        "secrets:\n  C: { file: ten }\n  D: { file: eleven }\n",
    )
    .expect("write");
    let cases = [
        ("secrets:\n  S: { file: ten }\nk: $<S>\n", "k: abcdefghij\n"),
        ("k: <<file|ten>>\n", "k: abcdefghij\n"),
        ("k: $<C>\n", "k: abcdefghij\n"),
    ];
    for (config, want) in cases {
        fs::write(dir.path().join("c.yaml"), config).expect("write");
        let (code, out, err) = render_in(
            dir.path(),
            &["--max-secret-size", "10", "--secrets", "cat.yaml", "c.yaml"],
        );
        assert_eq!(code, Some(0), "{config}: {err}");
        assert_eq!(out, want, "{config}");
    }
    let over = "file `eleven` is larger than 10 bytes (raise with --max-secret-size)";
    let cases = [
        ("secrets:\n  S: { file: eleven }\nk: $<S>\n", "secret `S`"),
        ("k: <<file|eleven>>\n", "reference <<file|eleven>>"),
        ("k: $<D>\n", "secret `D`"),
    ];
    for (config, who) in cases {
        fs::write(dir.path().join("c.yaml"), config).expect("write");
        let (code, out, err) = render_in(
            dir.path(),
            &["--max-secret-size", "10", "--secrets", "cat.yaml", "c.yaml"],
        );
        assert_eq!(code, Some(3), "{config}: {err}");
        assert_eq!(out, "");
        assert!(err.starts_with(&format!("error: {who}: {over}\n")), "{err}");
    }
}

/// `L0: x`, `Ln: "$<Ln-1>$<Ln-1>"` up to `L{levels}`, used once.
fn doubling(levels: usize) -> String {
    let mut text = String::from("secrets:\n  L0: x\n");
    for i in 1..=levels {
        text.push_str(&format!("  L{i}: \"$<L{}>$<L{}>\"\n", i - 1, i - 1));
    }
    text.push_str(&format!("k: $<L{levels}>\n"));
    text
}

#[test]
fn doubling_compositions_stop_at_the_secret_size_limit_naming_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("c.yaml"), doubling(64)).expect("write");
    // 2^24 bytes is the 16 MiB default: L24 fits exactly, L25 does not.
    let (code, out, err) = render_in(dir.path(), &["c.yaml"]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(out, "");
    assert!(
        err.starts_with(
            "error: secret `L25`: the composed value is larger than 16777216 bytes (raise with --max-secret-size)\n  --> c.yaml:27:3\n"
        ),
        "{err}"
    );
    // Configurable; a composed value of exactly the limit passes.
    fs::write(dir.path().join("c.yaml"), doubling(3)).expect("write");
    let (code, out, err) = render_in(dir.path(), &["--max-secret-size", "8", "c.yaml"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "k: xxxxxxxx\n");
    let (code, _, err) = render_in(dir.path(), &["--max-secret-size", "7", "c.yaml"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.starts_with("error: secret `L3`: the composed value is larger than 7 bytes"),
        "{err}"
    );
    // A composition in the config's own scalar is bounded too.
    fs::write(
        dir.path().join("c.yaml"),
        "secrets:\n  A: abcd\nk: \"$<A>-$<A>\"\n",
    )
    .expect("write");
    let (code, out, err) = render_in(dir.path(), &["--max-secret-size", "9", "c.yaml"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "k: \"abcd-abcd\"\n"),
        "{err}"
    );
    let (code, _, err) = render_in(dir.path(), &["--max-secret-size", "8", "c.yaml"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.starts_with(
            "error: reference: the composed value is larger than 8 bytes (raise with --max-secret-size)\n --> c.yaml:3:4\n"
        ),
        "{err}"
    );
}

#[test]
fn many_uses_of_an_allowed_secret_stop_at_the_output_size_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("big"), "v".repeat(10_000)).expect("write");
    let mut config = String::from("secrets:\n  BIG: { file: big }\n");
    for i in 0..100 {
        config.push_str(&format!("k{i}: $<BIG>\n"));
    }
    fs::write(dir.path().join("c.yaml"), &config).expect("write");
    let (code, out, err) = render_in(dir.path(), &["c.yaml"]);
    assert_eq!(code, Some(0), "{err}");
    let size = out.len();
    assert!(size > 1_000_000, "{size}");
    // Exactly the output's size passes; one byte less is refused, naming the input.
    let exact = size.to_string();
    let (code, again, err) = render_in(dir.path(), &["--max-output-size", &exact, "c.yaml"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(again.len(), size);
    let less = (size - 1).to_string();
    let (code, out, err) = render_in(dir.path(), &["--max-output-size", &less, "c.yaml"]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(out, "");
    assert!(
        err.starts_with(&format!(
            "error: `c.yaml`: the rendered output is larger than {less} bytes (raise with --max-output-size)\n"
        )),
        "{err}"
    );
    // Also with several inputs: the bound is on the whole output.
    let half = (size / 2).to_string();
    fs::write(dir.path().join("d.yaml"), "other: 1\n").expect("write");
    let (code, _, err) = render_in(
        dir.path(),
        &["--max-output-size", &half, "d.yaml", "c.yaml"],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.starts_with("error: `c.yaml`: the rendered output is larger than"),
        "{err}"
    );
}
