//! The configured rules, parsed once, evaluated over samples from memory
//! (a watch) or from the catalog (`guard check`, `guard status`).

use std::collections::{BTreeMap, VecDeque};

use ripcord_catalog::samples::Sample;
use ripcord_core::config::guard::GuardRule;
use serde::Serialize;

use crate::judge::{apply_missing, Verdict};

/// A rule with its expression parsed.
pub struct Rule {
    pub config: GuardRule,
    pub expr: ripcord_rules::Expr,
}

/// Every configured rule, parsed. The configuration checked each `when`
/// when it loaded, so a parse error here is a bug, reported as one.
pub fn parse_all(rules: &[GuardRule]) -> Vec<Rule> {
    rules
        .iter()
        .map(|r| Rule {
            expr: ripcord_rules::parse(&r.when)
                .unwrap_or_else(|e| panic!("rule {} was checked when loaded: {e}", r.name)),
            config: r.clone(),
        })
        .collect()
}

/// One evaluation of one rule.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Evaluation {
    pub rule: String,
    /// After the rule's `missing` was applied.
    pub verdict: Verdict,
    /// What the expression saw, one line per comparison.
    pub evidence: Vec<String>,
}

/// Samples by probe, oldest first.
pub type Samples = BTreeMap<String, VecDeque<Sample>>;

fn as_rule_sample(s: &Sample) -> ripcord_rules::Sample {
    ripcord_rules::Sample {
        at_ms: s.at_ms,
        ok: s.ok,
        latency_ms: s.latency_ms,
        value: s.value,
    }
}

/// Evaluates `rule` at `now_ms` over `samples`.
pub fn evaluate(rule: &Rule, samples: &Samples, now_ms: i64) -> Evaluation {
    let source = |probe: &str| -> Vec<ripcord_rules::Sample> {
        samples
            .get(probe)
            .map(|q| q.iter().map(as_rule_sample).collect())
            .unwrap_or_default()
    };
    let e = ripcord_rules::evaluate(&rule.expr, &source, now_ms, rule.config.min_samples);
    let verdict = match e.verdict {
        ripcord_rules::Verdict::Healthy => Verdict::Healthy,
        ripcord_rules::Verdict::Breached => Verdict::Breached,
        ripcord_rules::Verdict::Inconclusive => Verdict::Inconclusive,
    };
    Evaluation {
        rule: rule.config.name.clone(),
        verdict: apply_missing(verdict, rule.config.missing),
        evidence: e.evidence,
    }
}
