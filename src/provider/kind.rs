//! The providers keyfill knows, by the words a reference names them with. A leaf:
//! the reference grammar reads these words without depending on any provider's
//! code (and so on no SDK).

/// The providers keyfill knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    /// AWS Secrets Manager.
    Aws,
    /// HashiCorp Vault / OpenBao KV.
    Vault,
    /// 1Password (Connect or the `op` CLI).
    OnePassword,
    /// Environment variables.
    Env,
    /// Files.
    File,
}

impl ProviderKind {
    const WORDS: [(&'static str, ProviderKind); 6] = [
        ("aws", ProviderKind::Aws),
        ("vault", ProviderKind::Vault),
        ("op", ProviderKind::OnePassword),
        ("onepassword", ProviderKind::OnePassword),
        ("env", ProviderKind::Env),
        ("file", ProviderKind::File),
    ];

    /// The provider a reference word names (`op` and `onepassword` are one).
    pub fn from_word(word: &str) -> Option<Self> {
        Self::WORDS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, k)| *k)
    }

    /// The known words, for messages.
    pub fn known_list() -> String {
        Self::WORDS
            .iter()
            .map(|(w, _)| *w)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The known word closest to a typo, if any is close.
    pub fn closest(word: &str) -> Option<&'static str> {
        let words: Vec<&'static str> = Self::WORDS.iter().map(|(w, _)| *w).collect();
        crate::suggest::closest(word, &words)
    }

    /// Canonical name.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Vault => "vault",
            ProviderKind::OnePassword => "onepassword",
            ProviderKind::Env => "env",
            ProviderKind::File => "file",
        }
    }

    /// Whether fetching talks to a remote service.
    pub fn is_remote(self) -> bool {
        matches!(
            self,
            ProviderKind::Aws | ProviderKind::Vault | ProviderKind::OnePassword
        )
    }
}
