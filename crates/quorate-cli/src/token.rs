//! `quorate token new`: a fresh API token and the `[[tokens]]` entry that makes every node accept it.
//!
//! The token (256 random bits) is printed once, on standard output's first line, so that
//! `quorate token new --role check > api.token` leaves it in a file; the config entry, which holds only a salted
//! hash, goes to standard error. With `--json` both go to standard output as one object.

use anyhow::{Context, bail};
use quorate_node::auth::{Role, TokenHash, generate};
use serde_json::json;

use crate::output;

/// Arguments of `quorate token`.
#[derive(clap::Args, Debug, Clone)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// The `quorate token` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum TokenCommand {
    /// Prints a new token and the config entry (with its hash) for every node's config.
    New(NewArgs),
}

/// Arguments of `quorate token new`.
#[derive(clap::Args, Debug, Clone)]
pub struct NewArgs {
    /// What the token may call: check, report_load, admin (repeat or comma-separate for several).
    #[arg(long = "role", value_delimiter = ',', required = true, value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Who the token is for; refusals and logs name it, never the token.
    #[arg(long, default_value = "api-servers")]
    pub name: String,
    /// Prints {"name", "roles", "token", "hash"} as one JSON object instead.
    #[arg(long)]
    pub json: bool,
}

/// Runs `quorate token`.
///
/// # Errors
///
/// An unknown role, a bad name, or a failing system random source.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::New(args) => new(&args),
    }
}

fn new(args: &NewArgs) -> anyhow::Result<()> {
    let mut roles = Vec::new();
    for raw in &args.roles {
        let role = Role::parse(raw.trim()).map_err(anyhow::Error::msg)?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let name = args.name.trim();
    if name.is_empty() || name.len() > 64 || name.contains(['"', '\\', '\n']) {
        bail!("--name must be 1 to 64 characters, without quotes, backslashes or line breaks");
    }
    let token = generate().context("making a token")?;
    let hash = TokenHash::new(&token).context("hashing the token")?;
    let role_names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    if args.json {
        output::println(json!({ "name": name, "roles": role_names, "token": token, "hash": hash.to_string() }))?;
        return Ok(());
    }
    output::println(&token)?;
    let quoted: Vec<String> = role_names.iter().map(|r| format!("{r:?}")).collect();
    eprintln!(
        "\nAdd to every node's config (the token above is not stored anywhere; give it to {name}):\n\n\
         [[tokens]]\nname = \"{name}\"\nroles = [{}]\nhash = \"{hash}\"",
        quoted.join(", ")
    );
    Ok(())
}
