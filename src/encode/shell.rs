//! `|shell`: one POSIX shell word, single-quoted where needed (shlex's quoting):
//! `$`, backquotes, quotes, spaces, globs and line breaks stay literal. A NUL
//! byte cannot be in any shell word, so it is refused.

pub(super) fn encode(value: &str) -> Result<String, super::Refusal> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| "the value holds a NUL byte, which no shell word can hold")
}
