//! The providers keyfill knows, by the words a reference names them with. A leaf:
//! the reference grammar reads these words without depending on any provider's
//! code (and so on no SDK).
//!
//! [`providers!`](crate::provider::kind::providers) is the registration table:
//! one line per provider, which generates the kind enum and its words here, and
//! the locator enum, every dispatch and the registry in [`crate::provider`].

/// The registration table. Each line is `Variant => module::ClientType
/// ["word", …]`: the variant of [`ProviderKind`], the provider's module under
/// `src/provider/` (also its canonical name), the type implementing
/// [`crate::provider::Provider`], and the words a reference or a long-form
/// declaration names it with. The order here is the order of every list shown
/// to users. `$callback` receives the table.
macro_rules! providers {
    ($callback:ident) => {
        $callback! {
            Aws => aws::AwsProvider ["aws"],
            Ssm => ssm::SsmProvider ["ssm"],
            Vault => vault::VaultProvider ["vault"],
            Sops => sops::SopsProvider ["sops"],
            OnePassword => onepassword::OnePasswordProvider ["op", "onepassword"],
            Env => env::EnvProvider ["env"],
            File => file::FileProvider ["file"],
        }
    };
}
pub(crate) use providers;

macro_rules! kinds {
    ($($variant:ident => $module:ident :: $client:ident [$($word:literal),+],)+) => {
        /// The providers keyfill knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum ProviderKind {
            $(
                #[doc = concat!("The `", stringify!($module), "` provider.")]
                $variant,
            )+
        }

        impl ProviderKind {
            /// Every provider, in table order.
            pub(crate) const ALL: &'static [ProviderKind] = &[$(ProviderKind::$variant,)+];

            /// Every word, with the provider it names, in table order.
            pub(crate) const WORDS: &'static [(&'static str, ProviderKind)] =
                &[$($(($word, ProviderKind::$variant),)+)+];

            /// Canonical name (the provider's module).
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(ProviderKind::$variant => stringify!($module),)+
                }
            }
        }
    };
}
providers!(kinds);

impl ProviderKind {
    /// The provider a word names (`op` and `onepassword` are one), with the
    /// word as the table spells it, so messages can say what the user wrote.
    pub(crate) fn from_word(word: &str) -> Option<Self> {
        Self::word(word).map(|(_, k)| k)
    }

    /// The table's own spelling of `word`, and the provider it names.
    pub(crate) fn word(word: &str) -> Option<(&'static str, Self)> {
        Self::WORDS.iter().find(|(w, _)| *w == word).copied()
    }

    /// Every known word, in table order.
    pub(crate) fn words() -> impl Iterator<Item = &'static str> {
        Self::WORDS.iter().map(|(w, _)| *w)
    }

    /// The known words, for messages.
    pub(crate) fn known_list() -> String {
        Self::words().collect::<Vec<_>>().join(", ")
    }

    /// The known word closest to a typo, if any is close.
    pub(crate) fn closest(word: &str) -> Option<&'static str> {
        let words: Vec<&'static str> = Self::words().collect();
        crate::suggest::closest(word, &words)
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
