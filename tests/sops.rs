//! The sops provider against files the real `sops` binary encrypts at test time
//! (age keys from the real `age-keygen`): the three formats keyfill decrypts
//! itself, sops's encryption rules, the MAC, every place age keys are read
//! from, and the `sops` binary for other key services (AWS KMS on moto).

use crate::support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::moto::moto;
use support::{aws_env, canary, keyfill, Run};

/// An age key pair made by `age-keygen`.
pub(crate) struct AgeKey {
    pub(crate) file: PathBuf,
    pub(crate) recipient: String,
    secret: String,
}

/// A key pair `age-keygen` writes to `dir/name`.
pub(crate) fn age_key(dir: &Path, name: &str) -> AgeKey {
    let file = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .output()
        .expect("run age-keygen (installed by .ci/deps)");
    assert!(out.status.success(), "age-keygen failed");
    let text = std::fs::read_to_string(&file).expect("key file");
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key line")
        .to_owned();
    let secret = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("secret key line")
        .to_owned();
    AgeKey {
        file,
        recipient,
        secret,
    }
}

/// Encrypts `plain` with the real sops and `args` (the keys to encrypt for)
/// into `dir/name`, whose extension names the format; `env` is added to the
/// run's cleaned environment (a KMS endpoint, say).
pub(crate) fn encrypt(
    dir: &Path,
    name: &str,
    plain: &str,
    args: &[&str],
    env: &[(String, String)],
) -> PathBuf {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .expect("extension");
    let src = dir.join(format!("plain-{name}.{ext}"));
    std::fs::write(&src, plain).expect("plain file");
    let mut cmd = Command::new("sops");
    support::scrub(&mut cmd);
    let out = cmd
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("encrypt")
        .args(args)
        .arg(&src)
        .output()
        .expect("run sops (installed by .ci/deps)");
    assert!(
        out.status.success(),
        "sops encrypt failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&src).expect("remove the plain file");
    let dest = dir.join(name);
    std::fs::write(&dest, &out.stdout).expect("encrypted file");
    dest
}

/// A new key of moto's KMS: its ARN.
pub(crate) fn kms_key() -> String {
    let key = moto().json(
        "us-east-1",
        ("kms", "TrentService"),
        "CreateKey",
        serde_json::json!({}),
    );
    key["KeyMetadata"]["Arn"]
        .as_str()
        .expect("key ARN")
        .to_owned()
}

/// A folder with an age key, where sops files are made and keyfill runs.
struct Fixture {
    dir: tempfile::TempDir,
    key: AgeKey,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        for d in ["tmp", "home", "keys"] {
            std::fs::create_dir(dir.path().join(d)).expect("folder");
        }
        let key = age_key(&dir.path().join("keys"), "keys.txt");
        Fixture { dir, key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Encrypts `plain` with sops into `name` (its extension names the
    /// format), for the fixture's age key and `args`.
    fn encrypt(&self, name: &str, plain: &str, args: &[&str]) -> PathBuf {
        let mut all = vec!["--age", self.key.recipient.as_str()];
        all.extend_from_slice(args);
        encrypt(self.dir.path(), name, plain, &all, &[])
    }

    /// The environment with the fixture's key in `SOPS_AGE_KEY_FILE`, and a
    /// `HOME` of its own (no host keys file is read).
    fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.base_vars();
        v.push((
            "SOPS_AGE_KEY_FILE".into(),
            self.key.file.display().to_string(),
        ));
        v
    }

    fn base_vars(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.path("home").display().to_string()),
            ("NO_COLOR".into(), "1".into()),
            ("TMPDIR".into(), self.path("tmp").display().to_string()),
        ]
    }

    /// Renders `config` with `vars`; asserts nothing was left in `TMPDIR`.
    fn render_with(&self, args: &[&str], config: &str, vars: &[(String, String)]) -> Run {
        std::fs::write(self.path("config.yaml"), config).expect("config");
        let mut a = args.to_vec();
        a.push("config.yaml");
        let r = keyfill(self.dir.path(), &a, vars);
        let left: Vec<_> = std::fs::read_dir(self.path("tmp"))
            .expect("TMPDIR")
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
        r
    }

    fn render(&self, config: &str) -> Run {
        self.render_with(&["render", "--timeout", "20s"], config, &self.vars())
    }
}

