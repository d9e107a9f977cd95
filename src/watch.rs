//! `keyfill watch`, and the render loop `exec --watch` shares: render, then
//! re-render when an input changes or a refresh is due.
//!
//! Inputs are watched through their folders, not as files: editors that save by
//! writing a temporary file and renaming it over the old one, and Kubernetes
//! ConfigMap mounts that swap a `..data` symlink, replace the file a per-file
//! watch would follow. Events for other names in those folders, and for our own
//! output, are ignored; a burst of events is one render (`--debounce`). A render
//! that fails leaves the last good output as it was.
//!
//! Local files a provider reads values from (sops files: `Provider::watched`)
//! are watched the same way, as the last render found them, so that
//! `sops edit` re-renders.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};

use crate::config::{LoopConfig, RenderConfig};
use crate::error::{Diagnostic, Exit};
use crate::output::{self, Outcome};
use crate::report::Reporter;
use crate::resolve::Cache;
use crate::secret::SecretText;
use crate::signals;

/// What wakes the loop.
#[derive(Debug)]
pub(crate) enum Event {
    /// An input changed.
    Files,
    /// A `--refresh` period passed.
    Refresh,
    /// A signal arrived.
    Signal(i32),
    /// A child process ended: its pid and exit status (`exec --watch`).
    Exited(i32, Exit),
    /// A render on the worker thread ended (`exec --watch`): whether the output
    /// changed, and the exported values.
    Rendered(bool, Vec<(String, SecretText)>),
}

/// How a render went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendered {
    /// The output now holds new bytes.
    Written,
    /// The output already held these bytes; nothing was written.
    Unchanged,
    /// Nothing was written; the status says why.
    Failed(Exit),
}

/// Renders one configuration again and again, keeping fetched values between
/// renders for the cache TTL.
pub struct Loop {
    input: RenderConfig,
    out: LoopConfig,
    cache: Cache,
    /// Providers, kept between renders (a Vault AppRole token with them).
    registry: Option<crate::provider::Registry>,
    seen: Vec<Stamp>,
    /// The local files the last render's providers read (shared with the
    /// [`InputWatch`] that watches them), each as that render found it.
    provided: Provided,
    provided_seen: Vec<Stamp>,
    /// Until when a render waits for an input that looks mid-save.
    held: Option<Instant>,
    /// Whether a write holds termination signals (off when they are forwarded).
    pub(crate) defer_signals: bool,
    /// Length and keyed hash of the bytes last written through (`-o` a FIFO,
    /// a device, stdout), where no file can be compared: identical bytes are
    /// not written again, and `exec --watch` does not reload for them.
    through: Option<(usize, u64)>,
    hasher: std::hash::RandomState,
}

/// How long a render waits for an input that is missing or empty to be
/// written again: editors pass through both states mid-save (vim renames the
/// file away first, a plain write truncates it first), and rendering then
/// would replace a good output with an error or an empty file.
const MID_SAVE: Duration = Duration::from_secs(1);

/// What identifies an input's content without reading it: where its path
/// leads (a `..data` swap changes that), and the file's identity, size and time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    target: Option<PathBuf>,
    meta: Option<(u64, u64, u64, std::time::SystemTime)>,
}

/// Files providers read values from, as the last render named them.
pub(crate) type Provided = Arc<Mutex<Vec<PathBuf>>>;

fn provided_now(p: &Provided) -> Vec<PathBuf> {
    p.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn stamp(path: impl AsRef<Path>) -> Stamp {
    let path = path.as_ref();
    use std::os::unix::fs::MetadataExt as _;
    Stamp {
        target: std::fs::canonicalize(path).ok(),
        meta: std::fs::metadata(path).ok().map(|m| {
            (
                m.dev(),
                m.ino(),
                m.len(),
                m.modified().unwrap_or(std::time::UNIX_EPOCH),
            )
        }),
    }
}

/// A render's reason: "input changed" only when an input differs from what
/// the last render read; our own reads make file events too.
fn why(files: bool, changed: bool) -> &'static str {
    if files && changed {
        "input changed"
    } else {
        "refresh"
    }
}

impl Loop {
    /// A loop over `input` writing to `out`; `export` also computes every
    /// declared secret (for `exec --env`).
    pub fn new(input: &RenderConfig, out: &LoopConfig, export: bool) -> Self {
        let mut input = input.clone();
        input.options.export = export;
        Loop {
            input,
            out: out.clone(),
            cache: Cache::new(out.cache_ttl),
            registry: None,
            seen: Vec::new(),
            provided: Provided::default(),
            provided_seen: Vec::new(),
            held: None,
            defer_signals: true,
            through: None,
            hasher: std::hash::RandomState::new(),
        }
    }

