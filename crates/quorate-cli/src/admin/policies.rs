//! `quorate policies get|set|validate|diff`: the replicated policy set.
//!
//! `set` shows the diff against the set in force and asks before applying (`--yes` skips the question, and is
//! required when standard input is not a terminal); it applies only if the set is still the version it showed
//! the diff against (optimistic concurrency), so two operators cannot overwrite each other unseen. `validate`
//! parses a file locally with the node's own parser; `diff` shows what `set` would change.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use quorate_core::policy::PolicySet;
use quorate_proto::v1::{GetPoliciesRequest, SetPoliciesRequest};
use serde_json::json;
use similar::{ChangeTag, TextDiff};

use super::{AdminTarget, failed};
use crate::output;

/// Arguments of `quorate policies`.
#[derive(clap::Args, Debug, Clone)]
pub struct PoliciesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PoliciesCommand,
    /// The node to ask (not needed by `validate`).
    #[command(flatten)]
    pub target: AdminTarget,
}

/// The `quorate policies` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum PoliciesCommand {
    /// Prints the policy set in force (its TOML; with --json, its version too).
    Get,
    /// Replaces the policy set with a file, after showing the diff.
    Set {
        /// The policies TOML file.
        file: PathBuf,
        /// Applies without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Checks a policies file without sending it anywhere.
    Validate {
        /// The policies TOML file.
        file: PathBuf,
    },
    /// Shows what `set` would change.
    Diff {
        /// The policies TOML file.
        file: PathBuf,
    },
}

/// Runs `quorate policies`.
///
/// # Errors
///
/// An unreadable or invalid file (the message names the field), an unreachable node, a refused change, or a set
/// that changed since the diff was shown.
pub async fn run(args: PoliciesArgs) -> anyhow::Result<()> {
    if let PoliciesCommand::Validate { file } = &args.command {
        let (_, set) = read(file)?;
        let names: Vec<&str> = set.policies().map(|(_, p)| p.name()).collect();
        return match args.target.json {
            true => output::println(json!({ "valid": true, "policies": names })),
            false => output::println(format_args!(
                "{} is valid: {} policies ({})",
                file.display(),
                names.len(),
                names.join(", ")
            )),
        }
        .map_err(Into::into);
    }
    let mut admin = args.target.connect().await?;
    let current = admin.get_policies(GetPoliciesRequest {}).await.map_err(|s| failed("GetPolicies", &s))?.into_inner();
    match args.command {
        PoliciesCommand::Validate { .. } => Ok(()),
        PoliciesCommand::Get => {
            match args.target.json {
                true => output::println(json!({ "version": current.version, "toml": current.toml }))?,
                false => output::print(format_args!("# policy set version {}\n{}", current.version, current.toml))?,
            }
            Ok(())
        }
        PoliciesCommand::Diff { file } => {
            let (text, _) = read(&file)?;
            output::print(diff(&current.toml, &text, current.version, &file))?;
            Ok(())
        }
        PoliciesCommand::Set { file, yes } => {
            let (text, _) = read(&file)?;
            if text == current.toml {
                output::println(format_args!(
                    "no change: {} is the set in force (version {})",
                    file.display(),
                    current.version
                ))?;
                return Ok(());
            }
            if !yes {
                output::print(diff(&current.toml, &text, current.version, &file))?;
                if !std::io::stdin().is_terminal() {
                    bail!("not applied: pass --yes to apply without a terminal to confirm at");
                }
                if !confirm("apply this policy set?")? {
                    bail!("not applied");
                }
            }
            let request = SetPoliciesRequest { toml: text, expected_version: current.version };
            let applied = admin.set_policies(request).await.map_err(|status| match status.code() {
                tonic::Code::FailedPrecondition => anyhow::anyhow!(
                    "not applied: the policy set changed since version {} was read ({}); run again to see the new diff",
                    current.version,
                    status.message()
                ),
                _ => failed("SetPolicies", &status),
            })?;
            let version = applied.into_inner().version;
            match args.target.json {
                true => output::println(json!({ "version": version }))?,
                false => output::println(format_args!("applied: policy set version {version}"))?,
            }
            Ok(())
        }
    }
}

/// Reads and validates a policies file.
fn read(path: &Path) -> anyhow::Result<(String, PolicySet)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let set =
        PolicySet::from_toml(&text).with_context(|| format!("{} is not a valid policies file", path.display()))?;
    Ok((text, set))
}

/// A unified line diff from the set in force to the file.
fn diff(current: &str, next: &str, version: u64, file: &Path) -> String {
    let mut text = format!("--- policy set version {version} (in force)\n+++ {}\n", file.display());
    for change in TextDiff::from_lines(current, next).iter_all_changes() {
        let sign = match change.tag() {
            ChangeTag::Delete => '-',
            ChangeTag::Insert => '+',
            ChangeTag::Equal => continue,
        };
        text.push(sign);
        text.push_str(change.value());
        if !change.value().ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_shows_removed_and_added_lines_only() {
        let text = diff("a = 1\nb = 2\n", "a = 1\nb = 3\n", 4, Path::new("p.toml"));
        assert_eq!(text, "--- policy set version 4 (in force)\n+++ p.toml\n-b = 2\n+b = 3\n");
    }
}
