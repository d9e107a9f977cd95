//! `|yaml`: a double-quoted YAML scalar (quotes included), for a YAML document
//! carried in a block scalar (a ConfigMap's `config.yaml: |`): every line break,
//! control character and BOM escaped, read back exactly by YAML 1.1 and 1.2
//! readers, and valid JSON too. The emitter's own double-quoted style.

pub(super) fn encode(value: &str) -> Result<String, super::Refusal> {
    let mut out = String::with_capacity(value.len() + 2);
    crate::yaml::emit::double_quoted(value, &mut out);
    Ok(out)
}
