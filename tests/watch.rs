//! `keyfill watch` as a real process on real files: editor saves (rename and in
//! place), bursts of edits, Kubernetes ConfigMap `..data` swaps, bad edits, its
//! own output beside the input, `touch`, signals (SIGHUP refresh, SIGTERM and
//! SIGINT), `--refresh`, `--secrets` catalogues, descriptor and thread counts
//! over 200 renders, and stdin refused.
//!
//! Every wait polls against a deadline (generous: the suite shares two cores
//! with the other tests); fixed waits appear only where the claim is that
//! nothing happens (no render loop), and then they are the claim's duration.
//!
//! The symlink and mid-write signal cases at the end were found in review;
//! each failed before its fix.

use crate::support;

use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::watch::{
    identity, leftovers, save_by_rename, wait_for_file, ConfigMap, Signal, Watch,
};

/// Deadline for anything that should take well under a second.
const T: Duration = Duration::from_secs(20);
/// Poll interval for output files.
const POLL: Duration = Duration::from_millis(2);
/// The env secret every config uses.
const SECRET: &str = "s3cr3t";

/// A config whose rendering shows `version`.
fn config(version: usize) -> String {
    format!(
        "secrets:\n  S: {{ env: KF_S }}\n# kept as is\nversion: {version}\nurl: \"x://$<S>@db\"\n"
    )
}

/// What [`config`] renders to.
fn rendered(version: usize) -> String {
    format!("# kept as is\nversion: {version}\nurl: \"x://{SECRET}@db\"\n")
}

const ENV: &[(&str, &str)] = &[("KF_S", SECRET)];

/// A temporary folder with `conf/app.yaml` (holding `config(1)`) and an
/// empty `rendered/` for the output.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("conf")).expect("mkdir conf");
        fs::create_dir(dir.path().join("rendered")).expect("mkdir rendered");
        let t = Tree { dir };
        fs::write(t.input(), config(1)).expect("write input");
        t
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn input(&self) -> PathBuf {
        self.path().join("conf/app.yaml")
    }

    fn output(&self) -> PathBuf {
        self.path().join("rendered/out.yaml")
    }

    /// `keyfill watch conf/app.yaml -o rendered/out.yaml EXTRA…`, after its
    /// first render wrote `rendered(1)`.
    fn watch(&self, extra: &[&str]) -> Watch {
        let mut args = vec!["watch", "conf/app.yaml", "-o", "rendered/out.yaml"];
        args.extend_from_slice(extra);
        let mut w = Watch::start(self.path(), &args, ENV);
        w.wait_renders(1, T);
        expect_output(&mut w, &self.output(), &rendered(1));
        w
    }
}

/// Waits until `out` holds exactly `expected`; fails with stderr otherwise.
fn expect_output(w: &mut Watch, out: &Path, expected: &str) -> Duration {
    match wait_for_file(out, expected.as_bytes(), T, POLL) {
        Ok(d) => d,
        Err(now) => panic!(
            "{} never held the expected content\nexpected:\n{expected}\nactual:\n{}\nrunning: {}\nstderr:\n{}",
            out.display(),
            now.map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| "<missing>".into()),
            w.running(),
            w.stderr()
        ),
    }
}

/// Waits until no render line has appeared for `quiet` (bounded by [`T`]).
fn settle(w: &mut Watch, quiet: Duration) {
    let deadline = Instant::now() + T;
    let mut count = w.renders();
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        assert!(
            Instant::now() < deadline,
            "renders never stopped\n{}",
            w.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
        let now = w.renders();
        if now != count {
            count = now;
            since = Instant::now();
        }
    }
}

/// Saves like vim with its defaults on Linux (`backupcopy=auto` in a writable
/// folder): probe file `4913`, original renamed to `NAME~`, new file written
/// at the name, backup removed. For a moment the input does not exist.
fn save_like_vim(path: &Path, content: &str) {
    let dir = path.parent().expect("parent");
    let probe = dir.join("4913");
    fs::write(&probe, "").expect("probe");
    fs::remove_file(&probe).expect("remove probe");
    let backup = path.with_file_name(format!(
        "{}~",
        path.file_name().expect("name").to_string_lossy()
    ));
    fs::rename(path, &backup).expect("rename to backup");
    fs::write(path, content).expect("write new file");
    fs::remove_file(&backup).expect("remove backup");
}

#[test]
fn editor_saves_by_rename_are_picked_up_every_time() {
    let t = Tree::new();
    let mut w = t.watch(&[]);
    let input = t.input();
    for v in 2..=9 {
        if v % 2 == 0 {
            save_by_rename(&input, &config(v));
        } else {
            save_like_vim(&input, &config(v));
        }
        expect_output(&mut w, &t.output(), &rendered(v));
        // The next save starts only once this one is reported.
        w.wait_renders(v, T);
    }
    settle(&mut w, Duration::from_millis(300));
    let lines = w.render_lines();
    assert_eq!(
        lines.len(),
        9,
        "one render at start and one per save:\n{lines:#?}"
    );
    for l in &lines[1..] {
        assert_eq!(l, "keyfill: input changed: rendered/out.yaml written");
    }
    assert!(w.running());
}

