//! `|shell`: one POSIX shell word, as Python's `shlex.quote` writes it: a word of
//! only `A-Z a-z 0-9 _ @ % + = : , . / -` stays as it is; anything else is
//! single-quoted, each `'` written `'"'"'`. Inside single quotes nothing is
//! special (`$`, backquotes, `\`, globs, line breaks stay literal). A NUL byte
//! cannot be in any shell word, so it is refused.

pub(super) fn encode(value: &str) -> Result<String, super::Refusal> {
    if value.contains('\0') {
        return Err("the value holds a NUL byte, which no shell word can hold");
    }
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b);
    if !value.is_empty() && value.bytes().all(safe) {
        return Ok(value.to_owned());
    }
    Ok(format!("'{}'", value.replace('\'', "'\"'\"'")))
}
