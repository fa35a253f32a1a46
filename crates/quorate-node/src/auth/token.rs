//! API tokens: random bearer secrets that configs hold only as salted SHA-256 hashes.
//!
//! A token is `qrt_` and 64 hex digits (256 random bits). It has that much entropy, so one round of SHA-256 over a
//! random per-token salt is enough to keep it out of config files and memory dumps: there is no password to guess,
//! and a slow hash would cost every request. A presented token is compared with every configured hash in constant
//! time, so the time a refusal takes says nothing about how close a guess was.

use std::fmt;

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// What every token starts with, so that a leaked one is easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "qrt_";

const SALT_BYTES: usize = 16;
const SECRET_BYTES: usize = 32;
const HASH_SCHEME: &str = "sha256";

/// A token's salted hash, as a config file holds it: `sha256:<salt hex>:<digest hex>`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash {
    salt: [u8; SALT_BYTES],
    digest: [u8; 32],
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{HASH_SCHEME}:{}:{}", hex(&self.salt), hex(&self.digest))
    }
}

/// A token could not be made (the system's random source failed).
#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct RandomError;

impl TokenHash {
    /// Parses `sha256:<32 hex digits of salt>:<64 hex digits of digest>`.
    ///
    /// # Errors
    ///
    /// A message saying which part is malformed (never echoing more than the scheme).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.trim().split(':');
        let (Some(scheme), Some(salt), Some(digest), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("must be `{HASH_SCHEME}:<salt>:<digest>` as `quorate token new` prints it"));
        };
        if scheme != HASH_SCHEME {
            return Err(format!("unknown hash scheme {scheme:?}: only {HASH_SCHEME:?} is supported"));
        }
        let salt = unhex::<SALT_BYTES>(salt).ok_or("the salt must be 32 hex digits")?;
        let digest = unhex::<32>(digest).ok_or("the digest must be 64 hex digits")?;
        Ok(TokenHash { salt, digest })
    }

    /// The hash of `token` under a fresh random salt.
    ///
    /// # Errors
    ///
    /// [`RandomError`] if the system's random source fails.
    pub fn new(token: &str) -> Result<Self, RandomError> {
        let mut salt = [0; SALT_BYTES];
        SystemRandom::new().fill(&mut salt).map_err(|_| RandomError)?;
        Ok(TokenHash { salt, digest: salted(&salt, token) })
    }

    /// Whether `token` is the one this hash was made from (constant time in the digest comparison).
    pub fn matches(&self, token: &str) -> bool {
        let candidate = salted(&self.salt, token);
        // Fold every byte: no early exit on the first difference.
        candidate.iter().zip(self.digest).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// A fresh random token: [`TOKEN_PREFIX`] and 64 hex digits.
///
/// # Errors
///
/// [`RandomError`] if the system's random source fails.
pub fn generate() -> Result<String, RandomError> {
    let mut secret = [0; SECRET_BYTES];
    SystemRandom::new().fill(&mut secret).map_err(|_| RandomError)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&secret)))
}

fn salted(salt: &[u8], token: &str) -> [u8; 32] {
    let mut input = Vec::with_capacity(salt.len() + token.len());
    input.extend_from_slice(salt);
    input.extend_from_slice(token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, &input).as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_matches_its_hash_and_nothing_else() {
        let token = generate().unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 64);
        let hash = TokenHash::new(&token).unwrap();
        assert!(hash.matches(&token));
        assert!(!hash.matches(&generate().unwrap()));
        assert!(!hash.matches(""));
        let reparsed = TokenHash::parse(&hash.to_string()).unwrap();
        assert_eq!(reparsed, hash);
        assert!(reparsed.matches(&token));
        assert_ne!(TokenHash::new(&token).unwrap(), hash, "every hash has its own salt");
    }

    #[test]
    fn malformed_hashes_are_refused_with_a_reason() {
        for bad in ["", "sha256", "md5:00:00", "sha256:zz:00", &format!("sha256:{}:{}", "0".repeat(32), "0".repeat(63))]
        {
            assert!(TokenHash::parse(bad).is_err(), "{bad}");
        }
    }
}
