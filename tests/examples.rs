//! The recipes in `examples/`, run as their users would run them: the command
//! lines are taken from the recipe's own files (a Dockerfile's `ENTRYPOINT` and
//! `CMD`, a Deployment's containers, a workflow's `run:` steps, a README's
//! commands, a deploy script), with paths mapped into a temporary folder, against
//! the local test servers (moto for AWS, OpenBao for Vault) or env secrets.
//! Every test checks what the rendered files hold, and that secret values stay
//! off stderr (and out of redacted output).
//!
//! | recipe | tests |
//! |---|---|
//! | `examples/basic` | [`basic_renders_as_the_quick_start_says`] |
//! | `examples/docker` | `docker_*`: the entrypoint with and without `--watch`, a failed render |
//! | `examples/kubernetes` | [`kubernetes_init_container_and_watch_sidecar_follow_a_configmap_update`] |
//! | `examples/github-actions` | [`github_actions_steps_check_redact_and_render`] |
//! | `examples/compose` | [`compose_renders_around_composes_own_secrets_and_watch_follows_edits`] |
//! | `examples/helm` | [`helm_deploy_script_renders_values_from_vault_for_helm`] |

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use support::watch::{save_by_rename, wait_for_file, ConfigMap, Signal, Watch};
use support::{canary, AwsEnv, Run};

/// Deadline for anything that should take well under a second (the suite
/// shares two cores).
const T: Duration = Duration::from_secs(20);
/// Poll interval for output files.
const POLL: Duration = Duration::from_millis(5);
/// The region the docker and kubernetes recipes name.
const REGION: &str = "eu-west-1";

/// `examples/REL` in the source tree.
fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

/// The text of `examples/REL`.
fn read_example(rel: &str) -> String {
    fs::read_to_string(example(rel)).unwrap_or_else(|e| panic!("read examples/{rel}: {e}"))
}

/// Every YAML document of `text`, as JSON values.
fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    yaml_serde::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .collect()
}

/// The one YAML document of `text`, as a JSON value.
fn yaml(text: &str) -> Value {
    yaml_serde::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
}

/// `s` as `|url` writes it: every byte but RFC 3986's unreserved ones
/// percent-encoded.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `text` without its top-level `key:` block (the line and the indented lines
/// after it), which is what keyfill removes.
fn without_block(text: &str, key: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == format!("{key}:") {
            inside = true;
            continue;
        }
        if inside && line.starts_with(' ') {
            continue;
        }
        inside = false;
        out.push_str(line);
    }
    assert_ne!(out, text, "no top-level `{key}:` block");
    out
}

/// `text` with each `$<NAME>` replaced by its value.
fn substituted(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (name, value) in values {
        let reference = format!("$<{name}>");
        assert!(out.contains(&reference), "no {reference} in:\n{out}");
        out = out.replace(&reference, value);
    }
    assert!(!out.contains("$<"), "a reference left:\n{out}");
    out
}

/// Asserts that no value of `secrets` is on either stream of `r`.
#[track_caller]
fn silent(r: &Run, secrets: &[&str], what: &str) {
    for s in secrets {
        support::assert_silent(r, s, what);
    }
}

/// `path` with its leading `/` taken away, under `root`: where a container's
/// absolute path lives in the test.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.strip_prefix('/').expect("an absolute path"))
}

/// Writes an executable `sh` script.
fn script(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("script folder");
    fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// A folder with a `keyfill` link to the binary under test, for `PATH`.
fn bin_dir(root: &Path) -> PathBuf {
    let bin = root.join("bin");
    fs::create_dir_all(&bin).expect("bin folder");
    std::os::unix::fs::symlink(support::BIN, bin.join("keyfill")).expect("keyfill link");
    bin
}

/// `dir` first, then the host's `PATH`.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    )
}

/// Borrowed pairs for [`Watch::start`].
fn pairs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Waits until no render line has appeared for 300 ms, so that the next
/// change alone can wake the loop (the first render's own reads make events).
fn settle(w: &mut Watch) {
    let quiet = Duration::from_millis(300);
    let deadline = std::time::Instant::now() + T;
    let mut count = w.renders();
    let mut since = std::time::Instant::now();
    while since.elapsed() < quiet {
        assert!(
            std::time::Instant::now() < deadline,
            "renders never stopped\n{}",
            w.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
        if w.renders() != count {
            count = w.renders();
            since = std::time::Instant::now();
        }
    }
}

/// The secrets the docker, kubernetes and github-actions recipes read from AWS,
/// stored once in the shared moto (in the recipes' region) with canary values
/// that need `|url` in a URL.
struct AwsSecrets {
    /// `prod/app/db:password` (docker, kubernetes).
    db_password: String,
    /// `prod/app/api:token` (kubernetes).
    api_token: String,
    /// `ci/app/db:password` (github-actions).
    ci_db_password: String,
}

fn aws_secrets() -> &'static AwsSecrets {
    static SECRETS: OnceLock<AwsSecrets> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let s = AwsSecrets {
            db_password: format!("{}/p@ss:w#rd?", canary()),
            api_token: canary(),
            ci_db_password: format!("{}%20&=", canary()),
        };
        let moto = support::moto::moto();
        let store = |name: &str, value: Value| {
            moto.create(REGION, name, &value.to_string());
        };
        store("prod/app/db", json!({ "password": s.db_password }));
        store("prod/app/api", json!({ "token": s.api_token }));
        store("ci/app/db", json!({ "password": s.ci_db_password }));
        s
    })
}