#[test]
fn in_place_writes_are_picked_up() {
    let t = Tree::new();
    let mut w = t.watch(&[]);
    let input = t.input();
    // Same length every time (10..=15): only the content and the time differ.
    for v in 10..=15 {
        fs::write(&input, config(v)).expect("write in place");
        expect_output(&mut w, &t.output(), &rendered(v));
        w.wait_renders(v - 8, T);
    }
    // An append through an open descriptor.
    {
        use std::io::Write as _;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .expect("open for append");
        f.write_all(b"extra: $<S>\n").expect("append");
    }
    let expected = format!("{}extra: {SECRET}\n", rendered(15));
    expect_output(&mut w, &t.output(), &expected);
    assert!(w.running());
}

#[test]
fn a_thousand_rapid_edits_end_in_the_final_input_with_few_renders() {
    let t = Tree::new();
    let mut w = t.watch(&[]);
    let input = t.input();
    let fds = w.fds();
    let start = Instant::now();
    for v in 1000..2000 {
        // Half in place, half by rename, as fast as the disk takes them; the
        // last one in place (same size, same inode: only the time differs).
        if v % 2 == 1 {
            fs::write(&input, config(v)).expect("write in place");
        } else {
            save_by_rename(&input, &config(v));
        }
    }
    let editing = start.elapsed();
    // The reference: a one-off `keyfill render` of the final input.
    let once = support::keyfill(
        t.path(),
        &["render", "conf/app.yaml"],
        &[("KF_S".into(), SECRET.into())],
    );
    assert_eq!(once.code, 0, "{}", once.stderr);
    assert_eq!(once.stdout, rendered(1999));
    expect_output(&mut w, &t.output(), &once.stdout);
    settle(&mut w, Duration::from_millis(500));
    assert_eq!(
        fs::read_to_string(t.output()).expect("read"),
        once.stdout,
        "a later render changed the output again"
    );
    let renders = w.renders() - 1;
    eprintln!("1,000 edits in {editing:?} gave {renders} renders");
    assert!(renders >= 1, "the edits were never rendered");
    assert!(
        w.fds() <= fds,
        "open descriptors grew from {fds} to {}",
        w.fds()
    );
    assert!(
        renders <= 100,
        "1,000 edits in {editing:?} gave {renders} renders; expected them coalesced\n{}",
        w.stderr()
    );
    assert!(w.running());
}

#[test]
fn kubernetes_configmap_data_swaps_are_followed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog = |pass: &str| format!("secrets:\n  DB_PASS: {pass}\n");
    let app = |v: usize| format!("{}pass: $<DB_PASS>\n", config(v));
    let expect = |v: usize, pass: &str| format!("{}pass: {pass}\n", rendered(v));
    let mut cm = ConfigMap::new(
        &dir.path().join("config"),
        &[
            ("app.yaml", app(1).as_str()),
            ("catalog.yaml", catalog("one").as_str()),
        ],
    );
    fs::create_dir(dir.path().join("rendered")).expect("mkdir");
    let out = dir.path().join("rendered/app.yaml");
    let mut w = Watch::start(
        dir.path(),
        &[
            "watch",
            "config/app.yaml",
            "--secrets",
            "config/catalog.yaml",
            "-o",
            "rendered/app.yaml",
        ],
        ENV,
    );
    expect_output(&mut w, &out, &expect(1, "one"));
    w.wait_renders(1, T);
    // The config changes (after quiet, so that only the swap can wake the loop).
    settle(&mut w, Duration::from_millis(300));
    cm.update(&[
        ("app.yaml", app(2).as_str()),
        ("catalog.yaml", catalog("one").as_str()),
    ]);
    expect_output(&mut w, &out, &expect(2, "one"));
    w.wait_renders(2, T);
    // Only the catalogue changes.
    settle(&mut w, Duration::from_millis(300));
    cm.update(&[
        ("app.yaml", app(2).as_str()),
        ("catalog.yaml", catalog("two").as_str()),
    ]);
    expect_output(&mut w, &out, &expect(2, "two"));
    w.wait_renders(3, T);
    // Several swaps in a row, each a full generation.
    for v in 3..=6 {
        cm.update(&[
            ("app.yaml", app(v).as_str()),
            ("catalog.yaml", catalog("three").as_str()),
        ]);
        expect_output(&mut w, &out, &expect(v, "three"));
    }
    // A swap to identical data: a render, and no write.
    settle(&mut w, Duration::from_millis(200));
    let before = identity(&out);
    let n = w.renders();
    cm.update(&[
        ("app.yaml", app(6).as_str()),
        ("catalog.yaml", catalog("three").as_str()),
    ]);
    w.wait_render_ending(n, "rendered/app.yaml unchanged", T);
    assert_eq!(identity(&out), before, "identical data rewrote the output");
    assert!(w.running());
}

