//! The guard's samples: what each probe measured, kept for the rules'
//! windows and for `guard status`, and forgotten after a retention.

use serde::Serialize;

/// One measurement of one probe.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Sample {
    pub probe: String,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The probe passed (it answered as expected).
    pub ok: bool,
    pub latency_ms: f64,
    /// Its number, if it gave one (never NaN).
    pub value: Option<f64>,
    /// What it saw, for a person.
    pub observed: String,
}