/// The string value of `key` in a rendered YAML mapping.
fn rendered(stdout: &str, key: &str) -> String {
    let doc: serde_json::Value = yaml_serde::from_str(stdout).expect("rendered YAML");
    doc[key].as_str().expect("a string").to_owned()
}

const NESTED: &str = "db:
  password: hunter2
  port: 5432
  ratio: 1.25
  on: true
  off: false
list:
  - first
  - 2
  - nested: deep
empty: \"\"
multi: |
  line one
  line two
nothing: null
";

#[test]
fn yaml_nested_maps_lists_types_multiline_and_empty_strings() {
    let f = Fixture::new();
    f.encrypt("s.enc.yaml", NESTED, &[]);
    let r = f.render(
        "a: <<sops|s.enc.yaml:db.password>>
b: <<sops|s.enc.yaml:db.port>>
c: <<sops|s.enc.yaml:db.ratio>>
d: <<sops|s.enc.yaml:db.on>>
e: <<sops|s.enc.yaml:list.0>>
f: <<sops|s.enc.yaml:list.1>>
g: <<sops|s.enc.yaml:list.2.nested>>
h: <<sops|s.enc.yaml:empty>>
i: <<sops|s.enc.yaml:multi>>
j: <<sops|s.enc.yaml>>
",
    );
    r.code(0);
    let out = &r.stdout;
    for (k, want) in [
        ("a", "hunter2"),
        ("b", "5432"),
        ("c", "1.25"),
        ("d", "true"),
        ("e", "first"),
        ("f", "2"),
        ("g", "deep"),
        ("h", ""),
        ("i", "line one\nline two\n"),
    ] {
        assert_eq!(rendered(out, k), want, "{k} in\n{out}");
    }
    // The whole document, types kept: an int stays an int.
    let whole: serde_json::Value =
        serde_json::from_str(&rendered(out, "j")).expect("the document as JSON");
    assert_eq!(
        whole,
        serde_json::json!({
            "db": {"password": "hunter2", "port": 5432, "ratio": 1.25, "on": true, "off": false},
            "list": ["first", 2, {"nested": "deep"}],
            "empty": "",
            "multi": "line one\nline two\n",
            "nothing": null,
        })
    );
}

const YAML_SPELLINGS: &str = "# a comment, which sops encrypts
mode: 0644 # after a value
list:
  # in a list, which sops writes as an encrypted item
  - item
mode_unencrypted: 0644
big: 1_000
big_unencrypted: 1_000
when: 2024-01-02
when_unencrypted: 2024-1-2 03:04:05.5
zoned_unencrypted: 2024-01-02T03:04:05+00:00
exp_unencrypted: 1e3
word_unencrypted: on
hex_unencrypted: 0x1F
bin_unencrypted: -0b11
null_unencrypted: ~
quoted_unencrypted: '5'
one_unencrypted: 1.0
base: &b
  x: 1
  y: two
ref: *b
";

#[test]
fn the_whole_document_matches_sops_decrypt_for_each_format() {
    let f = Fixture::new();
    let files = [
        f.encrypt("a.enc.yaml", NESTED, &[]),
        f.encrypt(
            "b.enc.json",
            r#"{"n": 7, "x": 1.5, "t": true, "s": "v", "l": [1, "two", {"k": null}], "e": "",
                "big": 9007199254740993, "f": 0.1, "z": -0, "d": [[], {}], "u": "\u00e9"}"#,
            &[],
        ),
        f.encrypt("c.enc.env", "A=1\nB=hello world\nC=multi\\nline\nD=\n", &[]),
        // YAML spellings typed as sops's YAML reader types them, encrypted and
        // not (the MAC covers both), comments, anchors, and a second document.
        f.encrypt("d.enc.yaml", YAML_SPELLINGS, &[]),
        f.encrypt("e.enc.yaml", "a: 1\n---\nb: 2\n", &[]),
    ];
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let r = f.render(&format!("j: <<sops|{name}>>\n"));
        r.code(0);
        let ours: serde_json::Value =
            serde_json::from_str(&rendered(&r.stdout, "j")).expect("JSON");
        let mut cmd = Command::new("sops");
        support::scrub(&mut cmd);
        let out = cmd
            .env("SOPS_AGE_KEY_FILE", &f.key.file)
            .args(["decrypt", "--output-type", "json"])
            .arg(&file)
            .output()
            .expect("run sops");
        assert!(out.status.success(), "sops decrypt {name}");
        let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sops JSON");
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn json_and_dotenv_files_read_by_key() {
    let f = Fixture::new();
    f.encrypt(
        "s.enc.json",
        r#"{"db": {"password": "pw", "port": 5432}, "hosts": ["a", "b"]}"#,
        &[],
    );
    f.encrypt("s.enc.env", "USER=admin\nCERT=line1\\nline2\n", &[]);
    let r = f.render(
        "a: <<sops|s.enc.json:db.password>>
b: <<sops|s.enc.json:db.port>>
c: <<sops|s.enc.json:hosts.1>>
d: <<sops|s.enc.env:USER>>
e: <<sops|s.enc.env:CERT>>
",
    );
    r.code(0);
    for (k, want) in [
        ("a", "pw"),
        ("b", "5432"),
        ("c", "b"),
        ("d", "admin"),
        ("e", "line1\nline2"),
    ] {
        assert_eq!(rendered(&r.stdout, k), want, "{k}");
    }
}