/// A ConfigMap key mounted in a subfolder (`items: [{key: app.yaml,
/// path: conf/app.yaml}]`: the kubelet links `conf -> ..data/conf`) is followed
/// through every `..data` swap: the folder holding the `conf` link is watched,
/// and the watches move with the generation folders.
#[test]
fn a_configmap_key_in_a_subfolder_is_followed_after_the_first_swap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cm = ConfigMap::new(
        &dir.path().join("config"),
        &[("conf/app.yaml", config(1).as_str())],
    );
    fs::create_dir(dir.path().join("rendered")).expect("mkdir");
    let out = dir.path().join("rendered/app.yaml");
    let mut w = Watch::start(
        dir.path(),
        &["watch", "config/conf/app.yaml", "-o", "rendered/app.yaml"],
        ENV,
    );
    expect_output(&mut w, &out, &rendered(1));
    for v in 2..=4 {
        // Let the events of the previous render pass (its own reads of the
        // input wake the loop once, which would hide a missing watch).
        settle(&mut w, Duration::from_millis(300));
        cm.update(&[("conf/app.yaml", config(v).as_str())]);
        if let Err(now) = wait_for_file(&out, rendered(v).as_bytes(), Duration::from_secs(5), POLL)
        {
            panic!(
                "swap {} (to version {v}) was not followed; the output still holds:\n{}\nstderr:\n{}",
                v - 1,
                String::from_utf8_lossy(&now.unwrap_or_default()),
                w.stderr()
            );
        }
    }
}

/// An input that is a symlink to a file in another folder
/// (`conf/app.yaml -> ../shared/app.yaml`) is re-rendered when that file is
/// saved, in place or by rename: the target's folder is watched too.
#[test]
fn an_input_symlinked_to_another_folder_follows_edits_of_its_target() {
    let t = Tree::new();
    fs::create_dir(t.path().join("shared")).expect("mkdir");
    let target = t.path().join("shared/app.yaml");
    fs::write(&target, config(1)).expect("write");
    fs::remove_file(t.input()).expect("rm");
    std::os::unix::fs::symlink("../shared/app.yaml", t.input()).expect("symlink");
    let mut w = t.watch(&[]);
    settle(&mut w, Duration::from_millis(300));
    fs::write(&target, config(2)).expect("write target in place");
    if let Err(now) = wait_for_file(
        &t.output(),
        rendered(2).as_bytes(),
        Duration::from_secs(5),
        POLL,
    ) {
        panic!(
            "an in-place edit of the symlink's target was not rendered; the output holds:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&now.unwrap_or_default()),
            w.stderr()
        );
    }
    save_by_rename(&target, &config(3));
    expect_output(&mut w, &t.output(), &rendered(3));
}

/// An input reached through a symlinked folder (`current -> releases/v1`) is
/// re-rendered when the link is switched atomically to `releases/v2`: the
/// folder holding the link is watched.
#[test]
fn an_input_in_a_symlinked_folder_follows_a_switch_of_the_link() {
    let dir = tempfile::tempdir().expect("temp dir");
    for v in [1, 2] {
        let rel = dir.path().join(format!("releases/v{v}"));
        fs::create_dir_all(&rel).expect("mkdir");
        fs::write(rel.join("app.yaml"), config(v)).expect("write");
    }
    fs::create_dir(dir.path().join("rendered")).expect("mkdir");
    std::os::unix::fs::symlink("releases/v1", dir.path().join("current")).expect("symlink");
    let out = dir.path().join("rendered/out.yaml");
    let mut w = Watch::start(
        dir.path(),
        &["watch", "current/app.yaml", "-o", "rendered/out.yaml"],
        ENV,
    );
    expect_output(&mut w, &out, &rendered(1));
    settle(&mut w, Duration::from_millis(300));
    std::os::unix::fs::symlink("releases/v2", dir.path().join("current.new")).expect("symlink");
    fs::rename(dir.path().join("current.new"), dir.path().join("current")).expect("switch");
    if let Err(now) = wait_for_file(&out, rendered(2).as_bytes(), Duration::from_secs(5), POLL) {
        panic!(
            "switching `current` to releases/v2 was not rendered; the output holds:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&now.unwrap_or_default()),
            w.stderr()
        );
    }
}

#[test]
fn a_bad_edit_keeps_the_last_good_output_and_the_next_good_edit_renders() {
    let t = Tree::new();
    let mut w = t.watch(&[]);
    let good = fs::read(t.output()).expect("read");
    let before = identity(&t.output());
    let bad_inputs = [
        // YAML syntax error (exit 3).
        "secrets:\n  S: { env: KF_S }\nversion: [\n".to_owned(),
        // An undeclared reference (exit 3).
        format!("{}oops: $<NOPE>\n", config(2)),
        // A secret that cannot be fetched (exit 4).
        "secrets:\n  S: { env: KF_NOT_SET_ANYWHERE }\nurl: $<S>\n".to_owned(),
    ];
    for (i, bad) in bad_inputs.iter().enumerate() {
        let n = w.renders();
        save_by_rename(&t.input(), bad);
        let line = w.wait_render_ending(n, "keeps its last good content", T);
        assert_eq!(
            line,
            "keyfill: input changed: render failed; rendered/out.yaml keeps its last good content",
            "bad input {i}"
        );
        assert_eq!(fs::read(t.output()).expect("read"), good, "bad input {i}");
        assert_eq!(
            identity(&t.output()),
            before,
            "bad input {i} touched the output"
        );
        assert!(leftovers(&t.path().join("rendered")).is_empty());
        assert!(w.running(), "bad input {i} ended the loop");
    }
    // The diagnostics were printed, and named the problem.
    let err = w.stderr();
    assert!(err.contains("NOPE"), "undeclared name not reported:\n{err}");
    assert!(
        err.contains("KF_NOT_SET_ANYWHERE"),
        "missing variable not reported:\n{err}"
    );
    // The next good edit renders.
    save_by_rename(&t.input(), &config(3));
    expect_output(&mut w, &t.output(), &rendered(3));
    // And a bad edit in place, then a good one in place.
    let n = w.renders();
    fs::write(t.input(), "version: \"unclosed\n").expect("write");
    w.wait_render_ending(n, "keeps its last good content", T);
    assert_eq!(fs::read_to_string(t.output()).expect("read"), rendered(3));
    fs::write(t.input(), config(4)).expect("write");
    expect_output(&mut w, &t.output(), &rendered(4));
}