    fn stamps(&self) -> Vec<Stamp> {
        self.input
            .files
            .iter()
            .chain(&self.input.catalogues)
            .map(stamp)
            .collect()
    }

    /// Whether an input differs from what the last render read. File events
    /// also come from reading (our own render opens the inputs), so an event
    /// alone is no reason to render.
    pub(crate) fn inputs_changed(&self) -> bool {
        self.stamps() != self.seen || self.provided_stamps() != self.provided_seen
    }

    fn provided_stamps(&self) -> Vec<Stamp> {
        provided_now(&self.provided).iter().map(stamp).collect()
    }

    /// The files providers read values from, as the last render named them,
    /// for an [`InputWatch`] to follow.
    pub(crate) fn provided(&self) -> Provided {
        self.provided.clone()
    }

    /// What a render after a burst of events is for: "input changed" only when
    /// an input differs from what the last render read. Our own reads make file
    /// events too, which may arrive in the same burst as a refresh request.
    pub fn reason(&self, files: bool) -> &'static str {
        why(files, files && self.inputs_changed())
    }

    /// Whether to render now, after a burst of file events (`files`) and/or a
    /// refresh request (`refresh`), and what for ([`Loop::reason`]). A render
    /// waits while an input is missing or empty, until the next file event or
    /// [`Loop::held`] passes; after that it renders whatever is there (and
    /// reports it). The inputs are compared once, so the reason given is the
    /// one the decision was made on, even when a save lands in between.
    pub(crate) fn due(&mut self, refresh: bool, files: bool) -> Option<&'static str> {
        let changed = self.inputs_changed();
        let why = why(files, changed);
        if refresh {
            self.cache.refresh();
        } else if !changed {
            self.held = None;
            return None;
        }
        let provided = provided_now(&self.provided);
        let whole = self
            .input
            .files
            .iter()
            .chain(&self.input.catalogues)
            .map(Path::new)
            .chain(provided.iter().map(PathBuf::as_path))
            .all(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0));
        let now = Instant::now();
        match self.held {
            Some(until) if !whole && now < until => None,
            None if !whole => {
                self.held = Some(now + MID_SAVE);
                None
            }
            _ => {
                self.held = None;
                Some(why)
            }
        }
    }

    /// When a render held back for a mid-save input happens anyway, if one is.
    pub(crate) fn held(&self) -> Option<Instant> {
        self.held
    }

    /// Renders and writes the output; the declared secrets' values when the
    /// loop exports them. Reports one line on stderr.
    pub fn render(
        &mut self,
        reporter: &Reporter,
        why: &str,
    ) -> (Rendered, Vec<(String, SecretText)>) {
        self.seen = self.stamps();
        let before = provided_now(&self.provided);
        let before_seen = self.provided_stamps();
        // Checked on every render: a link swap can make an input the output.
        let (files, catalogues) = (&self.input.files, &self.input.catalogues);
        let audit = self.input.audit.as_deref();
        if let Err(d) = output::refuse_input_as_output(&self.out.output, files, catalogues, audit) {
            return (Rendered::Failed(reporter.fail(d)), Vec::new());
        }
        let mut session = self.input.session();
        if let Some(r) = self.registry.take() {
            session.registry = r;
        }
        session.cache = Some(std::mem::take(&mut self.cache));
        let bytes = self.input.render(&mut session);
        // A file first read by this render is stamped now; the others as they
        // were before it, so that an edit during the render is not missed.
        let now = std::mem::take(&mut session.provided);
        self.provided_seen = now
            .iter()
            .map(|p| match before.iter().position(|b| b == p) {
                Some(i) => before_seen[i].clone(),
                None => stamp(p),
            })
            .collect();
        *self.provided.lock().unwrap_or_else(PoisonError::into_inner) = now;
        self.registry = Some(std::mem::take(&mut session.registry));
        self.cache = session
            .cache
            .take()
            .unwrap_or_else(|| Cache::new(self.out.cache_ttl));
        let exported = std::mem::take(&mut session.exported);
        let status = session.report(reporter);
        let shown = self.out.output.display().to_string();
        let changed = self.cache.take_changed();
        let Some(bytes) = bytes else {
            let outcome = if self.out.output.exists() {
                "failed"
            } else {
                "nothing written"
            };
            reporter.render(why, &changed, &shown, outcome);
            return (Rendered::Failed(status), Vec::new());
        };
        let through = output::writes_through(&self.out.output).then(|| {
            (
                bytes.len(),
                std::hash::BuildHasher::hash_one(&self.hasher, &bytes),
            )
        });
        if through.is_some() && through == self.through {
            reporter.render(why, &changed, &shown, "unchanged");
            return (Rendered::Unchanged, exported);
        }
        let wopts = output::WriteOptions {
            defer_signals: self.defer_signals,
            ..self.out.write
        };
        let written = output::write(&self.out.output, &bytes, wopts);
        self.through = through.filter(|_| written.is_ok());
        match written {
            Ok(Outcome::Unchanged) => {
                reporter.render(why, &changed, &shown, "unchanged");
                (Rendered::Unchanged, exported)
            }
            Ok(_) => {
                reporter.render(why, &changed, &shown, "written");
                (Rendered::Written, exported)
            }
            Err(d) => (Rendered::Failed(reporter.fail(d)), Vec::new()),
        }
    }
}