/// The canary at the start of a hostile value (what must never be printed).
fn canary_of(value: &str) -> &str {
    &value[..value
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(value.len())]
}

// ---------------------------------------------------------------------------
// examples/basic and the README's quick start
// ---------------------------------------------------------------------------

#[test]
fn basic_renders_as_the_quick_start_says() {
    // `DB_PASSWORD=s3cr3t cargo run --release -- render examples/basic/app.yaml`
    let r = support::keyfill(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["render", "examples/basic/app.yaml"],
        &[("DB_PASSWORD".into(), "s3cr3t".into())],
    );
    r.code(0).stderr_is("").stdout_is(
        "# app.yaml\n\
         \n\
         database:\n  url: postgres://app:s3cr3t@db:5432/app            # whole-value reference\n  pool: 10\n\
         integrations:\n  - name: slack\n    token: \"xoxb-123\"\n    api_key: dev-key\n    \
         note: \"costs $<NOT_A_REF> nothing\"   # escaped: renders as $<NOT_A_REF>\n",
    );
}

/// Each recipe folder has a README and a test here named after it.
#[test]
fn every_recipe_has_a_readme_and_a_test() {
    let this = include_str!("examples.rs");
    let mut seen = Vec::new();
    for entry in fs::read_dir(example("")).expect("read examples/") {
        let entry = entry.expect("entry");
        if !entry.file_type().expect("type").is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            entry.path().join("README.md").is_file(),
            "examples/{name} has no README.md"
        );
        let test = format!("fn {}_", name.replace('-', "_"));
        assert!(
            this.contains(&test),
            "no test `{test}…` for examples/{name}"
        );
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "basic",
            "compose",
            "docker",
            "github-actions",
            "helm",
            "kubernetes"
        ]
    );
}

// ---------------------------------------------------------------------------
// examples/docker: keyfill exec as the entrypoint
// ---------------------------------------------------------------------------

/// What the test takes from `examples/docker/Dockerfile`.
struct Dockerfile {
    /// `ENTRYPOINT [...]`.
    entrypoint: Vec<String>,
    /// The commented `# ENTRYPOINT [...]` (the `--watch` variant).
    watch_entrypoint: Vec<String>,
    /// `CMD [...]`.
    cmd: Vec<String>,
    /// `COPY examples/… DEST` lines (not `--from` a stage): (source, dest).
    copies: Vec<(String, String)>,
}

fn dockerfile() -> Dockerfile {
    let text = read_example("docker/Dockerfile");
    let array = |rest: &str| -> Vec<String> {
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("not a JSON array ({e}): {rest}"))
    };
    let (mut entrypoint, mut watch_entrypoint, mut cmd, mut copies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            entrypoint.push(array(rest));
        } else if let Some(rest) = line.strip_prefix("# ENTRYPOINT ") {
            watch_entrypoint.push(array(rest));
        } else if let Some(rest) = line.strip_prefix("CMD ") {
            cmd.push(array(rest));
        } else if let Some(rest) = line.strip_prefix("COPY ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let [src, dest] = words[..] {
                if src.starts_with("examples/") {
                    copies.push((src.to_owned(), dest.to_owned()));
                }
            }
        }
    }
    let one = |mut v: Vec<Vec<String>>, what: &str| {
        assert_eq!(v.len(), 1, "one {what} line in the Dockerfile");
        v.remove(0)
    };
    let d = Dockerfile {
        entrypoint: one(entrypoint, "ENTRYPOINT"),
        watch_entrypoint: one(watch_entrypoint, "commented ENTRYPOINT"),
        cmd: one(cmd, "CMD"),
        copies,
    };
    assert!(!d.entrypoint.contains(&"--watch".to_owned()));
    assert!(d.watch_entrypoint.contains(&"--watch".to_owned()));
    for e in [&d.entrypoint, &d.watch_entrypoint] {
        assert_eq!(e[..2], ["keyfill", "exec"], "{e:?}");
        assert_eq!(e.last().map(String::as_str), Some("--"), "{e:?}");
    }
    d
}

