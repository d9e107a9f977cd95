//! Time-based one-time passwords (RFC 6238) from a base32 seed, for `totp:`
//! declarations: the seed is the secret, the rendered value is the current code.

use std::ops::RangeInclusive;

use totp_rs::{Algorithm, Builder, Secret};

/// The HMAC a code is computed with. Only these three can be computed, so an
/// unknown name is refused where it is read, never turned into SHA1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum HashAlgorithm {
    /// HMAC-SHA1, the default of RFC 6238 and of authenticator apps.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl HashAlgorithm {
    /// Reads `SHA1`, `SHA256` or `SHA512`, in any case.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SHA1" => Some(HashAlgorithm::Sha1),
            "SHA256" => Some(HashAlgorithm::Sha256),
            "SHA512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    fn to_totp_rs(self) -> Algorithm {
        match self {
            HashAlgorithm::Sha1 => Algorithm::SHA1,
            HashAlgorithm::Sha256 => Algorithm::SHA256,
            HashAlgorithm::Sha512 => Algorithm::SHA512,
        }
    }
}

/// TOTP parameters, valid by construction wherever they are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TotpParams {
    /// Code length, within [`TotpParams::DIGITS`].
    pub(crate) digits: u32,
    /// Step in seconds, within [`TotpParams::PERIOD`].
    pub(crate) period: u64,
    /// HMAC algorithm.
    pub(crate) algorithm: HashAlgorithm,
}

impl Default for TotpParams {
    fn default() -> Self {
        TotpParams {
            digits: 6,
            period: 30,
            algorithm: HashAlgorithm::Sha1,
        }
    }
}

impl TotpParams {
    /// Code lengths keyfill computes.
    pub(crate) const DIGITS: RangeInclusive<u32> = 6..=8;
    /// Steps keyfill accepts, in seconds (up to a day).
    pub(crate) const PERIOD: RangeInclusive<u64> = 1..=86_400;

    /// A code length, if it is one keyfill computes.
    pub(crate) fn digits(text: &str) -> Option<u32> {
        text.parse().ok().filter(|d| Self::DIGITS.contains(d))
    }

    /// A step, if it is one keyfill accepts.
    pub(crate) fn period(text: &str) -> Option<u64> {
        text.parse().ok().filter(|p| Self::PERIOD.contains(p))
    }

    /// The seed and parameters of an `otpauth://totp/…` URI; `None` when it is not
    /// one, or names parameters keyfill cannot compute (never a silent default).
    pub(crate) fn from_otpauth(uri: &str) -> Option<(String, TotpParams)> {
        let rest = uri.strip_prefix("otpauth://totp/")?;
        let query = rest.split_once('?').map_or("", |(_, q)| q);
        let mut params = TotpParams::default();
        let mut seed = None;
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "secret" => seed = Some(v.to_owned()),
                "digits" => params.digits = Self::digits(v)?,
                "period" => params.period = Self::period(v)?,
                "algorithm" => params.algorithm = HashAlgorithm::parse(v)?,
                _ => {}
            }
        }
        Some((seed?, params))
    }
}

/// Why a seed cannot give a code. Never carries the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeedError {
    /// Not base32 (RFC 4648), after spaces, dashes and padding are removed.
    NotBase32,
    /// Decodes to nothing.
    Empty,
}

impl SeedError {
    /// What is wrong, for a message.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            SeedError::NotBase32 => "the TOTP seed is not base32 (RFC 4648 letters A-Z and 2-7)",
            SeedError::Empty => "the TOTP seed is empty",
        }
    }
}