fn split(path: &Path) -> Option<(PathBuf, OsString)> {
    let name = path.file_name()?.to_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent).ok()?;
    Some((dir, name))
}

/// The folders whose changes can change what `path` reads: its folder, the
/// folder of every symlink on the way (a Kubernetes `..data` swap, a switched
/// `current` link), and the folder of the file it finally resolves to.
fn folders_for(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some((dir, _)) = split(path) {
        out.push(dir);
    }
    let mut prefix = PathBuf::new();
    for part in path.components() {
        prefix.push(part);
        let is_link = std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            if let Some((dir, _)) = split(&prefix) {
                out.push(dir);
            }
        }
    }
    if let Some(dir) = std::fs::canonicalize(path)
        .ok()
        .and_then(|t| t.parent().map(Path::to_owned))
    {
        out.push(dir);
    }
    out
}

/// The inputs' folders under watch, re-armed as symlinks move.
pub(crate) struct InputWatch {
    debouncer: Debouncer<RecommendedWatcher>,
    files: Vec<String>,
    /// Files providers read values from, as the loop's last render named them.
    provided: Provided,
    dirs: HashSet<PathBuf>,
}

impl InputWatch {
    fn wanted(&self) -> HashSet<PathBuf> {
        let provided = provided_now(&self.provided);
        self.files
            .iter()
            .map(Path::new)
            .chain(provided.iter().map(PathBuf::as_path))
            .flat_map(folders_for)
            .collect()
    }

    /// Also watches the files `lp`'s renders read values from (a sops file),
    /// as the last render named them; call [`InputWatch::rearm`] after each
    /// render to follow changes of that list.
    pub(crate) fn follow(&mut self, lp: &Loop) {
        self.provided = lp.provided();
        self.rearm();
    }

    /// Watches the folders the inputs now lead to, and drops those they no
    /// longer do. Called after every burst of events.
    pub(crate) fn rearm(&mut self) {
        let wanted = self.wanted();
        for gone in self.dirs.difference(&wanted) {
            let _ = self.debouncer.watcher().unwatch(gone);
        }
        let mut now = HashSet::new();
        for dir in wanted {
            let ok = self.dirs.contains(&dir)
                || self
                    .debouncer
                    .watcher()
                    .watch(&dir, RecursiveMode::NonRecursive)
                    .is_ok();
            if ok {
                now.insert(dir);
            }
        }
        self.dirs = now;
    }
}

