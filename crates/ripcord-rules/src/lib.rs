//! The guard's rule language: `availability(api, 30s) < 95%`.
//!
//! A guard rule's `when` describes the bad condition over the samples of
//! health probes; when it holds, the guard acts (alerts, rolls back). This
//! crate parses that text ([`parse`]) into an [`Expr`] and judges it over
//! samples ([`evaluate`]). It stands alone so the configuration can refuse
//! a rule that does not parse, or names a probe that does not exist
//! ([`Expr::probes`]), when it loads, long before the guard needs it.
//!
//! ```
//! use ripcord_rules::{evaluate, parse, Sample, Verdict};
//!
//! let rule = parse("availability(api, 30s) < 95% or p95(api.latency, 1m) > 2s").unwrap();
//! assert_eq!(rule.probes(), ["api"]);
//! let samples = |_: &str| {
//!     (0..10)
//!         .map(|i| Sample { at_ms: 1_000 * i, ok: i != 3, latency_ms: 120.0, value: None })
//!         .collect::<Vec<_>>()
//! };
//! let judged = evaluate(&rule, &samples, 10_000, 5);
//! assert_eq!(judged.verdict, Verdict::Breached);
//! assert_eq!(
//!     judged.evidence[0],
//!     "availability(api, 30s) = 90.0% (9 of 10 samples) < 95%: breached"
//! );
//! ```

mod ast;
mod error;
mod eval;
mod parse;

pub use ast::{Call, Comparison, Expr, Function, Kind, Op, Quantity, Unit};
pub use error::ParseError;
pub use eval::{evaluate, Evaluation, Sample, SampleSource, Verdict};
pub use parse::{parse, MAX_DEPTH};