#[test]
fn the_long_form_names_file_and_key() {
    let f = Fixture::new();
    f.encrypt("s.enc.yaml", NESTED, &[]);
    let r = f.render(
        "secrets:
  PW: { sops: { file: s.enc.yaml, key: db.password } }
x: $<PW>
",
    );
    r.code(0).stdout_is("x: hunter2\n");
}

#[test]
fn partial_encryption_by_suffix_and_by_regex() {
    let f = Fixture::new();
    let plain = "db:\n  password: pw\n  host_plain: db.local\n  port_plain: 5432\n";
    let by_suffix = f.encrypt("a.enc.yaml", plain, &["--unencrypted-suffix", "_plain"]);
    let text = std::fs::read_to_string(&by_suffix).expect("file");
    assert!(text.contains("host_plain: db.local"), "{text}");
    let by_regex = f.encrypt("b.enc.yaml", plain, &["--encrypted-regex", "^password$"]);
    let text = std::fs::read_to_string(&by_regex).expect("file");
    assert!(
        text.contains("port_plain: 5432") && !text.contains(": pw"),
        "{text}"
    );
    let by_unencrypted_regex = f.encrypt("c.enc.yaml", plain, &["--unencrypted-regex", "_plain$"]);
    let text = std::fs::read_to_string(&by_unencrypted_regex).expect("file");
    assert!(text.contains("host_plain: db.local"), "{text}");
    let by_encrypted_suffix = f.encrypt("d.enc.yaml", plain, &["--encrypted-suffix", "word"]);
    let text = std::fs::read_to_string(&by_encrypted_suffix).expect("file");
    assert!(
        text.contains("host_plain: db.local") && !text.contains(": pw"),
        "{text}"
    );
    let r = f.render(
        "a: <<sops|a.enc.yaml:db.password>>
b: <<sops|a.enc.yaml:db.host_plain>>
c: <<sops|b.enc.yaml:db.password>>
d: <<sops|b.enc.yaml:db.port_plain>>
e: <<sops|c.enc.yaml:db.password>>
f: <<sops|c.enc.yaml:db.port_plain>>
g: <<sops|d.enc.yaml:db.password>>
h: <<sops|d.enc.yaml:db.host_plain>>
",
    );
    r.code(0)
        .stdout_is("a: pw\nb: db.local\nc: pw\nd: '5432'\ne: pw\nf: '5432'\ng: pw\nh: db.local\n");
}

#[test]
fn mac_only_encrypted_files_are_read_and_still_checked() {
    let f = Fixture::new();
    // sops takes `mac_only_encrypted` from a creation rule only.
    std::fs::write(
        f.path(".sops.yaml"),
        format!(
            "creation_rules:\n  - mac_only_encrypted: true\n    age: {}\n",
            f.key.recipient
        ),
    )
    .expect(".sops.yaml");
    let plain = "password: pw\nhost_unencrypted: h\n";
    let file = f.encrypt("m.enc.yaml", plain, &[]);
    let text = std::fs::read_to_string(&file).expect("file");
    assert!(text.contains("mac_only_encrypted: true"), "{text}");
    f.render("a: <<sops|m.enc.yaml:password>>\nb: <<sops|m.enc.yaml:host_unencrypted>>\n")
        .code(0)
        .stdout_is("a: pw\nb: h\n");
    // An unencrypted value is outside this MAC, as in sops.
    std::fs::write(
        &file,
        text.replace("host_unencrypted: h", "host_unencrypted: g"),
    )
    .expect("edit");
    f.render("b: <<sops|m.enc.yaml:host_unencrypted>>\n")
        .code(0)
        .stdout_is("b: g\n");
    // The value's and the MAC's ciphertexts swapped.
    let swapped = swap_first_two_enc_values(&text);
    std::fs::write(&file, swapped).expect("tampered");
    f.render("a: <<sops|m.enc.yaml:password>>\n")
        .code(3)
        .stdout_is("");
}

