//! Encoders: `$<NAME|url>`, chainable (`$<X|json|base64>`). Each makes a value
//! safe inside a second language that a YAML string carries (a URL, a JSON
//! string, a shell line, a YAML document in a block), so that no secret can
//! change the structure of that inner text either. `kind.rs` holds the table;
//! each encoder is one module.

pub(crate) mod kind;

use kind::{encoders, EncoderKind};

/// Why an encoder cannot write a value; names what, never the value.
pub(crate) type Refusal = &'static str;

macro_rules! dispatch {
    ($($variant:ident => $module:ident $word:literal,)+) => {
        $(mod $module;)+

        /// `value` through one encoder.
        fn apply(kind: EncoderKind, value: &str) -> Result<String, Refusal> {
            match kind {
                $(EncoderKind::$variant => $module::encode(value),)+
            }
        }
    };
}
encoders!(dispatch);

/// `value` through each encoder in turn; a refusal names the encoder.
pub(crate) fn chain(
    kinds: &[EncoderKind],
    value: String,
) -> Result<String, (EncoderKind, Refusal)> {
    kinds
        .iter()
        .try_fold(value, |v, &k| apply(k, &v).map_err(|why| (k, why)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(words: &[&str], value: &str) -> Result<String, (EncoderKind, Refusal)> {
        let kinds: Vec<EncoderKind> = words
            .iter()
            .map(|w| EncoderKind::from_word(w).expect("a known encoder"))
            .collect();
        chain(&kinds, value.to_owned())
    }

    #[test]
    fn each_encoder_on_a_hostile_value() {
        let v = "p@ss/w:rd?#%& 'q' \"d\" \\ $(x) `y` é\n\t";
        assert_eq!(
            enc(&["url"], v).expect("url"),
            "p%40ss%2Fw%3Ard%3F%23%25%26%20%27q%27%20%22d%22%20%5C%20%24%28x%29%20%60y%60%20%C3%A9%0A%09"
        );
        assert_eq!(
            enc(&["json"], v).expect("json"),
            "p@ss/w:rd?#%& 'q' \\\"d\\\" \\\\ $(x) `y` é\\n\\t"
        );
        assert_eq!(
            enc(&["yaml"], v).expect("yaml"),
            "\"p@ss/w:rd?#%& 'q' \\\"d\\\" \\\\ $(x) `y` é\\n\\t\""
        );
        assert_eq!(enc(&["base64"], "a?>b").expect("base64"), "YT8+Yg==");
        assert_eq!(enc(&["base64url"], "a?>b").expect("base64url"), "YT8-Yg");
        assert_eq!(
            enc(&["shell"], "plain-word_1.0").expect("shell"),
            "plain-word_1.0"
        );
        assert_eq!(enc(&["shell"], "").expect("shell"), "''");
    }

    #[test]
    fn encoders_chain_left_to_right() {
        assert_eq!(
            enc(&["json", "base64"], "a\"b").expect("chain"),
            enc(&["base64"], "a\\\"b").expect("base64")
        );
    }

    #[test]
    fn shell_refuses_a_nul_byte_naming_the_encoder() {
        // The chain stops at the refusing encoder.
        let (k, why) = enc(&["shell", "base64"], "a\0b").expect_err("NUL");
        assert_eq!(k, EncoderKind::Shell);
        assert!(why.contains("NUL"), "{why}");
    }

    #[test]
    fn words_and_suggestions() {
        assert_eq!(
            EncoderKind::from_word("base64url"),
            Some(EncoderKind::Base64Url)
        );
        assert_eq!(EncoderKind::from_word("URL"), None);
        assert_eq!(EncoderKind::closest("jsn"), Some("json"));
        assert_eq!(
            EncoderKind::known_list(),
            "url, json, shell, yaml, base64, base64url"
        );
    }
}