#[test]
fn the_output_beside_the_input_does_not_cause_a_render_loop() {
    let t = Tree::new();
    // Input and output in one folder, both relative to it.
    let conf = t.path().join("conf");
    let out = conf.join("app.out.yaml");
    let mut w = Watch::start(&conf, &["watch", "app.yaml", "-o", "app.out.yaml"], ENV);
    expect_output(&mut w, &out, &rendered(1));
    w.wait_renders(1, T);
    // Idle: the render's own write (temporary file, rename) and its reads of
    // the input must not start another render.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(w.renders(), 1, "renders while idle:\n{}", w.stderr());
    // Other names in the folder do not render either.
    fs::write(conf.join("notes.txt"), "x").expect("write");
    fs::write(conf.join(".hidden"), "x").expect("write");
    save_by_rename(&conf.join("other.yaml"), "a: 1\n");
    fs::write(conf.join("app.yaml.orig"), config(7)).expect("write");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        w.renders(),
        1,
        "other files in the folder caused renders:\n{}",
        w.stderr()
    );
    // One edit: exactly one render, then quiet again.
    fs::write(conf.join("app.yaml"), config(2)).expect("write");
    expect_output(&mut w, &out, &rendered(2));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        w.render_lines(),
        vec![
            "keyfill: start: app.out.yaml written".to_owned(),
            "keyfill: input changed: app.out.yaml written".to_owned(),
        ],
        "one edit must be one render:\n{}",
        w.stderr()
    );
    assert!(leftovers(&conf).is_empty());
}

#[test]
fn output_symlink_into_the_inputs_folder_is_followed_without_a_render_loop() {
    let t = Tree::new();
    // rendered/out.yaml -> ../conf/app.out.yaml: the writes land beside the input.
    std::os::unix::fs::symlink("../conf/app.out.yaml", t.output()).expect("link");
    let real = t.path().join("conf/app.out.yaml");
    let mut w = Watch::start(
        t.path(),
        &["watch", "conf/app.yaml", "-o", "rendered/out.yaml"],
        ENV,
    );
    w.wait_renders(1, T);
    expect_output(&mut w, &real, &rendered(1));
    let is_link = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    assert!(is_link(&t.output()), "the link was replaced");
    // Idle: the writes at the link's target do not start another render.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(w.renders(), 1, "renders while idle:\n{}", w.stderr());
    fs::write(t.input(), config(2)).expect("write");
    expect_output(&mut w, &real, &rendered(2));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        w.renders(),
        2,
        "one edit must be one render:\n{}",
        w.stderr()
    );
    assert!(is_link(&t.output()), "the link was replaced");
    assert!(leftovers(&t.path().join("conf")).is_empty());
}

#[test]
fn watch_refuses_an_output_that_is_its_input() {
    let t = Tree::new();
    std::os::unix::fs::symlink("../conf/app.yaml", t.output()).expect("link");
    let mut w = Watch::start(
        t.path(),
        &["watch", "conf/app.yaml", "-o", "rendered/out.yaml"],
        ENV,
    );
    let st = w.wait_exit(T).expect("watch kept running");
    assert_eq!(st.code(), Some(2), "{}", w.stderr());
    assert!(
        w.stderr().contains("is the input `conf/app.yaml`"),
        "{}",
        w.stderr()
    );
    assert_eq!(fs::read_to_string(t.input()).expect("read"), config(1));
}

#[test]
fn touch_renders_unchanged_and_does_not_write() {
    let t = Tree::new();
    let mut w = t.watch(&[]);
    let before = identity(&t.output());
    let content = fs::read(t.output()).expect("read");
    // Let the clock move on from the input's own mtime.
    std::thread::sleep(Duration::from_millis(20));
    let st = std::process::Command::new("touch")
        .arg(t.input())
        .status()
        .expect("run touch");
    assert!(st.success());
    let line = w.wait_render_ending(1, " unchanged", T);
    assert_eq!(line, "keyfill: input changed: rendered/out.yaml unchanged");
    assert_eq!(identity(&t.output()), before, "touch rewrote the output");
    assert_eq!(fs::read(t.output()).expect("read"), content);
    assert!(leftovers(&t.path().join("rendered")).is_empty());
    settle(&mut w, Duration::from_millis(300));
    assert_eq!(w.renders(), 2, "{}", w.stderr());
}

/// A config with an env secret and a file secret kept outside the watched
/// folders (so only a refresh can pick up a new value).
fn refresh_tree() -> (Tree, PathBuf) {
    let t = Tree::new();
    fs::create_dir(t.path().join("secrets")).expect("mkdir");
    let token = t.path().join("secrets/token");
    fs::write(&token, "tok-one").expect("write token");
    let text = format!(
        "secrets:\n  S: {{ env: KF_S }}\n  TOK: {{ file: {} }}\nurl: \"x://$<S>@db\"\ntoken: $<TOK>\n",
        token.display()
    );
    fs::write(t.input(), text).expect("write input");
    (t, token)
}