/// An image's file system in a temporary folder: the Dockerfile's `COPY` lines
/// from `examples/`, and the folder its `RUN` makes for the output.
struct Image {
    root: tempfile::TempDir,
    docker: Dockerfile,
}

impl Image {
    fn new() -> Image {
        let root = tempfile::tempdir().expect("temp dir");
        let docker = dockerfile();
        for (src, dest) in &docker.copies {
            let to = under(root.path(), dest);
            fs::create_dir_all(to.parent().expect("parent")).expect("COPY folder");
            fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(src), &to).expect("COPY");
        }
        fs::create_dir_all(root.path().join("run/app")).expect("RUN mkdir -p /run/app");
        fs::create_dir(root.path().join("tmp")).expect("TMPDIR");
        Image { root, docker }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    /// `image_path` (absolute in the image) in the test's folder.
    fn at(&self, image_path: &str) -> PathBuf {
        under(self.path(), image_path)
    }

    /// The entrypoint (the `--watch` one when `watch`) followed by `CMD`, as
    /// keyfill's arguments: `keyfill` itself dropped, absolute paths mapped into
    /// the folder, and `CMD`'s program looked up in the image's
    /// `/usr/local/bin`.
    fn args(&self, watch: bool) -> Vec<String> {
        let entry = if watch {
            &self.docker.watch_entrypoint
        } else {
            &self.docker.entrypoint
        };
        let map = |a: &String| {
            if a.starts_with('/') {
                self.at(a).display().to_string()
            } else {
                a.clone()
            }
        };
        let mut args: Vec<String> = entry[1..].iter().map(map).collect();
        let program = &self.docker.cmd[0];
        let found = self.at(&format!("/usr/local/bin/{program}"));
        assert!(found.is_file(), "CMD's {program} is not in the image");
        args.push(found.display().to_string());
        args.extend(self.docker.cmd[1..].iter().map(map));
        args
    }

    /// The rendered file the entrypoint writes (the value after `-o`).
    fn output(&self) -> PathBuf {
        let e = &self.docker.entrypoint;
        let i = e.iter().position(|a| a == "-o").expect("-o in ENTRYPOINT");
        self.at(&e[i + 1])
    }

    /// The permission bits of the rendered file.
    fn mode_of_output(&self) -> u32 {
        fs::metadata(self.output())
            .expect("the rendered file")
            .permissions()
            .mode()
            & 0o7777
    }

    /// Replaces the image's `CMD` program with `body` (an `sh` script); `$D`
    /// is the test folder.
    fn replace_app(&self, body: &str) {
        let app = self.at(&format!("/usr/local/bin/{}", self.docker.cmd[0]));
        let d = self.path().display();
        script(&app, &format!("D='{d}'\n{body}"));
    }

    /// The environment of `docker run -e …`: AWS pointed at moto in the
    /// recipe's region, `SESSION_KEY` when given.
    fn env(&self, aws: &AwsEnv, session_key: Option<&str>) -> Vec<(String, String)> {
        let mut vars = aws.vars();
        vars.retain(|(k, _)| k != "AWS_REGION" && k != "TMPDIR");
        vars.push(("AWS_REGION".into(), REGION.into()));
        vars.push((
            "TMPDIR".into(),
            self.path().join("tmp").display().to_string(),
        ));
        if let Some(key) = session_key {
            vars.push(("SESSION_KEY".into(), key.into()));
        }
        vars
    }

    /// Starts the container's process: keyfill with [`Image::args`].
    fn start(&self, watch: bool, env: &[(String, String)]) -> Watch {
        let args = self.args(watch);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Watch::start(self.path(), &args, &pairs(env))
    }
}

/// What `examples/docker/app.yaml` renders to with `session_key`.
fn docker_rendered(session_key: &str) -> String {
    let db = &aws_secrets().db_password;
    let url = format!(
        "postgres://app:{}@db.internal:5432/app?sslmode=require",
        url_encode(db)
    );
    substituted(
        &without_block(&read_example("docker/app.yaml"), "secrets"),
        &[
            ("SESSION_KEY", session_key),
            ("DB_URL", &url),
            ("LOG_LEVEL", "info"),
        ],
    )
}

/// Waits until `path` exists; fails with `w`'s stderr otherwise.
fn wait_exists(w: &mut Watch, path: &Path, what: &str) {
    w.wait_until(what, T, |_| path.exists());
}

