//! Diagnostics and the one place where they become exit statuses.
//!
//! Every problem keyfill finds is a [`Diagnostic`]: a message, the class that decides
//! the exit code, and where it has one a source location. Messages name files,
//! secrets, providers and locators — never a secret value. Work goes on after an
//! error wherever that is meaningful, so one run reports every problem it can find.

use std::fmt;
use std::ops::Range;

/// Process exit statuses (SPEC §5): keyfill's own classes, and the status of
/// the command `exec` ran, so that every path exits through this one type.
/// The numbers are a public contract; the order of the variants is the order
/// of urgency (`Exit::worst`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exit {
    /// Success: 0.
    Ok,
    /// Command-line usage error: 2.
    Usage,
    /// Invalid input: syntax, unknown reference, cycle, type, limits: 3.
    Invalid,
    /// A secret, file, variable, version or JSON key does not exist: 4.
    NotFound,
    /// A provider is unreachable or denied access: 5.
    Provider,
    /// The output could not be written: 6.
    Output,
    /// The command `exec` was to run cannot be run: 126, as shells say.
    CannotRun,
    /// The command `exec` was to run does not exist: 127, as shells say.
    NoCommand,
    /// The command `exec` ran exited with this status.
    Child(u8),
    /// The command `exec` ran died of this signal: 128+n.
    Signal(u8),
    /// `keyfill diff`: the output would change: 1.
    Changed,
}

impl Exit {
    /// The numeric process status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Usage => 2,
            Exit::Invalid => 3,
            Exit::NotFound => 4,
            Exit::Provider => 5,
            Exit::Output => 6,
            Exit::CannotRun => 126,
            Exit::NoCommand => 127,
            Exit::Child(code) => code,
            Exit::Signal(n) => 128u8.saturating_add(n & 0x7f),
            Exit::Changed => 1,
        }
    }

    /// Most urgent class first: a config error outranks a missing secret, which
    /// outranks an unreachable provider, which outranks an unwritable output.
    pub fn worst(classes: impl IntoIterator<Item = Exit>) -> Exit {
        classes
            .into_iter()
            .filter(|c| *c != Exit::Ok)
            .min()
            .unwrap_or(Exit::Ok)
    }
}

/// Error or warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Stops the run with the diagnostic's exit class.
    Error,
    /// Reported; the run goes on.
    Warning,
}

/// Identifies a [`crate::source::Source`] in the run's source list.
pub(crate) type SourceId = usize;

/// A byte range in one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Which source.
    pub source: SourceId,
    /// Byte range of the offending text.
    pub span: Range<usize>,
}

/// One reported problem. Holds no secret value by construction: every message
/// is built from names, locators and fixed text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub(crate) severity: Severity,
    /// Exit class when this is an error.
    pub(crate) class: Exit,
    /// One-line description.
    pub(crate) message: String,
    /// Where, when known.
    pub location: Option<Location>,
    /// Label under the caret.
    pub(crate) label: Option<String>,
    /// Extra lines: hints, "did you mean", the cycle.
    pub(crate) notes: Vec<String>,
    /// Whether the source line may be quoted. Off for syntax errors: before the
    /// document parses, keyfill cannot know which bytes are inline secrets.
    pub(crate) snippet: bool,
    /// A second place the diagnostic names (the first of two duplicates), with
    /// its label. Boxed: most diagnostics have none, and the type travels in
    /// `Result`s.
    pub related: Option<Box<(Location, String)>>,
}

impl Diagnostic {
    /// An error of the given class.
    pub fn error(class: Exit, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            class,
            message: message.into(),
            location: None,
            label: None,
            notes: Vec::new(),
            snippet: true,
            related: None,
        }
    }

    /// An invalid-input error (exit 3).
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::error(Exit::Invalid, message)
    }

    /// A warning; never changes the exit status by itself.
    pub(crate) fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(Exit::Ok, message)
        }
    }

    /// Attaches a location.
    pub(crate) fn at(mut self, source: SourceId, span: Range<usize>) -> Self {
        self.location = Some(Location { source, span });
        self
    }

    /// Names a second place, in the same source, with a label for it.
    pub(crate) fn also_at(
        mut self,
        source: SourceId,
        span: Range<usize>,
        label: impl Into<String>,
    ) -> Self {
        self.related = Some(Box::new((Location { source, span }, label.into())));
        self
    }

    /// Reports the location without quoting the source line.
    pub(crate) fn without_snippet(mut self) -> Self {
        self.snippet = false;
        self
    }

    /// Sets the caret label.
    pub(crate) fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a note line.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Whether this diagnostic fails the run.
    pub(crate) fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The one sink of a run's diagnostics: every phase (scan, declarations, plan,
