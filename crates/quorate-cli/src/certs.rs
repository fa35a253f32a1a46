//! `quorate certs init`: a private PKI for one cluster, so that TLS everywhere is a few commands.
//!
//! It writes a cluster CA, one certificate per node and one client certificate, all signed by that CA (ECDSA
//! P-256, rcgen on ring like the rest of Quorate's TLS):
//!
//! - `ca.pem`, `ca-key.pem`: the CA. Every node's config names `ca.pem`; keep `ca-key.pem` offline.
//! - `node<N>.pem`, `node<N>-key.pem`: node N's certificate for its public, peer and admin listeners and for the
//!   connections it opens to its peers. It names the host given for node N (`--san`, default
//!   `quorate-<N>.internal`) and loopback (`localhost`, `127.0.0.1`, `::1`, so that an operator on the node can
//!   reach its admin listener). A peer is accepted only if its certificate names its host as the membership lists
//!   it, so node certificates must name the hosts the `[peer] advertise` keys use.
//! - `client.pem`, `client-key.pem`: for operators and API servers where a listener requires client certificates
//!   (the sample admin listener does). It names no host, so it cannot pass as a peer.
//!
//! Private keys are written with mode 0600. Existing files are never overwritten unless `--force` is given.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

use crate::output;

/// The names every node certificate carries besides its host: an operator on the node reaches its admin
/// listener on loopback.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How long the CA is valid: ten years (node and client certificates are renewed under it).
const CA_DAYS: u64 = 3_650;

/// Arguments of `quorate certs`.
#[derive(clap::Args, Debug, Clone)]
pub struct CertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// The `quorate certs` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum CertsCommand {
    /// Writes a cluster CA, a certificate per node and a client certificate.
    Init(InitArgs),
}

/// Arguments of `quorate certs init`.
#[derive(clap::Args, Debug, Clone)]
pub struct InitArgs {
    /// How many node certificates to write (node1 ... nodeN).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub nodes: u64,
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Host name or IP address of each node, in node order (repeat or comma-separate); node N gets the N-th.
    /// Default: quorate-<N>.internal. Join several names for one node with '+' (e.g. host1+10.0.0.1).
    #[arg(long = "san", value_delimiter = ',', value_name = "HOST")]
    pub sans: Vec<String>,
    /// Days the node and client certificates are valid.
    #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub days: u64,
    /// Replaces existing files in --out.
    #[arg(long)]
    pub force: bool,
}

/// Runs `quorate certs`.
///
/// # Errors
///
/// Bad arguments, a file that exists (without `--force`) or cannot be written, or a certificate rcgen refuses.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    match args.command {
        CertsCommand::Init(args) => init(&args),
    }
}