/// Without `--watch` keyfill renders, then becomes the application (same PID):
/// the file holds the secrets before the application's first instruction, and
/// `docker stop`'s SIGTERM reaches the application itself.
#[test]
fn docker_entrypoint_renders_before_the_app_starts_and_becomes_it() {
    let image = Image::new();
    let aws = AwsEnv::new();
    let secrets = aws_secrets();
    let session = canary();
    // A wrapper records what the application would see, then runs the real
    // stand-in (app.sh, as the Dockerfile copies it).
    let app = image.at("/usr/local/bin/app");
    fs::rename(&app, app.with_file_name("app.real")).expect("move app aside");
    image.replace_app(
        "cat \"$2\" > \"$D/seen\"\necho $$ > \"$D/pid\"\nexec \"$D/usr/local/bin/app.real\" \"$@\"",
    );
    let mut w = image.start(false, &image.env(&aws, Some(&session)));
    let pid_file = image.path().join("pid");
    wait_exists(&mut w, &pid_file, "the application to start");
    w.wait_until("the stand-in app to start", T, |lines| {
        lines.iter().any(|l| l.starts_with("app: started with "))
    });
    assert_eq!(
        fs::read_to_string(image.path().join("seen")).expect("seen"),
        docker_rendered(&session),
        "what the application found at start"
    );
    assert_eq!(
        fs::read_to_string(&pid_file).expect("pid").trim(),
        w.pid().to_string(),
        "keyfill exec replaces itself with the application"
    );
    assert_eq!(image.mode_of_output(), 0o600);
    w.signal(Signal::TERM);
    let status = w.wait_exit(T).expect("the application stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
    assert!(
        w.lines().iter().any(|l| l == "app: stopping"),
        "{}",
        w.stderr()
    );
    for s in [&secrets.db_password, &session] {
        assert!(!w.stderr().contains(canary_of(s)), "{}", w.stderr());
    }
}

/// With the `--watch` entrypoint keyfill supervises: SIGTERM to keyfill reaches
/// the application once, and keyfill exits with its code; an application that
/// dies of SIGTERM makes keyfill exit 128+15.
#[test]
fn docker_watch_entrypoint_forwards_sigterm_and_passes_the_exit_code() {
    let image = Image::new();
    let aws = AwsEnv::new();
    let session = canary();
    let env = image.env(&aws, Some(&session));

    // An application that traps SIGTERM and exits 42.
    image.replace_app(
        "cat \"$2\" > \"$D/seen\"\ntrap 'echo TERM >> \"$D/log\"; exit 42' TERM\n\
         : > \"$D/ready\"\nwhile :; do sleep 0.02; done",
    );
    let mut w = image.start(true, &env);
    wait_exists(
        &mut w,
        &image.path().join("ready"),
        "the application to start",
    );
    assert_eq!(
        fs::read_to_string(image.path().join("seen")).expect("seen"),
        docker_rendered(&session)
    );
    assert!(w.running(), "keyfill stays as the supervisor");
    w.signal(Signal::TERM);
    let status = w.wait_exit(T).expect("keyfill ends with the application");
    assert_eq!(status.code(), Some(42), "{}", w.stderr());
    assert_eq!(
        fs::read_to_string(image.path().join("log")).expect("log"),
        "TERM\n",
        "SIGTERM reached the application exactly once"
    );

    // An application that dies of SIGTERM (no trap): 128 + 15.
    fs::remove_file(image.path().join("ready")).expect("reset");
    image.replace_app(": > \"$D/ready\"\nwhile :; do sleep 0.02; done");
    let mut w = image.start(true, &env);
    wait_exists(
        &mut w,
        &image.path().join("ready"),
        "the application to start",
    );
    w.signal(Signal::TERM);
    let status = w.wait_exit(T).expect("keyfill ends with the application");
    assert_eq!(status.code(), Some(128 + 15), "{}", w.stderr());
    assert!(!w.stderr().contains(canary_of(&session)), "{}", w.stderr());
    assert!(
        !w.stderr().contains(canary_of(&aws_secrets().db_password)),
        "{}",
        w.stderr()
    );
}

/// A render that fails (here `SESSION_KEY` is not given to `docker run`) never
/// starts the application, writes nothing, and exits 4 as the README's exit
/// codes say, naming the secret and no value.
#[test]
fn docker_failed_render_never_starts_the_app() {
    let image = Image::new();
    let aws = AwsEnv::new();
    let db = canary_of(&aws_secrets().db_password).to_owned();
    image.replace_app(": > \"$D/ran\"");
    for watch in [false, true] {
        let mut w = image.start(watch, &image.env(&aws, None));
        let status = w.wait_exit(T).expect("keyfill ends");
        assert_eq!(status.code(), Some(4), "watch {watch}: {}", w.stderr());
        assert!(w.stderr().contains("SESSION_KEY"), "{}", w.stderr());
        assert!(!w.stderr().contains(&db), "{}", w.stderr());
        assert!(!image.path().join("ran").exists(), "the application ran");
        assert!(!image.output().exists(), "a file was written");
    }
}

// ---------------------------------------------------------------------------
// examples/kubernetes: init container + watch sidecar, ConfigMap updates
// ---------------------------------------------------------------------------

/// The object of `kind` among `docs`.
fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

/// The container named `name` in `list`.
fn container<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("a container list")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// A container's volume mounts: volume name → mount path.
fn mounts(c: &Value) -> BTreeMap<String, String> {
    c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_owned(),
                m["mountPath"].as_str().expect("mountPath").to_owned(),
            )
        })
        .collect()
}

