//! The one "did you mean": the candidate closest to a word the user wrote, when
//! it is close enough to be the word meant. Case is ignored for closeness (a
//! shifted `AWS` or `Db_Password` is still that name) and used to break ties.

/// The candidate closest to `word`, if close enough to suggest: at most one edit
/// per three characters (at least one), counted without regard to case.
pub(crate) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_lowercase();
    candidates
        .iter()
        .filter(|c| **c != word)
        .map(|c| {
            let folded = strsim::damerau_levenshtein(&lower, &c.to_lowercase());
            (*c, folded, strsim::damerau_levenshtein(word, c))
        })
        .filter(|(c, d, _)| *d <= (c.chars().count().max(word.chars().count()) / 3).max(1))
        .min_by_key(|(_, folded, exact)| (*folded, *exact))
        .map(|(c, _, _)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_close_words_and_only_those() {
        let words = ["aws", "vault", "op", "onepassword", "env", "file"];
        assert_eq!(closest("AWS", &words), Some("aws"));
        assert_eq!(closest("valt", &words), Some("vault"));
        assert_eq!(closest("onepasword", &words), Some("onepassword"));
        assert_eq!(closest("zzzzzz", &words), None);
        assert_eq!(
            closest("aws", &words),
            None,
            "an exact word needs no suggestion"
        );
        let names = ["DB_PASSWORD", "DB_USER", "default"];
        assert_eq!(closest("DB_PASWORD", &names), Some("DB_PASSWORD"));
        assert_eq!(closest("db_password", &names), Some("DB_PASSWORD"));
        assert_eq!(closest("defualt", &names), Some("default"));
        assert_eq!(closest("xyz", &names), None);
    }
}