/// The code for `seed` at `unix_time` (seconds). Seeds are accepted as
/// authenticator apps show them: any case, with spaces, dashes or `=` padding.
pub(crate) fn code_at(
    seed: &str,
    params: &TotpParams,
    unix_time: u64,
) -> Result<String, SeedError> {
    let cleaned: String = seed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .trim_end_matches('=')
        .to_ascii_uppercase();
    let secret = Secret::try_from_base32(&cleaned).map_err(|_| SeedError::NotBase32)?;
    if secret.as_ref().is_empty() {
        return Err(SeedError::Empty);
    }
    // Digits and period are valid by construction of `TotpParams`; seeds shorter than RFC 4226's recommended 128 bits are common (80-bit
    // seeds are what many services hand out), so they are accepted.
    let totp = Builder::new()
        .with_algorithm(params.algorithm.to_totp_rs())
        .with_digits(u8::try_from(params.digits).unwrap_or(6))
        .with_step_duration(params.period)
        .with_secret(secret)
        .build_noncompliant();
    Ok(totp.generate(unix_time).to_string())
}

/// The code for `seed` now.
pub(crate) fn code_now(seed: &str, params: &TotpParams) -> Result<String, SeedError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    code_at(seed, params, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(digits: u32, algorithm: &str) -> TotpParams {
        TotpParams {
            digits,
            period: 30,
            algorithm: HashAlgorithm::parse(algorithm).expect("known algorithm"),
        }
    }

    #[test]
    fn otpauth_uris_give_their_parameters_or_nothing() {
        let (seed, p) = TotpParams::from_otpauth(
            "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=8&period=60&algorithm=sha256",
        )
        .expect("valid");
        assert_eq!(seed, "JBSWY3DPEHPK3PXP");
        assert_eq!(
            p,
            TotpParams {
                digits: 8,
                period: 60,
                algorithm: HashAlgorithm::Sha256
            }
        );
        let defaults = TotpParams::from_otpauth("otpauth://totp/x?secret=AB").expect("valid");
        assert_eq!(defaults.1, TotpParams::default());
        for bad in [
            "otpauth://totp/x?secret=AB&algorithm=MD5",
            "otpauth://totp/x?secret=AB&digits=9",
            "otpauth://totp/x?secret=AB&period=0",
            "otpauth://totp/x?digits=6",
            "otpauth://hotp/x?secret=AB",
        ] {
            assert_eq!(TotpParams::from_otpauth(bad), None, "{bad}");
        }
    }

    /// The seeds of RFC 6238 appendix B, as base32.
    fn rfc_seed(algorithm: &str) -> String {
        let ascii = match algorithm {
            "SHA1" => "12345678901234567890".to_owned(),
            "SHA256" => "12345678901234567890123456789012".to_owned(),
            _ => "1234567890".repeat(6) + "1234",
        };
        Secret::from(ascii.into_bytes()).to_base32()
    }

    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in table {
            for (alg, want) in [("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)] {
                let got = code_at(&rfc_seed(alg), &params(8, alg), t);
                assert_eq!(got.as_deref(), Ok(want), "{alg} at {t}");
            }
        }
    }

    #[test]
    fn six_digits_keep_leading_zeros() {
        // RFC 6238 SHA1 at 1111111109 is 07081804; six digits are its last six.
        let got = code_at(&rfc_seed("SHA1"), &params(6, "SHA1"), 1111111109);
        assert_eq!(got.as_deref(), Ok("081804"));
    }

    #[test]
    fn seeds_as_apps_show_them() {
        let seed = rfc_seed("SHA1");
        let spaced: String = seed
            .to_ascii_lowercase()
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let want = code_at(&seed, &params(6, "SHA1"), 59);
        assert_eq!(code_at(&spaced, &params(6, "SHA1"), 59), want);
        assert_eq!(
            code_at(&format!("{seed}===="), &params(6, "SHA1"), 59),
            want
        );
        // An 80-bit seed (16 characters) is accepted.
        assert!(code_at("JBSWY3DPEHPK3PXP", &params(6, "SHA1"), 59).is_ok());
    }

    #[test]
    fn bad_seeds() {
        assert_eq!(
            code_at("not base32!", &params(6, "SHA1"), 0),
            Err(SeedError::NotBase32)
        );
        assert_eq!(code_at("  ", &params(6, "SHA1"), 0), Err(SeedError::Empty));
    }
}