/// A container's `command` + `args` as keyfill's arguments (`keyfill`
/// dropped), every absolute path mapped under `root`; and its literal `env`.
fn container_run(c: &Value, root: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().expect("a string").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let command = strings(&c["command"]);
    assert_eq!(command, ["keyfill"], "{}", c["name"]);
    let args = strings(&c["args"])
        .into_iter()
        .map(|a| {
            if a.starts_with('/') {
                under(root, &a).display().to_string()
            } else {
                a
            }
        })
        .collect();
    let env = c["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let value = e["value"].as_str().expect("a literal env value");
                    (
                        e["name"].as_str().expect("name").to_owned(),
                        value.to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (args, env)
}

/// The value after `flag` in `args`.
fn after<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args.iter().position(|a| a == flag).expect("the flag");
    &args[i + 1]
}

#[test]
fn kubernetes_init_container_and_watch_sidecar_follow_a_configmap_update() {
    let secrets = aws_secrets();
    let cm_doc = yaml(&read_example("kubernetes/configmap.yaml"));
    assert_eq!(cm_doc["kind"], "ConfigMap");
    let template = cm_doc["data"]["app.yaml"]
        .as_str()
        .expect("data app.yaml")
        .to_owned();
    let docs = yaml_docs(&read_example("kubernetes/deployment.yaml"));
    let pod = &kind(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"],
        kind(&docs, "ServiceAccount")["metadata"]["name"]
    );

    // The volumes are wired as the README says: the template from the
    // ConfigMap, the rendered file in a memory emptyDir all three share.
    let volumes: BTreeMap<String, Value> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| (v["name"].as_str().expect("name").to_owned(), v.clone()))
        .collect();
    assert_eq!(
        volumes["template"]["configMap"]["name"],
        cm_doc["metadata"]["name"]
    );
    assert_eq!(volumes["rendered"]["emptyDir"]["medium"], "Memory");
    let init = container(&pod["initContainers"], "keyfill-render");
    let sidecar = container(&pod["containers"], "keyfill-watch");
    let app = container(&pod["containers"], "app");
    let init_mounts = mounts(init);
    assert_eq!(init_mounts, mounts(sidecar));
    assert_eq!(init_mounts["rendered"], mounts(app)["rendered"]);

    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path();
    let (init_args, init_env) = container_run(init, root);
    let (watch_args, watch_env) = container_run(sidecar, root);
    assert_eq!(init_args[0], "render");
    assert_eq!(watch_args[0], "watch");
    for args in [&init_args, &watch_args] {
        assert_eq!(args[1], init_args[1], "one template");
        assert_eq!(after(args, "-o"), after(&init_args, "-o"), "one output");
    }
    let input = PathBuf::from(&init_args[1]);
    let output = PathBuf::from(after(&init_args, "-o"));
    let template_dir = under(root, &init_mounts["template"]);
    let rendered_dir = under(root, &init_mounts["rendered"]);
    assert_eq!(input.parent(), Some(template_dir.as_path()));
    assert_eq!(output.parent(), Some(rendered_dir.as_path()));
    let app_args: Vec<String> = app["args"]
        .as_array()
        .expect("app args")
        .iter()
        .map(|a| a.as_str().expect("a string"))
        .filter(|a| a.starts_with('/'))
        .map(|a| under(root, a).display().to_string())
        .collect();
    assert!(
        app_args.contains(&output.display().to_string()),
        "the app reads the rendered file: {app_args:?}"
    );

    // The volumes: the ConfigMap as the kubelet lays it out, an empty emptyDir.
    fs::create_dir_all(template_dir.parent().expect("parent")).expect("mount point");
    let mut cm = ConfigMap::new(&template_dir, &[("app.yaml", &template)]);
    fs::create_dir_all(&rendered_dir).expect("emptyDir");
    let data = fs::read_link(template_dir.join("..data")).expect("..data is a link");
    assert!(
        data.to_string_lossy().starts_with("..2026_"),
        "{}",
        data.display()
    );
    assert_eq!(
        fs::read_link(&input).expect("app.yaml is a link"),
        Path::new("..data/app.yaml")
    );
    fs::create_dir(root.join("tmp")).expect("TMPDIR");
    let aws = AwsEnv::new();
    let env = |own: &[(String, String)]| {
        let mut vars = aws.vars();
        vars.retain(|(k, _)| k != "TMPDIR" && !own.iter().any(|(o, _)| o == k));
        vars.extend(own.iter().cloned());
        vars.push(("TMPDIR".into(), root.join("tmp").display().to_string()));
        vars
    };
    let expected = |template: &str| {
        let url = format!(
            "postgres://app:{}@db.prod.svc:5432/app",
            url_encode(&secrets.db_password)
        );
        substituted(
            &without_block(template, "secrets"),
            &[("DB_URL", &url), ("API_TOKEN", &secrets.api_token)],
        )
    };
    let never = [
        canary_of(&secrets.db_password),
        canary_of(&secrets.api_token),
    ];

    // The init container.
    let args: Vec<&str> = init_args.iter().map(String::as_str).collect();
    let r = support::keyfill(root, &args, &env(&init_env));
    r.code(0);
    silent(&r, &never, "init container");
    assert_eq!(
        fs::read_to_string(&output).expect("rendered"),
        expected(&template)
    );
    let mode = fs::metadata(&output).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // The sidecar: its first render finds the same bytes.
    let args: Vec<&str> = watch_args.iter().map(String::as_str).collect();
    let watch_env = env(&watch_env);
    let mut w = Watch::start(root, &args, &pairs(&watch_env));
    let first = w.wait_render_ending(0, "", T);
    assert!(first.ends_with(" unchanged"), "{first}");

    // `kubectl apply` of a changed ConfigMap: the kubelet swaps `..data`.
    let updated = template
        .replace("pool: 10", "pool: 25")
        .replace("timeout: 5s", "timeout: 2s");
    assert_ne!(updated, template);
    settle(&mut w);
    let n = w.renders();
    cm.update(&[("app.yaml", &updated)]);
    if let Err(now) = wait_for_file(&output, expected(&updated).as_bytes(), T, POLL) {
        panic!(
            "the sidecar did not follow the ConfigMap update; the output holds:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&now.unwrap_or_default()),
            w.stderr()
        );
    }
    w.wait_render_ending(n, " written", T);
    assert_ne!(
        fs::read_link(template_dir.join("..data")).expect("..data"),
        data,
        "a new generation"
    );
    assert!(!template_dir.join(&data).exists(), "the old one removed");
    w.signal(Signal::TERM);
    let status = w.wait_exit(T).expect("the sidecar stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
    for c in never {
        assert!(!w.stderr().contains(c), "{}", w.stderr());
    }
}

// ---------------------------------------------------------------------------
// examples/github-actions: check, redacted render, render
// ---------------------------------------------------------------------------

#[test]
fn github_actions_steps_check_redact_and_render() {
    let secrets = aws_secrets();
    let workflow = yaml(&read_example("github-actions/render.yml"));
    let job = &workflow["jobs"]["render"];
    let steps = job["steps"].as_array().expect("steps");
    let region = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials@"))
        })
        .map(|s| s["with"]["aws-region"].as_str().expect("aws-region"))
        .expect("a configure-aws-credentials step");
    assert_eq!(region, REGION);
    let sentry = format!("https://{}@o1.ingest.sentry.io/42", canary());
    let github_secrets = [("SENTRY_DSN", sentry.as_str())];

    // The runner: a checkout with config/app.yaml, RUNNER_TEMP, keyfill on PATH.
    let dir = tempfile::tempdir().expect("temp dir");
    let workspace = dir.path().join("workspace");
    fs::create_dir_all(workspace.join("config")).expect("workspace");
    fs::copy(
        example("github-actions/config/app.yaml"),
        workspace.join("config/app.yaml"),
    )
    .expect("checkout");
    let runner_temp = dir.path().join("runner_temp");
    fs::create_dir(&runner_temp).expect("RUNNER_TEMP");
    fs::create_dir(dir.path().join("tmp")).expect("TMPDIR");
    let bin = bin_dir(dir.path());
    let aws = AwsEnv::new();

    // Each `run:` step that is a keyfill command line, run as the runner runs it.
    let env_of = |v: &Value| -> Vec<(String, String)> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let mut v = v.as_str().expect("a string").to_owned();
                        for (name, value) in github_secrets {
                            v = v.replace(&format!("${{{{ secrets.{name} }}}}"), value);
                        }
                        assert!(!v.contains("${{"), "an expression left: {v}");
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut runs = Vec::new();
    for step in steps {
        let Some(line) = step["run"].as_str() else {
            continue;
        };
        if !line.starts_with("keyfill ") {
            continue;
        }
        let mut cmd = Command::new("bash");
        support::scrub(&mut cmd);
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", line])
            .current_dir(&workspace)
            .stdin(Stdio::null())
            .envs(aws.vars())
            .env("AWS_REGION", region)
            .env("TMPDIR", dir.path().join("tmp"))
            .env("RUNNER_TEMP", &runner_temp)
            .env("PATH", path_with(&bin))
            .envs(env_of(&job["env"]))
            .envs(env_of(&step["env"]));
        let r: Run = cmd.output().expect("run bash").into();
        runs.push((line.to_owned(), r));
    }
    let lines: Vec<&str> = runs.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("keyfill check "), "{lines:?}");
    assert!(lines[1].contains(" --redact "), "{lines:?}");
    assert!(lines[2].contains(" -o "), "{lines:?}");
    let never = [canary_of(&secrets.ci_db_password), canary_of(&sentry[8..])];
    for (line, r) in &runs {
        r.code(0);
        silent(r, &never, line);
    }

    // check --resolve: each secret read, none shown.
    let check = &runs[0].1;
    for name in ["DB_PASSWORD", "SENTRY_DSN"] {
        let row = check
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{}", check.stdout));
        assert!(row.ends_with("[found]"), "{row}");
    }

    // render --redact: masks where the secrets go, the rest as rendered.
    let redacted = yaml(&runs[1].1.stdout);
    assert_eq!(redacted["database"]["url"], "********");
    assert_eq!(redacted["monitoring"]["sentry_dsn"], "********");
    assert_eq!(redacted["database"]["pool"], 20);
    assert_eq!(redacted["monitoring"]["sample_rate"], 0.25);
    assert!(redacted.get("secrets").is_none());

    // render -o "$RUNNER_TEMP/app.yaml": the real values, nothing on stdout.
    assert_eq!(runs[2].1.stdout, "");
    let file = fs::read_to_string(runner_temp.join("app.yaml")).expect("the rendered file");
    let rendered = yaml(&file);
    assert_eq!(
        rendered["database"]["url"],
        format!(
            "postgres://app:{}@db.example.internal:5432/app",
            url_encode(&secrets.ci_db_password)
        )
    );
    assert_eq!(rendered["monitoring"]["sentry_dsn"], sentry);
    assert_eq!(redacted["database"]["pool"], rendered["database"]["pool"]);
}