/// The text with its first two `ENC[…]` values swapped: each is then under
/// another key path, so neither decrypts.
fn swap_first_two_enc_values(text: &str) -> String {
    let spans: Vec<(usize, usize)> = text
        .match_indices("ENC[AES256_GCM")
        .map(|(i, _)| (i, i + text[i..].find(']').expect("end of ENC") + 1))
        .take(2)
        .collect();
    assert_eq!(spans.len(), 2, "two encrypted values in\n{text}");
    let (a, b) = (spans[0], spans[1]);
    format!(
        "{}{}{}{}{}",
        &text[..a.0],
        &text[b.0..b.1],
        &text[a.1..b.0],
        &text[a.0..a.1],
        &text[b.1..]
    )
}

#[test]
fn a_tampered_file_is_exit_3_naming_it_and_shows_no_value() {
    let f = Fixture::new();
    let secret = canary();
    let plain = format!("a: {secret}\nb: other\nnote_unencrypted: v1\n");
    let file = f.encrypt("t.enc.yaml", &plain, &[]);
    let good = std::fs::read_to_string(&file).expect("file");
    let config = "x: <<sops|t.enc.yaml:a>>\n";
    f.render(config)
        .code(0)
        .stdout_is(&format!("x: {secret}\n"));

    // An encrypted value moved under another key.
    std::fs::write(&file, swap_first_two_enc_values(&good)).expect("swap");
    let r = f.render(config);
    r.code(3).stdout_is("").stderr_has("t.enc.yaml");
    support::assert_silent(&r, &secret, "moved value");

    // An unencrypted value changed: the MAC no longer matches.
    std::fs::write(
        &file,
        good.replace("note_unencrypted: v1", "note_unencrypted: v2"),
    )
    .expect("edit");
    let r = f.render(config);
    r.code(3)
        .stdout_is("")
        .stderr_has("t.enc.yaml")
        .stderr_has("MAC");
    support::assert_silent(&r, &secret, "edited unencrypted value");

    // The age-wrapped data key changed.
    let at = good
        .find("-----BEGIN AGE ENCRYPTED FILE-----")
        .expect("armor")
        + 60;
    let mut bytes = good.clone().into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&file, bytes).expect("flip");
    let r = f.render(config);
    r.code(3).stdout_is("").stderr_has("t.enc.yaml");
    support::assert_silent(&r, &secret, "changed data key");

    // One byte of a ciphertext changed.
    let at = good.find("data:").expect("data") + 5;
    let mut bytes = good.clone().into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&file, bytes).expect("flip");
    let r = f.render(config);
    r.code(3).stdout_is("").stderr_has("t.enc.yaml");
    support::assert_silent(&r, &secret, "flipped ciphertext");
}

#[test]
fn a_wrong_key_is_exit_5_naming_the_file_and_its_recipients() {
    let f = Fixture::new();
    f.encrypt("s.enc.yaml", NESTED, &[]);
    let other = age_key(&f.path("keys"), "other.txt");
    let mut vars = f.base_vars();
    vars.push(("SOPS_AGE_KEY_FILE".into(), other.file.display().to_string()));
    let r = f.render_with(&["render"], "x: <<sops|s.enc.yaml:db.password>>\n", &vars);
    r.code(5)
        .stdout_is("")
        .stderr_has("s.enc.yaml")
        .stderr_has(&f.key.recipient);
    assert!(
        !r.stderr.contains(&other.secret[15..]),
        "a key reached stderr"
    );
}

