//! `|json`: the inside of a JSON string (no quotes added): `"` and `\` escaped,
//! control characters as `\n`, `\t`, `\u0000`…, as serde_json writes strings.

pub(super) fn encode(value: &str) -> Result<String, super::Refusal> {
    let quoted = serde_json::to_string(value).map_err(|_| "the value cannot be written as JSON")?;
    // serde_json writes a string as `"…"`: keep what is between the quotes.
    Ok(quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned())
}
