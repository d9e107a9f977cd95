//! age identities, from where sops reads them (age/keysource.go): all of
//! `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, the output of `SOPS_AGE_KEY_CMD`
//! (split as a shell would, run without one) and the default keys file
//! `$XDG_CONFIG_HOME/sops/age/keys.txt`, else `~/.config/sops/age/keys.txt`;
//! and the data key unwrapped with the identities matching a file's recipients.
//! Key material never enters a message: sources are named, never quoted.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Instant;

use age::armor::ArmoredReader;
use age::x25519;
use secrecy::{ExposeSecret, SecretBox};

use super::decrypt::AgeKey;
use super::run;

/// The age identities found, and what was looked at.
pub(crate) struct Identities {
    ids: Vec<x25519::Identity>,
    /// Every place looked in, for the message when nothing was found.
    pub(crate) looked: Vec<String>,
    /// Sources that could not be read, each named with why (never its content).
    pub(crate) problems: Vec<String>,
    /// The sources identities were found in, named.
    pub(crate) found_in: Vec<String>,
}

/// The variable holding keys, one per line.
pub(crate) const KEY_VAR: &str = "SOPS_AGE_KEY";
/// The variable naming a keys file.
pub(crate) const FILE_VAR: &str = "SOPS_AGE_KEY_FILE";
/// The variable holding a command that prints keys.
pub(crate) const CMD_VAR: &str = "SOPS_AGE_KEY_CMD";
/// Every variable sops reads age keys from, which the `sops` binary is given
/// only when a file it decrypts has age recipients.
pub(crate) const VARS: &[&str] = &[KEY_VAR, FILE_VAR, CMD_VAR, "SOPS_AGE_SSH_PRIVATE_KEY_FILE"];

/// The default keys file, as sops finds it on Linux (Go's `os.UserConfigDir`).
pub(crate) fn default_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("sops").join("age").join("keys.txt"))
}

impl Identities {
    /// Reads every source; `limit` bounds each (`--max-secret-size`), and the
    /// key command ends by `deadline`.
    pub(crate) fn load(limit: u64, deadline: Instant) -> Identities {
        let mut me = Identities {
            ids: Vec::new(),
            looked: Vec::new(),
            problems: Vec::new(),
            found_in: Vec::new(),
        };
        me.looked.push(KEY_VAR.to_owned());
        if let Some(v) = std::env::var_os(KEY_VAR) {
            let text = SecretBox::new(Box::new(v.to_string_lossy().into_owned()));
            me.add(KEY_VAR, text.expose_secret());
        }
        me.looked.push(FILE_VAR.to_owned());
        if let Some(path) = std::env::var_os(FILE_VAR) {
            let shown = format!("{FILE_VAR} (`{}`)", PathBuf::from(&path).display());
            me.read_file(&shown, &PathBuf::from(path), limit);
        }
        me.looked.push(CMD_VAR.to_owned());
        if let Some(cmd) = std::env::var_os(CMD_VAR) {
            me.run_cmd(&cmd.to_string_lossy(), limit, deadline);
        }
        if let Some(path) = default_file() {
            let shown = format!("`{}`", path.display());
            me.looked.push(shown.clone());
            if path.exists() {
                me.read_file(&shown, &path, limit);
            }
        }
        me
    }

    fn read_file(&mut self, shown: &str, path: &std::path::Path, limit: u64) {
        let mut buf = Vec::new();
        let read = std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut buf).map(|_| ()));
        let buf = SecretBox::new(Box::new(buf));
        match read {
            Err(e) => self.problems.push(format!("{shown} cannot be read: {e}")),
            Ok(()) if buf.expose_secret().len() as u64 > limit => self
                .problems
                .push(format!("{shown} is larger than {limit} bytes")),
            Ok(()) => match std::str::from_utf8(buf.expose_secret()) {
                Ok(text) => self.add(shown, text),
                Err(_) => self.problems.push(format!("{shown} is not text")),
            },
        }
    }

    fn run_cmd(&mut self, cmd: &str, limit: u64, deadline: Instant) {
        let Some(args) = shlex::split(cmd).filter(|a| !a.is_empty()) else {
            self.problems
                .push(format!("{CMD_VAR} is not a command line keyfill can split"));
            return;
        };
        let mut command = std::process::Command::new(&args[0]);
        command.args(&args[1..]);
        match run::run(command, limit, deadline) {
            Ok(out) if out.status.success() => match std::str::from_utf8(out.stdout.expose_secret())
            {
                Ok(text) => self.add(CMD_VAR, text),
                Err(_) => self.problems.push(format!("{CMD_VAR}'s output is not text")),
            },
            Ok(out) => self.problems.push(format!(
                "{CMD_VAR} (`{}`) failed ({})",
                args[0], out.status
            )),
            Err(e) => self
                .problems
                .push(format!("{CMD_VAR} (`{}`) {}", args[0], e.describe())),
        }
    }

    /// Reads identities, one a line; empty and `#` lines are skipped.
    fn add(&mut self, source: &str, text: &str) {
        let before = self.ids.len();
        let mut bad = 0;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.parse::<x25519::Identity>() {
                Ok(id) => self.ids.push(id),
                Err(_) => bad += 1,
            }
        }
        if self.ids.len() > before {
            self.found_in.push(source.to_owned());
        }
        if bad > 0 {
            self.problems.push(format!(
                "{source} has {bad} line(s) that are not age X25519 identities (`AGE-SECRET-KEY-1…`)"
            ));
        }
    }

    /// Whether any identity was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// How many identities were found.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The data key, unwrapped with an identity matching one of `keys`'
    /// recipients (tried in file order, as sops tries them).
    pub(crate) fn unwrap(&self, keys: &[AgeKey]) -> Unwrap {
        let mut failed = None;
        for key in keys {
            let matching: Vec<&x25519::Identity> = self
                .ids
                .iter()
                .filter(|id| id.to_public().to_string() == key.recipient)
                .collect();
            if matching.is_empty() {
                continue;
            }
            let decrypted = age::Decryptor::new(ArmoredReader::new(key.enc.as_bytes()))
                .and_then(|d| d.decrypt(matching.iter().map(|i| *i as &dyn age::Identity)));
            let mut buf = Vec::new();
            match decrypted.map(|mut r| r.read_to_end(&mut buf)) {
                Ok(Ok(_)) => return Unwrap::Key(SecretBox::new(buf.into_boxed_slice())),
                _ => failed = Some(key.recipient.clone()),
            }
        }
        match failed {
            Some(recipient) => Unwrap::Broken(recipient),
            None => Unwrap::NoMatch,
        }
    }
}

/// What unwrapping the data key gave.
pub(crate) enum Unwrap {
    /// The data key.
    Key(SecretBox<[u8]>),
    /// No identity is one of the recipients.
    NoMatch,
    /// A matching identity did not decrypt this recipient's entry.
    Broken(String),
}