#[test]
fn no_key_configured_is_exit_5_saying_where_keys_are_looked_for() {
    let f = Fixture::new();
    f.encrypt("s.enc.yaml", NESTED, &[]);
    let r = f.render_with(
        &["render"],
        "x: <<sops|s.enc.yaml:db.password>>\n",
        &f.base_vars(),
    );
    r.code(5)
        .stdout_is("")
        .stderr_has("SOPS_AGE_KEY_FILE")
        .stderr_has("SOPS_AGE_KEY_CMD")
        .stderr_has("home/.config/sops/age/keys.txt");
}

#[test]
fn each_place_sops_reads_age_keys_from() {
    let f = Fixture::new();
    f.encrypt("s.enc.yaml", NESTED, &[]);
    let config = "x: <<sops|s.enc.yaml:db.password>>\n";
    let with = |extra: Vec<(String, String)>| {
        let mut v = f.base_vars();
        v.extend(extra);
        f.render_with(&["render"], config, &v)
            .code(0)
            .stdout_is("x: hunter2\n");
    };
    with(vec![("SOPS_AGE_KEY".into(), f.key.secret.clone())]);
    with(vec![(
        "SOPS_AGE_KEY_FILE".into(),
        f.key.file.display().to_string(),
    )]);
    with(vec![(
        "SOPS_AGE_KEY_CMD".into(),
        format!("cat '{}'", f.key.file.display()),
    )]);
    // The default keys file under XDG_CONFIG_HOME, else under HOME.
    let xdg = f.path("xdg");
    std::fs::create_dir_all(xdg.join("sops/age")).expect("xdg");
    std::fs::copy(&f.key.file, xdg.join("sops/age/keys.txt")).expect("copy");
    with(vec![("XDG_CONFIG_HOME".into(), xdg.display().to_string())]);
    let home_keys = f.path("home/.config/sops/age");
    std::fs::create_dir_all(&home_keys).expect("home config");
    std::fs::copy(&f.key.file, home_keys.join("keys.txt")).expect("copy");
    with(Vec::new());
}

/// A `sops` that logs each run (and whether it saw an age key variable),
/// sleeps `sleep` seconds, and runs the real one.
fn logging_sops(dir: &Path, sleep: &str) -> (PathBuf, PathBuf) {
    let real = std::env::split_paths(&std::env::var_os("PATH").expect("PATH"))
        .map(|d| d.join("sops"))
        .find(|p| p.is_file())
        .expect("sops on PATH (installed by .ci/deps)");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let log = dir.join("sops.log");
    let script = format!(
        "#!/bin/sh\necho \"run age=${{SOPS_AGE_KEY:+set}}\" >> '{}'\nsleep {sleep}\nexec '{}' \"$@\"\n",
        log.display(),
        real.display()
    );
    let wrapper = bin.join("sops");
    std::fs::write(&wrapper, script).expect("wrapper");
    let mut perms = std::fs::metadata(&wrapper).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&wrapper, perms).expect("chmod");
    (bin, log)
}

/// A file encrypted for a new key of moto's KMS.
fn kms_file(f: &Fixture, name: &str, plain: &str) -> PathBuf {
    let arn = kms_key();
    encrypt(
        f.dir.path(),
        name,
        plain,
        &["--kms", &arn],
        &aws_env(&moto().url()),
    )
}

