//! Who may call a node: bearer tokens with roles, and the per-listener rules that check them.
//!
//! Transport security (TLS, and mutual TLS between peers) is in [`crate::tls`]; this module decides, for a
//! request that got through the handshake, whether its caller may call that method.

mod access;
mod role;
mod token;

use std::collections::BTreeSet;

pub use access::{Access, AccessLayer, AccessService, ListenerKind};
pub use role::Role;
pub use token::{RandomError, TOKEN_PREFIX, TokenHash, generate};

/// One configured token: a name for logs, its roles, and its salted hash (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRule {
    /// Who the token is for, e.g. `api-servers`: named in refusals and logs instead of the token.
    pub name: String,
    /// What it may call.
    pub roles: BTreeSet<Role>,
    /// Its salted hash.
    pub hash: TokenHash,
}
