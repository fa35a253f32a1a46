//! The peer listener's client-certificate check: a certificate the cluster CA signed is not enough, it must also
//! name a current member.
//!
//! [`MemberNames`] holds the host of every member's peer address (kept current from the Raft membership by
//! `listeners::watch_members`; before a node has a membership, the peers of its config); [`MemberVerifier`] first verifies the chain with rustls' WebPKI verifier, then requires the
//! certificate's subject alternative names to cover one of those hosts, exactly as a client checks a server's
//! name. Both happen during the handshake: a node from another cluster, or a client certificate of this cluster's
//! CA that names no member, never gets to send a single Raft message.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use rustls::client::verify_server_name;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// The peer hosts a node accepts, shared with the verifier: the current members' once the node has a
/// membership; before that (a fresh node waiting to be initialised or added), the hosts its config lists
/// (`[[peers]]` and its own); a fresh node whose config lists no peer at all accepts any certificate of the
/// cluster CA until it joins, since it has no other way to know who will add it.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemberNames(Arc<RwLock<Names>>);

#[derive(Debug, Default)]
struct Names {
    configured: BTreeSet<String>,
    members: BTreeSet<String>,
}

impl MemberNames {
    /// The names of a node whose config lists these peer hosts.
    pub(crate) fn configured(hosts: BTreeSet<String>) -> Self {
        MemberNames(Arc::new(RwLock::new(Names { configured: hosts, members: BTreeSet::new() })))
    }

    /// Replaces the members' hosts (called whenever the membership changes).
    pub(crate) fn set(&self, hosts: BTreeSet<String>) {
        self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()).members = hosts;
    }

    /// The hosts a peer's certificate must name one of; `None`: any certificate of the cluster CA.
    fn allowed(&self) -> Option<BTreeSet<String>> {
        let names = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match (names.members.is_empty(), names.configured.is_empty()) {
            (false, _) => Some(names.members.clone()),
            (true, false) => Some(names.configured.clone()),
            (true, true) => None,
        }
    }
}

/// Chain to the cluster CA, then a member's name.
#[derive(Debug)]
pub(crate) struct MemberVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    members: MemberNames,
}

impl MemberVerifier {
    pub(crate) fn new(chain: Arc<dyn ClientCertVerifier>, members: MemberNames) -> Self {
        MemberVerifier { chain, members }
    }
}

impl ClientCertVerifier for MemberVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self.chain.verify_client_cert(end_entity, intermediates, now)?;
        let Some(names) = self.members.allowed() else {
            return Ok(verified);
        };
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let member = names.iter().any(|host| {
            ServerName::try_from(host.as_str()).is_ok_and(|name| verify_server_name(&parsed, &name).is_ok())
        });
        if member {
            Ok(verified)
        } else {
            tracing::warn!(members = ?names, "refused a peer whose certificate names no current member");
            Err(Error::General("the certificate names no current member of this cluster".to_owned()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}
