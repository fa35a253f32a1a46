//! `quorate snapshot`: makes the node build a snapshot now (and purge its log behind it).

use quorate_proto::v1::SnapshotRequest;
use serde_json::json;

use super::{AdminTarget, failed};
use crate::output;

/// Arguments of `quorate snapshot`.
#[derive(clap::Args, Debug, Clone)]
pub struct SnapshotArgs {
    /// The node to snapshot.
    #[command(flatten)]
    pub target: AdminTarget,
}

/// Runs `quorate snapshot`.
///
/// # Errors
///
/// If the node cannot be reached or the snapshot was not built in time.
pub async fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    let mut admin = args.target.connect().await?;
    let built = admin.snapshot(SnapshotRequest {}).await.map_err(|s| failed("Snapshot", &s))?.into_inner();
    match args.target.json {
        true => output::println(json!({ "snapshot_index": built.snapshot_index }))?,
        false => output::println(format_args!("snapshot built up to log index {}", built.snapshot_index))?,
    }
    Ok(())
}