fn refreshed(token: &str) -> String {
    format!("url: \"x://{SECRET}@db\"\ntoken: {token}\n")
}

#[test]
fn sighup_fetches_secrets_again_and_renders_new_values() {
    // The brief asks for an env-sourced secret changed before SIGHUP, but a
    // running process's environment cannot be changed from outside; a `file`
    // secret outside the watched folders takes the same path (the cache is
    // marked stale, every secret is fetched again), and the env secret is
    // fetched again alongside it.
    let (t, token) = refresh_tree();
    let mut w = Watch::start(
        t.path(),
        &["watch", "conf/app.yaml", "-o", "rendered/out.yaml"],
        ENV,
    );
    expect_output(&mut w, &t.output(), &refreshed("tok-one"));
    w.wait_renders(1, T);
    // A SIGHUP with nothing changed: a render, no write.
    let before = identity(&t.output());
    w.signal(Signal::HUP);
    let line = w.wait_render_ending(1, " unchanged", T);
    assert_eq!(line, "keyfill: refresh: rendered/out.yaml unchanged");
    assert_eq!(identity(&t.output()), before);
    // The secret rotates; SIGHUP picks it up.
    fs::write(&token, "tok-two").expect("rotate");
    w.signal(Signal::HUP);
    expect_output(&mut w, &t.output(), &refreshed("tok-two"));
    let line = w.wait_render_ending(2, " written", T);
    // The line names the secret's locator, never its value.
    let token_path = token.display();
    assert_eq!(
        line,
        format!("keyfill: refresh (new values: file|{token_path}): rendered/out.yaml written")
    );
    assert!(!line.contains("tok-two"));
    // Rotated again, several SIGHUPs in a row: the last value wins, the loop lives.
    fs::write(&token, "tok-three").expect("rotate");
    for _ in 0..5 {
        w.signal(Signal::HUP);
    }
    expect_output(&mut w, &t.output(), &refreshed("tok-three"));
    assert!(w.running());
}

/// With `--log-format json` each render is one JSON object with its parts as
/// fields: why, the secrets with new values (locators), the output, the outcome.
#[test]
fn json_render_lines_carry_why_new_values_and_outcome() {
    let (t, token) = refresh_tree();
    let mut w = Watch::start(
        t.path(),
        &[
            "watch",
            "conf/app.yaml",
            "-o",
            "rendered/out.yaml",
            "--log-format",
            "json",
        ],
        ENV,
    );
    expect_output(&mut w, &t.output(), &refreshed("tok-one"));
    fs::write(&token, "tok-two").expect("rotate");
    w.signal(Signal::HUP);
    expect_output(&mut w, &t.output(), &refreshed("tok-two"));
    let renders = |w: &Watch| -> Vec<serde_json::Value> {
        w.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "render")
            .collect()
    };
    let deadline = Instant::now() + T;
    while renders(&w).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no second render: {}",
            w.stderr()
        );
        std::thread::sleep(POLL);
    }
    let token_path = token.display().to_string();
    assert_eq!(
        renders(&w),
        [
            serde_json::json!({"level": "info", "event": "render", "why": "start",
                "new_values": [], "output": "rendered/out.yaml", "outcome": "written"}),
            serde_json::json!({"level": "info", "event": "render", "why": "refresh",
                "new_values": [format!("file|{token_path}")], "output": "rendered/out.yaml",
                "outcome": "written"}),
        ]
    );
    assert!(!w.stderr().contains("tok-two"));
}

#[test]
fn refresh_period_picks_up_rotated_secrets_and_rewrites_nothing_otherwise() {
    let (t, token) = refresh_tree();
    let mut w = Watch::start(
        t.path(),
        &[
            "watch",
            "conf/app.yaml",
            "-o",
            "rendered/out.yaml",
            "--refresh",
            "100ms",
        ],
        ENV,
    );
    expect_output(&mut w, &t.output(), &refreshed("tok-one"));
    // Several periods with nothing changed: renders, and no write.
    let before = identity(&t.output());
    w.wait_renders(4, T);
    assert_eq!(identity(&t.output()), before, "an unchanged refresh wrote");
    for l in &w.render_lines()[1..] {
        assert_eq!(l, "keyfill: refresh: rendered/out.yaml unchanged");
    }
    fs::write(&token, "tok-two").expect("rotate");
    expect_output(&mut w, &t.output(), &refreshed("tok-two"));
}

fn ends_with_0_promptly(sig: Signal) {
    let t = Tree::new();
    let mut w = t.watch(&[]);
    save_by_rename(&t.input(), &config(2));
    expect_output(&mut w, &t.output(), &rendered(2));
    w.wait_renders(2, T);
    let sent = Instant::now();
    w.signal(sig);
    let status = w
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after {sig:?}\n{}", w.stderr()));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{status} after {sig:?}");
    assert!(
        took < Duration::from_secs(1),
        "took {took:?} to exit after {sig:?}"
    );
    assert_eq!(fs::read_to_string(t.output()).expect("read"), rendered(2));
    assert!(leftovers(&t.path().join("rendered")).is_empty());
}

#[test]
fn sigterm_exits_0_promptly() {
    ends_with_0_promptly(Signal::TERM);
}

#[test]
fn sigint_exits_0_promptly() {
    ends_with_0_promptly(Signal::INT);
}

