//! `quorate members list|add|remove`: the cluster's membership.
//!
//! `add` makes the node a learner (the call returns once it has caught up with the log), then a voter; `remove`
//! changes the voters to all but the node. Both go through the leader and wait for the change to commit.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::bail;
use quorate_proto::v1::{AddLearnerRequest, ChangeMembershipRequest, Member, StatusRequest};
use serde_json::{Value, json};

use super::{AdminTarget, failed};
use crate::output;

/// Arguments of `quorate members`.
#[derive(clap::Args, Debug, Clone)]
pub struct MembersArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: MembersCommand,
    /// The node to ask.
    #[command(flatten)]
    pub target: AdminTarget,
}

/// The `quorate members` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum MembersCommand {
    /// Lists the members: id, public and peer addresses, voter or learner, leader.
    List,
    /// Adds a started node (bootstrap = false) as a learner, waits for it to catch up, then makes it a voter.
    Add {
        /// The new node's id (its config's `id`).
        #[arg(long)]
        id: u64,
        /// Its public listener (host:port), as clients reach it.
        #[arg(long, value_name = "HOST:PORT")]
        public: String,
        /// Its peer listener (host:port); with TLS its certificate must name this host.
        #[arg(long, value_name = "HOST:PORT")]
        peer: String,
        /// Leaves it a learner (receives the log, does not vote).
        #[arg(long)]
        learner: bool,
    },
    /// Removes a node from the voters (and the cluster).
    Remove {
        /// The node's id.
        #[arg(long)]
        id: u64,
    },
}

/// Runs `quorate members`.
///
/// # Errors
///
/// If the node cannot be reached or refuses the change (the message says why).
pub async fn run(args: MembersArgs) -> anyhow::Result<()> {
    let mut admin = args.target.connect().await?;
    let status = admin.status(StatusRequest {}).await.map_err(|s| failed("Status", &s))?.into_inner();
    let voters: BTreeSet<u64> = status.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    let members = match args.command {
        MembersCommand::List => status.members,
        MembersCommand::Add { id, public, peer, learner } => {
            if status.members.iter().any(|m| m.id == id && (m.voter || learner)) {
                bail!("node {id} is already a member");
            }
            let request = AddLearnerRequest { node_id: id, addr: public, peer_addr: peer };
            let added = admin.add_learner(request).await.map_err(|s| failed("AddLearner", &s))?.into_inner();
            if learner {
                added.members
            } else {
                let voters: Vec<u64> = voters.iter().copied().chain([id]).collect();
                let request = ChangeMembershipRequest { voters };
                admin.change_membership(request).await.map_err(|s| failed("ChangeMembership", &s))?.into_inner().members
            }
        }
        MembersCommand::Remove { id } => {
            if !status.members.iter().any(|m| m.id == id) {
                bail!("node {id} is not a member");
            }
            let rest: Vec<u64> = voters.iter().copied().filter(|v| *v != id).collect();
            if rest.is_empty() {
                bail!("node {id} is the last voter: a cluster needs at least one");
            }
            let request = ChangeMembershipRequest { voters: rest };
            admin.change_membership(request).await.map_err(|s| failed("ChangeMembership", &s))?.into_inner().members
        }
    };
    match args.target.json {
        true => output::println(Value::Array(members.iter().map(|m| member_json(m, status.leader_id)).collect()))?,
        false => output::print(table(&members, status.leader_id))?,
    }
    Ok(())
}

fn member_json(member: &Member, leader: u64) -> Value {
    json!({
        "id": member.id,
        "public": member.addr,
        "peer": member.peer_addr,
        "voter": member.voter,
        "leader": member.id == leader,
    })
}

/// The members as a table; `*` marks the leader.
fn table(members: &[Member], leader: u64) -> String {
    let rows: Vec<[String; 5]> = members
        .iter()
        .map(|m| {
            let marker = if m.id == leader { "*" } else { "" };
            let role = if m.voter { "voter" } else { "learner" };
            [marker.to_owned(), m.id.to_string(), m.addr.clone(), m.peer_addr.clone(), role.to_owned()]
        })
        .collect();
    let header = ["", "ID", "PUBLIC", "PEER", "ROLE"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        let _ = writeln!(text, "{}", cells.join("  ").trim_end());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_the_leader_and_learners() {
        let member = |id: u64, voter: bool| Member {
            id,
            addr: format!("10.0.0.{id}:7101"),
            voter,
            peer_addr: format!("10.0.0.{id}:7201"),
        };
        let text = table(&[member(1, true), member(4, false)], 1);
        assert_eq!(
            text,
            "   ID  PUBLIC         PEER           ROLE\n*  1   10.0.0.1:7101  10.0.0.1:7201  voter\n   4   10.0.0.4:7101  10.0.0.4:7201  learner\n"
        );
    }
}
