//! The guard: it samples health probes, judges them by rules, and acts
//! (an alert, a recovery run, an escalation) without a person, while never
//! taking missing data, an empty result or NaN for health, nor for a reason
//! to roll back.
//!
//! - [`sample`]: one measurement of a probe, as the catalog keeps it.
//! - [`rules`]: the configured rules, parsed, evaluated over samples.
//! - [`judge`]: a rule's verdicts over time: `for`, `missing`, `wait`, `mode`.
//! - [`watch`]: the long-running loop: sample, keep, evaluate, act.
//! - [`check`]: one evaluation (`guard check`), and `guard status`.
//! - [`bake`]: `migrate up --bake`: watch after applying, revert what was applied.

pub mod bake;
pub mod check;
pub mod json;
pub mod judge;
pub mod rules;
pub mod sample;
pub mod watch;