#[test]
fn open_descriptors_and_threads_do_not_grow_over_200_renders() {
    let t = Tree::new();
    let mut w = t.watch(&["--debounce", "10ms"]);
    let input = t.input();
    let mut version = 1;
    // Every kind of render, in turn: by rename, failed, in place, refresh.
    let mut step = |w: &mut Watch, i: usize| {
        let before = w.renders();
        match i % 4 {
            0 => {
                version += 1;
                save_by_rename(&input, &config(version));
            }
            1 => save_by_rename(&input, "version: [\n"),
            2 => {
                version += 1;
                fs::write(&input, config(version)).expect("write");
            }
            _ => {
                // A render caught between the truncation and the write of an
                // in-place save is followed by a second one; a SIGHUP during
                // that one's write would hit the SIGHUP bug tested below, so
                // it waits for quiet.
                settle(w, Duration::from_millis(60));
                w.signal(Signal::HUP);
            }
        }
        w.wait_renders(before + 1, T);
        if i % 4 != 1 {
            expect_output(w, &t.output(), &rendered(version));
        }
    };
    // Warm up: every path once, so anything created lazily exists.
    for i in 0..8 {
        step(&mut w, i);
    }
    settle(&mut w, Duration::from_millis(100));
    let (fds, threads) = (w.fds(), w.threads());
    for i in 8..208 {
        step(&mut w, i);
    }
    settle(&mut w, Duration::from_millis(100));
    let (fds_after, threads_after) = (w.fds(), w.threads());
    eprintln!("fds {fds} -> {fds_after}, threads {threads} -> {threads_after}");
    assert!(
        fds_after <= fds,
        "open descriptors grew from {fds} to {fds_after} over 200 renders"
    );
    assert!(
        threads_after <= threads,
        "threads grew from {threads} to {threads_after} over 200 renders"
    );
    assert!(w.renders() >= 209, "one line per render");
    assert!(w.running());
}

#[test]
fn a_secrets_catalogue_change_re_renders() {
    let t = Tree::new();
    fs::create_dir(t.path().join("catalog")).expect("mkdir");
    let catalog = t.path().join("catalog/secrets.yaml");
    fs::write(&catalog, "secrets:\n  DB_PASS: one\n").expect("write");
    fs::write(t.input(), format!("{}pass: $<DB_PASS>\n", config(1))).expect("write");
    let expect = |pass: &str| format!("{}pass: {pass}\n", rendered(1));
    let mut w = Watch::start(
        t.path(),
        &[
            "watch",
            "conf/app.yaml",
            "--secrets",
            "catalog/secrets.yaml",
            "-o",
            "rendered/out.yaml",
        ],
        ENV,
    );
    expect_output(&mut w, &t.output(), &expect("one"));
    // In place.
    fs::write(&catalog, "secrets:\n  DB_PASS: two\n").expect("write");
    expect_output(&mut w, &t.output(), &expect("two"));
    // By rename.
    save_by_rename(&catalog, "secrets:\n  DB_PASS: three\n");
    expect_output(&mut w, &t.output(), &expect("three"));
    // Broken: the output stays; fixed: it renders.
    let n = w.renders();
    save_by_rename(&catalog, "secrets:\n  DB_PASS: [\n");
    w.wait_render_ending(n, "keeps its last good content", T);
    assert_eq!(
        fs::read_to_string(t.output()).expect("read"),
        expect("three")
    );
    save_by_rename(&catalog, "secrets:\n  DB_PASS: four\n");
    expect_output(&mut w, &t.output(), &expect("four"));
}

#[test]
fn stdin_cannot_be_watched() {
    let t = Tree::new();
    for args in [
        &["watch", "-", "-o", "rendered/out.yaml"][..],
        &[
            "watch",
            "conf/app.yaml",
            "--secrets",
            "-",
            "-o",
            "rendered/out.yaml",
        ][..],
    ] {
        let mut w = Watch::start(t.path(), args, ENV);
        let status = w
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{args:?} kept running"));
        assert_eq!(status.code(), Some(2), "{args:?}: {status}");
        // The reader thread may still be collecting the last line.
        w.wait_until("the usage message", T, |l| {
            l.iter().any(|l| l.contains("standard input"))
        });
        assert!(!t.output().exists(), "{args:?} wrote an output");
        assert!(w.render_lines().is_empty(), "{args:?} rendered");
    }
}

/// A config of about 1 MB (so that writing and syncing the output takes a
/// while) whose rendering shows `version`.
fn big_config(version: usize) -> String {
    let mut text = config(version);
    for i in 0..20_000 {
        text.push_str(&format!("item_{i}: \"$<S> {i} padding padding padding\"\n"));
    }
    text
}

/// How a run of [`signal_during_writes`] went.
struct Outcome {
    /// How the process ended, if it did.
    status: Option<std::process::ExitStatus>,
    /// Rounds whose signal was sent while the output's temporary file existed.
    hits: usize,
    /// Rounds run.
    rounds: usize,
    stderr: String,
}