/// fetch, evaluation, render) pushes here, and the reporter prints it once.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records one diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Records many.
    pub fn extend(&mut self, ds: impl IntoIterator<Item = Diagnostic>) {
        self.items.extend(ds);
    }

    /// Records a warning (a provider's note about an insecure setting, say).
    pub fn warn(&mut self, message: impl Into<String>) {
        self.items.push(Diagnostic::warning(message));
    }

    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// A mark to ask later what was recorded after it ([`Diagnostics::since`]).
    pub fn mark(&self) -> usize {
        self.items.len()
    }

    /// What was recorded after `mark`.
    pub fn since(&self, mark: usize) -> &[Diagnostic] {
        self.items.get(mark..).unwrap_or_default()
    }

    /// What was recorded after `mark`, to complete (a location found later).
    pub(crate) fn since_mut(&mut self, mark: usize) -> &mut [Diagnostic] {
        self.items.get_mut(mark..).unwrap_or_default()
    }

    /// Forgets what was recorded after `mark`.
    pub(crate) fn truncate(&mut self, mark: usize) {
        self.items.truncate(mark);
    }

    /// The last diagnostic recorded after `mark`, to complete it (a location).
    pub fn last_since(&mut self, mark: usize) -> Option<&mut Diagnostic> {
        if self.items.len() > mark {
            self.items.last_mut()
        } else {
            None
        }
    }

    /// The exit status the recorded errors call for.
    pub fn exit(&self) -> Exit {
        Exit::worst(self.items.iter().filter(|d| d.is_error()).map(|d| d.class))
    }

    /// Every diagnostic, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// All diagnostics, in the order found.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// Puts errors first, then warnings, each in source order: the order of a report.
    pub fn sort_for_report(&mut self) {
        self.items.sort_by_key(|d| {
            let loc = d
                .location
                .as_ref()
                .map_or((usize::MAX, 0), |l| (l.source, l.span.start));
            (!d.is_error(), loc)
        });
    }

    /// Takes all diagnostics out.
    pub fn take(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.items)
    }
}

/// Quotes untrusted text (names, locators, keys) for a message. Control and
/// bidirectional characters are escaped, and long text cut, where every message
/// is printed (`report::sanitize`), so they are left as they are here.
pub(crate) fn quoted(text: &str) -> String {
    format!("`{text}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_prefers_invalid_input() {
        assert_eq!(
            Exit::worst([Exit::Provider, Exit::Invalid, Exit::NotFound]),
            Exit::Invalid
        );
        assert_eq!(Exit::worst([Exit::Output, Exit::Provider]), Exit::Provider);
        assert_eq!(Exit::worst([]), Exit::Ok);
    }

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let table = [
            (Exit::Ok, 0),
            (Exit::Usage, 2),
            (Exit::Invalid, 3),
            (Exit::NotFound, 4),
            (Exit::Provider, 5),
            (Exit::Output, 6),
            (Exit::CannotRun, 126),
            (Exit::NoCommand, 127),
            (Exit::Child(0), 0),
            (Exit::Child(42), 42),
            (Exit::Child(255), 255),
            (Exit::Signal(9), 137),
            (Exit::Signal(15), 143),
            (Exit::Changed, 1),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn quoted_leaves_escaping_to_the_reporter() {
        // Escaping here as well would print `\u{1b}` as `\\u{1b}` or hide it twice.
        assert_eq!(quoted("a\u{1b}[2Jb"), "`a\u{1b}[2Jb`");
    }
}