#[test]
fn kms_files_go_through_the_sops_binary_once_per_render_without_the_age_key() {
    let f = Fixture::new();
    let secret = canary();
    kms_file(
        &f,
        "k.enc.yaml",
        &format!("db:\n  password: {secret}\n  user: admin\n"),
    );
    let (bin, log) = logging_sops(f.dir.path(), "0");
    let mut vars = f.vars();
    vars.extend(aws_env(&moto().url()));
    vars.push(("SOPS_AGE_KEY".into(), f.key.secret.clone()));
    vars.push(("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())));
    let mut config = String::new();
    let mut want = String::new();
    for i in 0..30 {
        let (k, v) = if i % 2 == 0 {
            ("password", secret.as_str())
        } else {
            ("user", "admin")
        };
        let _ = writeln!(config, "k{i}: <<sops|k.enc.yaml:db.{k}>>");
        let _ = writeln!(want, "k{i}: {v}");
    }
    let r = f.render_with(&["render", "--timeout", "30s"], &config, &vars);
    r.code(0).stdout_is(&want);
    assert!(!r.stderr.contains(&secret), "a value reached stderr");
    let runs = std::fs::read_to_string(&log).expect("sops log");
    assert_eq!(runs, "run age=\n", "one sops run, without SOPS_AGE_KEY");
}

#[test]
fn files_for_the_sops_binary_are_decrypted_concurrently() {
    let f = Fixture::new();
    let mut config = String::new();
    for i in 0..4 {
        kms_file(&f, &format!("k{i}.enc.yaml"), &format!("v: value{i}\n"));
        let _ = writeln!(config, "k{i}: <<sops|k{i}.enc.yaml:v>>");
    }
    // Each run takes 2 s: one after another they would pass the 5 s deadline.
    let (bin, log) = logging_sops(f.dir.path(), "2");
    let mut vars = f.vars();
    vars.extend(aws_env(&moto().url()));
    vars.push(("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())));
    f.render_with(&["render", "--timeout", "5s"], &config, &vars)
        .code(0)
        .stdout_is("k0: value0\nk1: value1\nk2: value2\nk3: value3\n");
    let runs = std::fs::read_to_string(&log).expect("sops log");
    assert_eq!(runs.lines().count(), 4, "{runs}");
}

#[test]
fn key_groups_go_through_the_sops_binary_with_the_age_keys() {
    let f = Fixture::new();
    let second = age_key(&f.path("keys"), "second.txt");
    std::fs::write(
        f.path(".sops.yaml"),
        format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{}]\n      - age: [{}]\n",
            f.key.recipient, second.recipient
        ),
    )
    .expect(".sops.yaml");
    let mut cmd = Command::new("sops");
    support::scrub(&mut cmd);
    std::fs::write(f.path("plain.yaml"), "pw: split\n").expect("plain");
    let out = cmd
        .current_dir(f.dir.path())
        .args(["encrypt", "plain.yaml"])
        .output()
        .expect("run sops");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(f.path("g.enc.yaml"), out.stdout).expect("file");
    let (bin, log) = logging_sops(f.dir.path(), "0");
    let mut vars = f.base_vars();
    vars.push((
        "SOPS_AGE_KEY".into(),
        format!("{}\n{}", f.key.secret, second.secret),
    ));
    vars.push(("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())));
    f.render_with(&["render"], "x: <<sops|g.enc.yaml:pw>>\n", &vars)
        .code(0)
        .stdout_is("x: split\n");
    // The file names age recipients, so the binary needs the age keys.
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "run age=set\n");
    let empty = f.path("empty-bin");
    std::fs::create_dir(&empty).expect("bin");
    vars.retain(|(k, _)| k != "PATH");
    vars.push(("PATH".into(), empty.display().to_string()));
    f.render_with(&["render"], "x: <<sops|g.enc.yaml:pw>>\n", &vars)
        .code(5)
        .stdout_is("")
        .stderr_has("key groups");
}

#[test]
fn kms_files_without_a_sops_binary_name_their_key_service() {
    let f = Fixture::new();
    kms_file(&f, "k.enc.yaml", "password: pw\n");
    let empty = f.path("empty-bin");
    std::fs::create_dir(&empty).expect("bin");
    let mut vars = f.vars();
    vars.extend(aws_env(&moto().url()));
    vars.push(("PATH".into(), empty.display().to_string()));
    f.render_with(&["render"], "x: <<sops|k.enc.yaml:password>>\n", &vars)
        .code(5)
        .stdout_is("")
        .stderr_has("k.enc.yaml")
        .stderr_has("AWS KMS")
        .stderr_has("`sops` binary");
}

#[test]
fn identities_are_read_once_per_render_however_many_files_and_references() {
    let f = Fixture::new();
    f.encrypt("a.enc.yaml", NESTED, &[]);
    f.encrypt("b.enc.json", r#"{"k": "v"}"#, &[]);
    let log = f.path("cmd.log");
    let script = f.path("keys.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\ncat '{}'\n",
            log.display(),
            f.key.file.display()
        ),
    )
    .expect("script");
    let mut vars = f.base_vars();
    vars.push((
        "SOPS_AGE_KEY_CMD".into(),
        format!("sh '{}'", script.display()),
    ));
    let mut config = String::new();
    for i in 0..20 {
        let _ = writeln!(config, "a{i}: <<sops|a.enc.yaml:db.password>>");
        let _ = writeln!(config, "b{i}: <<sops|b.enc.json:k>>");
    }
    f.render_with(&["render"], &config, &vars).code(0);
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        "run\n",
        "the key command ran once"
    );
}

#[test]
fn check_resolve_and_redact() {
    let f = Fixture::new();
    let secret = canary();
    f.encrypt("s.enc.yaml", &format!("pw: {secret}\n"), &[]);
    let r = f.render_with(
        &["check", "--resolve"],
        "a: <<sops|s.enc.yaml:pw>>\nb: <<sops|s.enc.yaml:nope>>\nc: <<sops|gone.enc.yaml:pw>>\n",
        &f.vars(),
    );
    r.code(4);
    support::assert_silent(&r, &secret, "check --resolve");
    assert!(r.stdout.contains("[found]"), "{}", r.stdout);
    assert!(r.stdout.contains("[not found]"), "{}", r.stdout);
    let r = f.render_with(
        &["render", "--redact"],
        "a: <<sops|s.enc.yaml:pw>>\n",
        &f.vars(),
    );
    r.code(0);
    support::assert_silent(&r, &secret, "render --redact");
}

#[test]
fn a_sops_file_that_never_ends_stops_at_the_timeout_and_the_size_limit() {
    let f = Fixture::new();
    let fifo = f.path("stuck.enc.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success(), "mkfifo");
    f.render_with(
        &["render", "--timeout", "1s"],
        "x: <<sops|stuck.enc.yaml:a>>\n",
        &f.vars(),
    )
    .code(5)
    .stdout_is("")
    .stderr_has("stuck.enc.yaml");
    f.encrypt("big.enc.yaml", NESTED, &[]);
    f.render_with(
        &["render", "--max-secret-size", "100"],
        "x: <<sops|big.enc.yaml:db.password>>\n",
        &f.vars(),
    )
    .code(3)
    .stdout_is("")
    .stderr_has("--max-secret-size");
}

/// `sops set` (as `sops edit` does) rewrites a sops file kept outside the
/// config's folder: `watch` follows the file itself and renders the new value.
#[test]
fn watch_renders_again_when_a_sops_file_is_edited() {
    let f = Fixture::new();
    std::fs::create_dir(f.path("secrets")).expect("folder");
    let first = canary();
    let second = canary();
    let made = f.encrypt("s.enc.yaml", &format!("db:\n  password: {first}\n"), &[]);
    std::fs::rename(made, f.path("secrets/s.enc.yaml")).expect("move into secrets/");
    std::fs::write(
        f.path("config.yaml"),
        "password: <<sops|secrets/s.enc.yaml:db.password>>\n",
    )
    .expect("config");
    let vars = f.vars();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = f.path("out.yaml");
    let t = std::time::Duration::from_secs(20);
    let poll = std::time::Duration::from_millis(20);
    let mut w = support::watch::Watch::start(
        f.dir.path(),
        &["watch", "config.yaml", "-o", "out.yaml"],
        &env,
    );
    let expect = |value: &str| format!("password: {value}\n");
    if let Err(held) = support::watch::wait_for_file(&out, expect(&first).as_bytes(), t, poll) {
        panic!("first render: {held:?}\nstderr:\n{}", w.stderr());
    }
    w.wait_renders(1, t);
    let mut cmd = Command::new("sops");
    support::scrub(&mut cmd);
    let set = cmd
        .current_dir(f.dir.path())
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args(["set", "secrets/s.enc.yaml", r#"["db"]["password"]"#])
        .arg(format!("\"{second}\""))
        .output()
        .expect("run sops set");
    assert!(
        set.status.success(),
        "sops set failed: {}",
        String::from_utf8_lossy(&set.stderr)
    );
    if let Err(held) = support::watch::wait_for_file(&out, expect(&second).as_bytes(), t, poll) {
        panic!("after sops set: {held:?}\nstderr:\n{}", w.stderr());
    }
    let line = w.wait_render_ending(1, " written", t);
    // The line names the file whose values changed, never a value.
    assert_eq!(
        line,
        "keyfill: input changed (new values: sops|secrets/s.enc.yaml): out.yaml written"
    );
    let stderr = w.stderr();
    assert!(
        !stderr.contains(&first) && !stderr.contains(&second),
        "{stderr}"
    );
    assert!(w.running(), "{stderr}");
}