/// Edits a big input (each edit changes the output, so each render writes) and
/// sends `sig` once per round, at the moment keyfill's temporary output file
/// appears: inside the write. Stops after `rounds` or when the process ends.
fn signal_during_writes(sig: Signal, rounds: usize) -> Outcome {
    let t = Tree::new();
    fs::write(t.input(), big_config(1)).expect("write");
    let out_dir = t.path().join("rendered");
    let mut w = Watch::start(
        t.path(),
        &["watch", "conf/app.yaml", "-o", "rendered/out.yaml"],
        ENV,
    );
    w.wait_renders(1, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut hits = 0;
    for round in 0..rounds {
        let n = w.renders();
        save_by_rename(&t.input(), &big_config(round + 2));
        // Spin until the temporary file shows up (or the render is over).
        loop {
            assert!(Instant::now() < deadline, "ran out of time\n{}", w.stderr());
            if !leftovers(&out_dir).is_empty() {
                w.signal(sig);
                hits += 1;
                break;
            }
            if w.renders() > n || !w.running() {
                break;
            }
        }
        // Let the render finish, or the process end.
        let end = Instant::now() + Duration::from_secs(60);
        while w.renders() == n && w.running() && Instant::now() < end {
            std::thread::sleep(POLL);
        }
        if !w.running() {
            return Outcome {
                status: w.wait_exit(Duration::from_secs(1)),
                hits,
                rounds: round + 1,
                stderr: w.stderr(),
            };
        }
    }
    Outcome {
        status: None,
        hits,
        rounds,
        stderr: w.stderr(),
    }
}

/// A SIGHUP ("refresh now") that arrives while the output is being written is
/// one more refresh; it never ends `keyfill watch`. (10 rounds on a ~1 MB
/// config, each SIGHUP sent while `rendered/.keyfill-*.tmp` exists.)
#[test]
fn sighup_during_an_output_write_is_a_refresh() {
    let o = signal_during_writes(Signal::HUP, 10);
    assert!(
        o.hits > 0,
        "no SIGHUP landed in a write; make the config bigger"
    );
    assert!(
        o.status.is_none(),
        "keyfill watch ended ({:?}, signal {:?}) in round {} after a SIGHUP arrived \
         during an output write ({} of {} rounds signalled); a SIGHUP must only refresh\n{}",
        o.status,
        o.status.and_then(|s| s.signal()),
        o.rounds,
        o.hits,
        o.rounds,
        o.stderr
    );
}

/// SIGTERM makes `keyfill watch` exit 0 at any moment, also while the output
/// is being written (no temporary file left).
///
/// Input: as above, with one SIGTERM when the temporary output file exists.
/// Expected: exit 0, as on SIGTERM at any other moment, no temporary file left.
#[test]
fn sigterm_during_an_output_write_exits_0() {
    let o = signal_during_writes(Signal::TERM, 10);
    assert!(
        o.hits > 0,
        "no SIGTERM landed in a write; make the config bigger"
    );
    let status = o.status.expect("still running after a SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "keyfill watch ended with {status} (signal {:?}) when SIGTERM arrived during \
         an output write; it exits 0 on SIGTERM otherwise\n{}",
        status.signal(),
        o.stderr
    );
}

/// A save interrupted between its steps for longer than the debounce: the
/// input is missing (vim renamed it away) or empty (a write truncated it) for
/// a while. The loop waits for the content instead of rendering an error or
/// an empty output, and renders once when it arrives.
#[test]
fn a_save_paused_mid_way_renders_once_when_the_content_arrives() {
    let t = Tree::new();
    let mut w = t.watch(&[]);
    let input = t.input();
    let pause = Duration::from_millis(300);

    fs::rename(&input, t.path().join("conf/app.yaml~")).expect("rename away");
    std::thread::sleep(pause);
    fs::write(&input, config(2)).expect("write new file");
    expect_output(&mut w, &t.output(), &rendered(2));

    let f = fs::File::create(&input).expect("truncate");
    std::thread::sleep(pause);
    use std::io::Write as _;
    (&f).write_all(config(3).as_bytes()).expect("write content");
    drop(f);
    expect_output(&mut w, &t.output(), &rendered(3));

    settle(&mut w, Duration::from_millis(300));
    let lines = w.render_lines();
    assert_eq!(
        lines,
        [
            "keyfill: start: rendered/out.yaml written",
            "keyfill: input changed: rendered/out.yaml written",
            "keyfill: input changed: rendered/out.yaml written",
        ],
        "{}",
        w.stderr()
    );
}

/// An input that stays empty is rendered after the mid-save wait (one
/// second): emptying a config is allowed, just not mistaken for a save.
#[test]
fn an_input_left_empty_renders_empty_after_the_wait() {
    let t = Tree::new();
    let mut w = t.watch(&[]);
    let emptied = Instant::now();
    fs::write(t.input(), "").expect("empty the input");
    expect_output(&mut w, &t.output(), "");
    assert!(
        emptied.elapsed() >= Duration::from_millis(900),
        "rendered before the wait ended: {:?}",
        emptied.elapsed()
    );
    assert!(w.running());
}

/// The render loop of `keyfill watch CONF -o OUT`, run in this process, and a
/// quiet reporter for it.
fn library_loop(conf: &Path, out: &Path) -> (keyfill::watch::Loop, keyfill::report::Reporter) {
    use keyfill::config::{LoopConfig, RenderConfig};
    // What `keyfill watch CONF -o OUT` runs with: the command line's defaults.
    let timeout = Duration::from_secs(30);
    let input = RenderConfig {
        files: vec![conf.display().to_string()],
        catalogues: Vec::new(),
        audit: None,
        options: keyfill::render::Options {
            strict: false,
            redact: false,
            json: false,
            limits: keyfill::yaml::scan::Limits {
                max_depth: 128,
                max_aliases: 10_000,
                strict_yaml: false,
            },
            max_input: 256 * 1024 * 1024,
            max_secret: 16 * 1024 * 1024,
            max_output: 1024 * 1024 * 1024,
            export: false,
            secrets_key: "secrets".to_owned(),
            secrets_block: true,
            verify: support::verify_mode(),
        },
        settings: keyfill::provider::Settings {
            concurrency: 8,
            timeout,
            max_secret_size: 16 * 1024 * 1024,
        },
    };
    let looping = LoopConfig {
        output: out.to_path_buf(),
        write: keyfill::output::WriteOptions {
            mode: 0o600,
            owner: None,
            in_place_fallback: false,
            defer_signals: true,
            reader_wait: timeout,
        },
        refresh: None,
        cache_ttl: Duration::from_secs(5 * 60),
        debounce: Duration::from_millis(50),
    };
    let reporter = keyfill::report::Reporter {
        format: keyfill::report::Format::Text,
        color: false,
        quiet: true,
    };
    (keyfill::watch::Loop::new(&input, &looping, false), reporter)
}

/// A refresh whose burst also holds file events from reads alone (every
/// render opens its inputs, and the open is an event) is reported as a
/// refresh: "input changed" only when an input differs from what the last
/// render read.
#[test]
fn refresh_with_read_events_in_its_burst_is_reported_as_a_refresh() {
    use keyfill::watch::Rendered;
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("c.yaml");
    fs::write(&conf, "a: 1\n").expect("write config");
    let out = dir.path().join("out.yaml");
    let (mut lp, reporter) = library_loop(&conf, &out);
    assert_eq!(lp.render(&reporter, "start").0, Rendered::Written);
    // Read as a render does: an event, no change.
    assert_eq!(fs::read_to_string(&conf).expect("read"), "a: 1\n");
    assert_eq!(lp.reason(true), "refresh");
    assert_eq!(lp.reason(false), "refresh");
    fs::write(&conf, "a: 22\n").expect("edit config");
    assert_eq!(lp.reason(true), "input changed");
    assert_eq!(lp.render(&reporter, "input changed").0, Rendered::Written);
    assert_eq!(fs::read_to_string(&out).expect("output"), "a: 22\n");
    assert_eq!(lp.reason(true), "refresh");
}

/// The syscall number the main thread of `pid` is in, if it is in one.
fn main_thread_syscall(pid: u32) -> Option<i64> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{pid}/syscall")).ok()?;
    text.split(' ').next()?.parse().ok()
}

