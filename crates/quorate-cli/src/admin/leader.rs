//! `quorate leader`: shows the leader, or makes the node asked campaign for leadership (`leader elect`).
//!
//! openraft 0.9 has no leadership transfer; a node that starts an election with an up-to-date log wins it, so
//! `quorate leader elect --endpoint <that node's admin listener>` is how to move the leader to a chosen node.

use quorate_proto::v1::{CampaignRequest, StatusRequest};
use serde_json::json;

use super::{AdminTarget, failed};
use crate::output;

/// Arguments of `quorate leader`.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaderArgs {
    /// What to do (default: show).
    #[command(subcommand)]
    pub command: Option<LeaderCommand>,
    /// The node to ask.
    #[command(flatten)]
    pub target: AdminTarget,
}

/// The `quorate leader` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum LeaderCommand {
    /// Shows the leader as the node sees it.
    Show,
    /// Makes the node at --endpoint start an election now (it wins with an up-to-date log).
    Elect,
}

/// Runs `quorate leader`.
///
/// # Errors
///
/// If the node cannot be reached, or no leader was elected in time.
pub async fn run(args: LeaderArgs) -> anyhow::Result<()> {
    let mut admin = args.target.connect().await?;
    match args.command.unwrap_or(LeaderCommand::Show) {
        LeaderCommand::Show => {
            let status = admin.status(StatusRequest {}).await.map_err(|s| failed("Status", &s))?.into_inner();
            let addr = status.members.iter().find(|m| m.id == status.leader_id).map(|m| m.addr.clone());
            match (args.target.json, status.leader_id) {
                (true, _) => output::println(json!({
                    "leader_id": status.leader_id, "term": status.term, "addr": addr, "asked": status.node_id,
                }))?,
                (false, 0) => {
                    output::println(format_args!("no leader known to node {} (term {})", status.node_id, status.term))?
                }
                (false, id) => output::println(format_args!(
                    "leader: node {id} at {} (term {}; asked node {})",
                    addr.unwrap_or_default(),
                    status.term,
                    status.node_id
                ))?,
            }
        }
        LeaderCommand::Elect => {
            let elected = admin.campaign(CampaignRequest {}).await.map_err(|s| failed("Campaign", &s))?.into_inner();
            match args.target.json {
                true => output::println(json!({ "leader_id": elected.leader_id, "term": elected.term }))?,
                false => output::println(format_args!("leader: node {} (term {})", elected.leader_id, elected.term))?,
            }
        }
    }
    Ok(())
}
