//! The encoder registration table: one line per encoder. The reference grammar
//! sees only the words generated here (`$<PW|url>`), so it builds without any
//! encoder's code.

/// The encoder table: `Variant => module "word"`: the variant of
/// [`EncoderKind`], the encoder's module under `src/encode/` (each has
/// `encode(&str) -> Result<String, Refusal>`) and the word a reference names it
/// with. The order here is the order of every list shown to users. `$callback`
/// receives the table.
macro_rules! encoders {
    ($callback:ident) => {
        $callback! {
            Url => url "url",
            Json => json "json",
            Shell => shell "shell",
            Yaml => yaml "yaml",
            Base64 => base64 "base64",
            Base64Url => base64url "base64url",
        }
    };
}
pub(crate) use encoders;

macro_rules! kinds {
    ($($variant:ident => $module:ident $word:literal,)+) => {
        /// The encoders keyfill knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum EncoderKind {
            $(
                #[doc = concat!("`|", $word, "`")]
                $variant,
            )+
        }

        impl EncoderKind {
            /// Every encoder, in table order.
            const ALL: &'static [EncoderKind] = &[$(EncoderKind::$variant,)+];

            /// The word a reference names it with.
            pub(crate) fn word(self) -> &'static str {
                match self {
                    $(EncoderKind::$variant => $word,)+
                }
            }
        }
    };
}
encoders!(kinds);

impl EncoderKind {
    /// The encoder a word names, if any.
    pub(crate) fn from_word(word: &str) -> Option<EncoderKind> {
        Self::ALL.iter().copied().find(|k| k.word() == word)
    }

    /// `url, json, …` for messages.
    pub(crate) fn known_list() -> String {
        Self::ALL
            .iter()
            .map(|k| k.word())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The known word closest to a typo, if any is close.
    pub(crate) fn closest(word: &str) -> Option<&'static str> {
        let words: Vec<&'static str> = Self::ALL.iter().map(|k| k.word()).collect();
        crate::suggest::closest(word, &words)
    }
}

impl std::fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}