/// Starts watching the inputs' folders; bursts of events arrive as
/// [`Event::Files`] (whether an input really changed is decided by
/// [`Loop::inputs_changed`]). Events for our own output are ignored.
pub(crate) fn watch_inputs(
    input: &RenderConfig,
    out: &LoopConfig,
    tx: mpsc::Sender<Event>,
) -> Result<InputWatch, Diagnostic> {
    let mut files = Vec::new();
    for f in input.files.iter().chain(&input.catalogues) {
        if f == "-" {
            return Err(Diagnostic::error(
                Exit::Usage,
                "standard input (`-`) cannot be watched; name the files",
            ));
        }
        if split(Path::new(f)).is_none() {
            return Err(Diagnostic::error(
                Exit::Invalid,
                format!("cannot watch `{f}`: no such folder"),
            ));
        }
        files.push(f.clone());
    }
    let output = split(&out.output).ok_or_else(|| {
        Diagnostic::error(
            Exit::Output,
            format!("the folder of `{}` does not exist", out.output.display()),
        )
    })?;
    // Through a symlink, the writes (temporary file and rename) happen at its
    // final target, possibly in an input's folder.
    let target = output::final_file(&out.output).and_then(|f| split(&f));
    let debouncer = new_debouncer(out.debounce, move |res: DebounceEventResult| {
        if let Ok(events) = res {
            let at = |p: &Path, (dir, name): &(PathBuf, OsString)| {
                p.parent() == Some(dir.as_path())
                    && (p.file_name() == Some(name.as_os_str())
                        || p.file_name().is_some_and(output::is_temp_name))
            };
            let ours = |p: &Path| at(p, &output) || target.as_ref().is_some_and(|t| at(p, t));
            if events.iter().any(|e| !ours(&e.path)) {
                let _ = tx.send(Event::Files);
            }
        }
    })
    .map_err(|e| Diagnostic::error(Exit::Invalid, format!("cannot watch files: {e}")))?;
    let mut w = InputWatch {
        debouncer,
        files,
        provided: Provided::default(),
        dirs: HashSet::new(),
    };
    w.rearm();
    if w.dirs.is_empty() {
        return Err(Diagnostic::error(
            Exit::Invalid,
            "cannot watch the inputs' folders",
        ));
    }
    Ok(w)
}

/// Sends [`Event::Refresh`] every `period`, for as long as the receiver lives.
pub(crate) fn refresh_ticks(period: Duration, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(period);
        if tx.send(Event::Refresh).is_err() {
            return;
        }
    });
}

/// Sends every arrival of a signal in `set` as [`Event::Signal`].
pub(crate) fn signal_events(set: &[i32], tx: mpsc::Sender<Event>) -> Result<(), Diagnostic> {
    signals::on_each(set, move |s| tx.send(Event::Signal(s)).is_ok())
        .map_err(|e| Diagnostic::error(Exit::Invalid, format!("cannot handle signals: {e}")))
}

/// The next message, or `due` once `until` passes (a held render is due then,
/// as if files had changed); `None` when every sender is gone.
pub(crate) fn next<T>(rx: &mpsc::Receiver<T>, until: Option<Instant>, due: T) -> Option<T> {
    match until {
        Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => Some(due),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        },
        None => rx.recv().ok(),
    }
}

/// Takes every event already waiting, so that a burst is one render.
pub(crate) fn drain(rx: &mpsc::Receiver<Event>, first: Event) -> Vec<Event> {
    let mut all = vec![first];
    while let Ok(e) = rx.try_recv() {
        all.push(e);
    }
    all
}

/// Runs `keyfill watch` until SIGTERM or SIGINT (exit 0).
pub fn watch(input: &RenderConfig, out: &LoopConfig, reporter: &Reporter) -> Exit {
    let (tx, rx) = mpsc::channel();
    if let Err(d) = signal_events(&signals::WATCHED, tx.clone()) {
        return reporter.fail(d);
    }
    signals::stop_waiting_on(&signals::STOP);
    let audit = input.audit.as_deref();
    if let Err(d) =
        output::refuse_input_as_output(&out.output, &input.files, &input.catalogues, audit)
    {
        return reporter.fail(d);
    }
    let mut watcher = match watch_inputs(input, out, tx.clone()) {
        Ok(w) => w,
        Err(d) => {
            return reporter.fail(d);
        }
    };
    if let Some(period) = out.refresh {
        refresh_ticks(period, tx.clone());
    }
    drop(tx);
    let mut lp = Loop::new(input, out, false);
    // SIGTERM, SIGINT and SIGHUP are this loop's to handle, also mid-write.
    lp.defer_signals = false;
    lp.render(reporter, "start");
    watcher.follow(&lp);
    loop {
        let Some(first) = next(&rx, lp.held(), Event::Files) else {
            break;
        };
        let events = drain(&rx, first);
        if events
            .iter()
            .any(|e| matches!(e, Event::Signal(s) if signals::is_stop(*s)))
        {
            return Exit::Ok;
        }
        let refresh = events
            .iter()
            .any(|e| matches!(e, Event::Refresh | Event::Signal(_)));
        if events.iter().any(|e| matches!(e, Event::Files)) {
            watcher.rearm();
        }
        let files = events.iter().any(|e| matches!(e, Event::Files));
        let Some(why) = lp.due(refresh, files) else {
            continue;
        };
        lp.render(reporter, why);
        watcher.rearm();
    }
    Exit::Ok
}