// ---------------------------------------------------------------------------
// examples/compose: --secrets-key x-keyfill around Compose's own secrets
// ---------------------------------------------------------------------------

/// The `keyfill watch …` line of the recipe's README, as arguments.
fn compose_watch_args() -> Vec<String> {
    let readme = read_example("compose/README.md");
    let lines: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("keyfill watch "))
        .collect();
    assert_eq!(lines.len(), 1, "one `keyfill watch` line: {lines:?}");
    let line = lines[0].trim_end().trim_end_matches('&');
    let args = shlex::split(line).expect("a shell line");
    assert_eq!(args[0], "keyfill");
    args[1..].to_vec()
}

#[test]
fn compose_renders_around_composes_own_secrets_and_watch_follows_edits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let input = read_example("compose/compose.yaml");
    fs::write(dir.join("compose.yaml"), &input).expect("copy compose.yaml");
    fs::create_dir(dir.join("tmp")).expect("TMPDIR");
    let password = format!("{}/p@ss:w?rd", canary());
    let stripe = format!("sk_test_{}", canary());
    let env = vec![
        ("DEV_DB_PASSWORD".to_owned(), password.clone()),
        ("STRIPE_TEST_KEY".to_owned(), stripe.clone()),
        ("TMPDIR".to_owned(), dir.join("tmp").display().to_string()),
        ("NO_COLOR".to_owned(), "1".to_owned()),
    ];
    let never = [canary_of(&password), canary_of(&stripe[8..])];
    let watch_args = compose_watch_args();
    let output = dir.join(after(&watch_args, "-o"));
    let expected = |input: &str| {
        let url = format!("postgres://app:{}@db:5432/app", url_encode(&password));
        substituted(
            &without_block(input, "x-keyfill"),
            &[("DATABASE_URL", &url), ("STRIPE_KEY", &stripe)],
        )
    };

    // `keyfill render` with the same arguments.
    let mut render = watch_args.clone();
    render[0] = "render".into();
    let args: Vec<&str> = render.iter().map(String::as_str).collect();
    let r = support::keyfill(dir, &args, &env);
    r.code(0).stderr_is("");
    silent(&r, &never, "render");
    let out = fs::read_to_string(&output).expect("compose.rendered.yaml");
    assert_eq!(out, expected(&input));
    let own =
        |text: &str| text[text.find("\nsecrets:\n").expect("Compose's secrets:")..].to_owned();
    assert_eq!(own(&out), own(&input), "Compose's secrets: byte for byte");
    let doc = yaml(&out);
    assert!(doc.get("x-keyfill").is_none());
    assert_eq!(
        doc["secrets"],
        json!({ "db_password": { "environment": "DEV_DB_PASSWORD" } })
    );
    assert_eq!(doc["services"]["db"]["secrets"], json!(["db_password"]));
    assert_eq!(
        doc["services"]["app"]["environment"]["STRIPE_API_KEY"],
        stripe.as_str()
    );

    // `keyfill watch`: an edit of compose.yaml (saved by rename) re-renders.
    fs::remove_file(&output).expect("start afresh");
    let args: Vec<&str> = watch_args.iter().map(String::as_str).collect();
    let mut w = Watch::start(dir, &args, &pairs(&env));
    w.wait_renders(1, T);
    assert_eq!(
        fs::read_to_string(&output).expect("output"),
        expected(&input)
    );
    let edited = input
        .replace("LOG_LEVEL: debug", "LOG_LEVEL: trace")
        .replace("\"8080:8080\"", "\"8081:8080\"");
    assert_ne!(edited, input);
    settle(&mut w);
    save_by_rename(&dir.join("compose.yaml"), &edited);
    if let Err(now) = wait_for_file(&output, expected(&edited).as_bytes(), T, POLL) {
        panic!(
            "watch did not follow the edit; the output holds:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&now.unwrap_or_default()),
            w.stderr()
        );
    }
    w.signal(Signal::INT);
    let status = w.wait_exit(T).expect("watch stops on Ctrl-C");
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
    for c in never {
        assert!(!w.stderr().contains(c), "{}", w.stderr());
    }
}

