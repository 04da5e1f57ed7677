//! The JSON documents of the guard's commands, with every other command's
//! ([`ripcord_ops::json::schemas`]): one registry for the front ends.

use serde::Serialize;

use crate::bake::BakeReport;

/// `migrate up`, with `bake` when `--bake` was given and something was applied.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct BakedUpOutput {
    #[serde(flatten)]
    pub up: ripcord_ops::json::UpOutput,
    /// The guard's watch after the change: `null` without `--bake`, or when
    /// nothing was applied.
    pub bake: Option<BakeReport>,
}

/// Every command's document schema, by command.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    let mut all: Vec<(&'static str, schemars::Schema)> = ripcord_ops::json::schemas()
        .into_iter()
        .filter(|(c, _)| *c != "migrate up")
        .collect();
    use ripcord_ops::json::serialized;
    all.extend([
        ("migrate up", serialized::<BakedUpOutput>()),
        ("guard check", serialized::<crate::check::GuardCheck>()),
        ("guard status", serialized::<crate::check::GuardCheck>()),
        ("guard watch", serialized::<crate::watch::WatchReport>()),
    ]);
    all
}

/// The schema of one command's document.
pub fn schema(command: &str) -> Option<schemars::Schema> {
    schemas()
        .into_iter()
        .find(|(c, _)| *c == command)
        .map(|(_, s)| s)
}
