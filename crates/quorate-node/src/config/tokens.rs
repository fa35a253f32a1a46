//! `[[tokens]]`: the API tokens a node accepts, each a name, roles and a salted hash.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::auth::{Role, TokenHash, TokenRule};
use crate::error::ConfigError;

/// One `[[tokens]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Who it is for, e.g. `api-servers`: logs and refusals name it, never the token.
    pub name: String,
    /// What it may call: `check`, `report_load`, `admin`.
    pub roles: Vec<String>,
    /// `sha256:<salt>:<digest>`, as `quorate token new` prints it.
    pub hash: String,
}

/// Validates the `[[tokens]]` entries: unique non-empty names, known roles, well-formed hashes.
pub(super) fn tokens(raw: &[RawToken]) -> Result<Vec<TokenRule>, ConfigError> {
    let mut rules: Vec<TokenRule> = Vec::with_capacity(raw.len());
    for (i, token) in raw.iter().enumerate() {
        let field = |key: &str| format!("tokens[{i}].{key}");
        let name = token.name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(ConfigError::new(field("name"), "must be 1 to 64 characters"));
        }
        if rules.iter().any(|rule| rule.name == name) {
            return Err(ConfigError::new(field("name"), format!("{name:?} names another token too")));
        }
        if token.roles.is_empty() {
            return Err(ConfigError::new(field("roles"), "must list at least one of check, report_load, admin"));
        }
        let roles = token
            .roles
            .iter()
            .map(|role| Role::parse(role))
            .collect::<Result<BTreeSet<Role>, String>>()
            .map_err(|e| ConfigError::new(field("roles"), e))?;
        let hash = TokenHash::parse(&token.hash).map_err(|e| ConfigError::new(field("hash"), e))?;
        rules.push(TokenRule { name: name.to_owned(), roles, hash });
    }
    Ok(rules)
}