// ---------------------------------------------------------------------------
// examples/helm: deploy.sh renders values from Vault for helm upgrade
// ---------------------------------------------------------------------------

#[test]
fn helm_deploy_script_renders_values_from_vault_for_helm() {
    // Values with YAML metacharacters, a quote and a line break.
    let db = format!("{}: #'\"\nsecond line", canary());
    let redis = format!("{} - [x]", canary());
    let token = format!("{}\"# x: y", canary());
    let bao = support::openbao::bao();
    let api = bao.api();
    api.kv2_put("secret", "myapp/prod/db", json!({ "password": db }));
    api.kv2_put("secret", "myapp/prod/redis", json!({ "password": redis }));
    api.kv2_put("secret", "myapp/prod/api", json!({ "token": token }));
    let never = [canary_of(&db), canary_of(&redis), canary_of(&token)];

    let vault = support::openbao::VaultEnv::new();
    let dir = vault.path();
    let bin = bin_dir(dir);
    // A stand-in helm: its arguments, and a copy of the values file with its mode.
    let seen = dir.join("seen");
    fs::create_dir(&seen).expect("seen folder");
    script(
        &bin.join("helm"),
        &format!(
            "S='{}'\nprintf '%s\\n' \"$@\" > \"$S/args\"\n\
             while [ $# -gt 0 ]; do\n  if [ \"$1\" = -f ]; then cp \"$2\" \"$S/values.yaml\"; \
             stat -c %a \"$2\" > \"$S/mode\"; fi\n  shift\ndone",
            seen.display()
        ),
    );
    let mut cmd = Command::new("sh");
    support::scrub(&mut cmd);
    cmd.arg(example("helm/deploy.sh"))
        .args(["myapp", "oci://registry.example.com/charts/myapp"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .envs(vault.vars())
        .env("PATH", path_with(&bin));
    let r: Run = cmd.output().expect("run deploy.sh").into();
    r.code(0);
    silent(&r, &never, "deploy.sh");

    let args = fs::read_to_string(seen.join("args")).expect("helm ran");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args[..4],
        [
            "upgrade",
            "--install",
            "myapp",
            "oci://registry.example.com/charts/myapp"
        ]
    );
    assert_eq!(args[4], "-f");
    let rendered = Path::new(args[5]);
    assert!(
        rendered.starts_with(dir.join("tmp")),
        "under TMPDIR: {}",
        rendered.display()
    );
    assert_eq!(args[6..], ["--wait"]);
    assert_eq!(
        fs::read_to_string(seen.join("mode")).expect("mode").trim(),
        "600"
    );
    assert!(
        fs::read_dir(dir.join("tmp"))
            .expect("TMPDIR")
            .next()
            .is_none(),
        "the rendered values are removed after helm"
    );

    let values = yaml(&fs::read_to_string(seen.join("values.yaml")).expect("values"));
    assert!(values.get("secrets").is_none(), "{values}");
    assert_eq!(values["postgresql"]["auth"]["password"], db.as_str());
    assert_eq!(values["postgresql"]["auth"]["username"], "myapp");
    assert_eq!(values["redis"]["auth"]["password"], redis.as_str());
    assert_eq!(values["app"]["env"]["API_TOKEN"], token.as_str());
    assert_eq!(values["replicaCount"], 3);
    assert_eq!(values["image"]["tag"], "1.4.2");
    let config = yaml(values["app"]["configFile"].as_str().expect("configFile"));
    assert_eq!(config["upstream"]["token"], token.as_str());
    assert_eq!(config["upstream"]["url"], "https://api.example.com");
}
