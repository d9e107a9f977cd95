//! The reference grammar on arbitrary text: no panic, every range in bounds and on
//! char boundaries, every reference's range spells it, and the escaped form of any
//! text parses back to exactly that text.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The grammar's own files, compiled here without the keyfill crate: the grammar
// imports only the provider and encoder words (src/layering.rs checks it), so this target
// builds without any provider or SDK.
#[allow(dead_code)]
#[path = "../../src/suggest.rs"]
mod suggest;
#[path = "../../src/encode"]
mod encode {
    #[allow(dead_code, unused_imports)]
    pub mod kind;
}
#[path = "../../src/provider"]
mod provider {
    #[allow(dead_code, unused_imports)]
    pub mod kind;
}
#[allow(dead_code)]
#[path = "../../src/reference.rs"]
mod reference;

use reference::{parse, Part, Template};

#[path = "common/escape.rs"]
mod escape;
use escape::escape;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (t, errors) = parse(s);
    for e in &errors {
        assert!(
            e.range.start < e.range.end && e.range.end <= s.len(),
            "{s:?}: {e:?}"
        );
        assert!(
            s.is_char_boundary(e.range.start) && s.is_char_boundary(e.range.end),
            "{s:?}: {e:?}"
        );
    }
    check_parts(s, &t);
    if errors.is_empty() && !t.has_refs() {
        // No reference and no error: the value is its text with escapes applied,
        // which is never longer than the text.
        let lit: usize = t.parts.iter().map(|p| literal(p).len()).sum();
        assert!(lit <= s.len(), "{s:?}");
    }

    let escaped = escape(s);
    let (back, errors) = parse(&escaped);
    assert!(
        errors.is_empty(),
        "{s:?} escaped as {escaped:?}: {errors:?}"
    );
    let expected: Vec<Part> = if s.is_empty() {
        Vec::new()
    } else {
        vec![Part::Literal(s.to_owned())]
    };
    assert_eq!(back.parts, expected, "{s:?} escaped as {escaped:?}");
});

fn literal(p: &Part) -> &str {
    match p {
        Part::Literal(l) => l,
        _ => "",
    }
}

fn check_parts(s: &str, t: &Template) {
    let mut prev_end = 0;
    let mut prev_literal = false;
    for p in &t.parts {
        match p {
            Part::Literal(l) => {
                assert!(!l.is_empty(), "{s:?}: empty literal");
                assert!(!prev_literal, "{s:?}: adjacent literals not merged");
                prev_literal = true;
                continue;
            }
            Part::Secret(r) => {
                let r2 = r.range.clone();
                assert!(r2.start >= prev_end && r2.end <= s.len(), "{s:?}: {r:?}");
                assert!(s.is_char_boundary(r2.start) && s.is_char_boundary(r2.end));
                let mut spelled = format!("$<{}", r.name);
                for seg in &r.path {
                    spelled.push('.');
                    spelled.push_str(seg);
                }
                spelled.push('>');
                assert_eq!(&s[r2.clone()], spelled, "{s:?}");
                assert!(reference::is_valid_name(&r.name), "{s:?}");
                prev_end = r2.end;
            }
            Part::Direct(r) => {
                let r2 = r.range.clone();
                assert!(r2.start >= prev_end && r2.end <= s.len(), "{s:?}: {r:?}");
                assert!(s.is_char_boundary(r2.start) && s.is_char_boundary(r2.end));
                let text = &s[r2.clone()];
                assert!(text.starts_with("<<"), "{s:?}");
                assert!(text.ends_with(&format!("|{}>>", r.locator)), "{s:?}: {r:?}");
                assert!(!r.locator.contains(['\n', '\r']), "{s:?}");
                assert!(!r.locator.trim().is_empty(), "{s:?}");
                prev_end = r2.end;
            }
        }
        prev_literal = false;
    }
}