/// With `-o` a FIFO nobody reads, a render waits for a reader up to
/// `--timeout`; SIGTERM then ends the wait and watch exits 0 at once, instead
/// of after the timeout (a container runtime's grace period is shorter).
#[test]
fn sigterm_while_waiting_for_a_fifo_reader_exits_0_promptly() {
    use std::os::unix::fs::FileTypeExt as _;
    let t = Tree::new();
    let fifo = t.path().join("rendered/fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    // The first render has a reader: the loop is up and handles signals.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read_to_string(fifo).expect("read fifo"))
    };
    let args = [
        "watch",
        "conf/app.yaml",
        "-o",
        "rendered/fifo",
        "--timeout",
        "10m",
    ];
    let mut w = Watch::start(t.path(), &args, &[("KF_S", SECRET)]);
    w.wait_renders(1, T);
    assert_eq!(reader.join().expect("reader"), rendered(1));
    // The next render finds no reader and waits, sleeping between tries.
    #[cfg(target_arch = "aarch64")]
    const SLEEPS: [i64; 2] = [115, 101];
    #[cfg(not(target_arch = "aarch64"))]
    const SLEEPS: [i64; 2] = [230, 35];
    save_by_rename(&t.input(), &config(2));
    let deadline = Instant::now() + T;
    while !main_thread_syscall(w.pid()).is_some_and(|n| SLEEPS.contains(&n)) {
        assert!(Instant::now() < deadline, "never waited for a reader");
        std::thread::sleep(POLL);
    }
    w.signal(Signal::TERM);
    let status = w
        .wait_exit(T)
        .unwrap_or_else(|| panic!("still running after SIGTERM\n{}", w.stderr()));
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
    assert!(fs::symlink_metadata(&fifo)
        .expect("fifo")
        .file_type()
        .is_fifo());
    assert!(leftovers(&t.path().join("rendered")).is_empty());
}

/// Written through (`-o` a device, a FIFO, stdout), identical bytes are not
/// written again and count as unchanged, as for a file: `exec --watch` reloads
/// its command only when the output's bytes changed, and a refresh used to
/// reload it every time.
#[test]
fn unchanged_bytes_written_through_are_not_written_again() {
    use keyfill::watch::Rendered;
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("c.yaml");
    fs::write(&conf, "a: 1\n").expect("write config");
    let (mut lp, reporter) = library_loop(&conf, Path::new("/dev/null"));
    assert_eq!(lp.render(&reporter, "start").0, Rendered::Written);
    assert_eq!(lp.render(&reporter, "refresh").0, Rendered::Unchanged);
    fs::write(&conf, "a: 2\n").expect("edit config");
    assert_eq!(lp.render(&reporter, "input changed").0, Rendered::Written);
    assert_eq!(lp.render(&reporter, "refresh").0, Rendered::Unchanged);
}