/// Writes the CA, the node and the client certificates; prints what it wrote.
fn init(args: &InitArgs) -> anyhow::Result<()> {
    let hosts = node_hosts(args.nodes, &args.sans)?;
    let mut files = vec![PathBuf::from("ca.pem"), PathBuf::from("ca-key.pem")];
    for id in 1..=args.nodes {
        files.push(format!("node{id}.pem").into());
        files.push(format!("node{id}-key.pem").into());
    }
    files.extend([PathBuf::from("client.pem"), PathBuf::from("client-key.pem")]);
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    if !args.force {
        if let Some(existing) = files.iter().map(|f| args.out.join(f)).find(|p| p.exists()) {
            bail!("{} already exists; pass --force to replace the cluster's certificates", existing.display());
        }
    }

    let now = date_time_ymd(1970, 1, 1) + SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    // Backdated a little: a peer whose clock is slightly behind must not see a certificate from the future.
    let not_before = now - Duration::from_secs(3_600);
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "Quorate cluster CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = now + days(CA_DAYS);
    let ca_pem = ca.self_signed(&ca_key).context("signing the CA certificate")?.pem();
    write(&args.out.join("ca.pem"), &ca_pem, false)?;
    write(&args.out.join("ca-key.pem"), &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |common_name: &str, names: Vec<String>, purposes: Vec<ExtendedKeyUsagePurpose>| {
        let mut params = CertificateParams::new(names).context("a subject alternative name is not valid")?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = purposes;
        params.not_before = not_before;
        params.not_after = now + days(args.days);
        let key = KeyPair::generate().context("generating a key")?;
        let cert = params.signed_by(&key, &issuer).with_context(|| format!("signing {common_name}"))?;
        anyhow::Ok((cert.pem(), key.serialize_pem()))
    };
    let mut summary = String::new();
    for (id, names) in (1..=args.nodes).zip(hosts) {
        let all: Vec<String> = names.iter().cloned().chain(LOOPBACK_NAMES.map(String::from)).collect();
        let purposes = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let (cert, key) = leaf(&names[0], all, purposes)?;
        write(&args.out.join(format!("node{id}.pem")), &cert, false)?;
        write(&args.out.join(format!("node{id}-key.pem")), &key, true)?;
        summary.push_str(&format!("node{id}.pem      node {id}: {} (and loopback)\n", names.join(", ")));
    }
    let (cert, key) = leaf("quorate-client", Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth])?;
    write(&args.out.join("client.pem"), &cert, false)?;
    write(&args.out.join("client-key.pem"), &key, true)?;
    output::print(format_args!(
        "wrote to {dir}:\n\
         ca.pem          cluster CA (valid {CA_DAYS} days); ca-key.pem signs new certificates: keep it offline\n\
         {summary}\
         client.pem      client certificate for operators and API servers (--cert/--key)\n\
         node and client certificates are valid {days} days\n",
        dir = args.out.display(),
        days = args.days,
    ))?;
    Ok(())
}

/// The names of each node's certificate: the N-th `--san` entry (split on `+`) or `quorate-<N>.internal`.
fn node_hosts(nodes: u64, sans: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    if !sans.is_empty() && sans.len() as u64 != nodes {
        bail!("--san gives {} host(s) for {nodes} node(s): give one per node, in node order", sans.len());
    }
    (1..=nodes)
        .map(|id| match sans.get(id as usize - 1) {
            None => Ok(vec![format!("quorate-{id}.internal")]),
            Some(entry) => {
                let names: Vec<String> = entry.split('+').map(|n| n.trim().to_owned()).collect();
                if names.iter().any(|n| n.is_empty() || n.contains(char::is_whitespace)) {
                    bail!("--san {entry:?} (node {id}): host names must be non-empty and without spaces");
                }
                Ok(names)
            }
        })
        .collect()
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Writes a PEM file; a private key is readable by its owner only.
fn write(path: &Path, pem: &str, private: bool) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    file.write_all(pem.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_its_own_host_or_the_default() {
        assert_eq!(node_hosts(2, &[]).unwrap(), [["quorate-1.internal"], ["quorate-2.internal"]]);
        let sans = ["a.example".to_owned(), "b.example+10.0.0.2".to_owned()];
        assert_eq!(node_hosts(2, &sans).unwrap(), [vec!["a.example"], vec!["b.example", "10.0.0.2"]]);
        assert!(node_hosts(3, &sans).unwrap_err().to_string().contains("one per node"));
        assert!(node_hosts(1, &["a+".to_owned()]).is_err());
    }

    #[test]
    fn init_writes_a_ca_nodes_and_a_client_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let args = InitArgs { nodes: 2, out: dir.path().to_owned(), sans: Vec::new(), days: 30, force: false };
        init(&args).unwrap();
        for file in ["ca.pem", "ca-key.pem", "node1.pem", "node1-key.pem", "node2.pem", "client-key.pem"] {
            let text = fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{file}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join("node1-key.pem")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = init(&args).unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");
        init(&InitArgs { force: true, ..args }).unwrap();
    }
}
