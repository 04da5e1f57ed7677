//! A rule's judgement over time: the verdict of one evaluation, turned into
//! what to do by the rule's `for` (consecutive breaches), `missing` (what
//! inconclusive data counts as), `severity` and `mode`. Pure: the caller
//! evaluates and acts.

use ripcord_core::config::guard::{Action, GuardRule, Missing, Mode, Severity};
use serde::Serialize;

/// One evaluation's verdict, after `missing` was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    Breached,
    /// Too few samples, no data, an empty result or NaN: never healthy,
    /// never a reason to roll back.
    Inconclusive,
}

/// What a rule does after an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Nothing to do.
    Nothing,
    /// Breached, but not for `for` evaluations yet.
    Holding,
    /// Breached for `for` evaluations: re-check after `wait` before acting.
    Recheck,
    /// Send an alert (a warning rule, an `alert` rule, or data that is
    /// inconclusive).
    Alert,
    Escalate,
    Rollback,
    /// `mode = "observe"`: what it would have done, and nothing.
    WouldAlert,
    WouldEscalate,
    WouldRollback,
}

/// A rule's memory between evaluations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleState {
    /// Consecutive breached evaluations.
    pub streak: u32,
    /// It acted (or would have) and has not been healthy since: it does
    /// not act again for the same breach.
    pub latched: bool,
    /// It alerted about inconclusive data and has not had data since.
    pub inconclusive_told: bool,
}

/// The verdict `missing` makes of an inconclusive one.
pub fn apply_missing(verdict: Verdict, missing: Missing) -> Verdict {
    match (verdict, missing) {
        (Verdict::Inconclusive, Missing::Critical) => Verdict::Breached,
        (Verdict::Inconclusive, Missing::Ok) => Verdict::Healthy,
        (v, _) => v,
    }
}

/// Moves `state` on by one evaluation's `verdict` and says what to do.
/// `rechecked` is true for the evaluation after a `wait`.
pub fn decide(
    rule: &GuardRule,
    state: &mut RuleState,
    verdict: Verdict,
    rechecked: bool,
) -> Decision {
    match verdict {
        Verdict::Healthy => {
            *state = RuleState::default();
            Decision::Nothing
        }
        Verdict::Inconclusive => {
            // Consecutive means consecutive: a gap in the data starts over.
            state.streak = 0;
            if state.inconclusive_told {
                return Decision::Nothing;
            }
            state.inconclusive_told = true;
            observed(rule, Decision::Alert)
        }
        Verdict::Breached => {
            state.inconclusive_told = false;
            if !rechecked {
                state.streak = state.streak.saturating_add(1);
            }
            if state.latched {
                return Decision::Nothing;
            }
            if state.streak < rule.for_count {
                return Decision::Holding;
            }
            if rule.wait.is_some() && !rechecked {
                return Decision::Recheck;
            }
            state.latched = true;
            let act = match (rule.severity, rule.action) {
                (Severity::Warning, _) | (_, Action::Alert) => Decision::Alert,
                (Severity::Critical, Action::Escalate) => Decision::Escalate,
                (Severity::Critical, Action::Rollback) => Decision::Rollback,
            };
            observed(rule, act)
        }
    }
}

fn observed(rule: &GuardRule, d: Decision) -> Decision {
    if rule.mode == Mode::Enforce {
        return d;
    }
    match d {
        Decision::Alert => Decision::WouldAlert,
        Decision::Escalate => Decision::WouldEscalate,
        Decision::Rollback => Decision::WouldRollback,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(for_count: u32) -> GuardRule {
        GuardRule {
            name: "api-down".into(),
            when: "availability(api, 30s) < 95%".into(),
            severity: Severity::Critical,
            for_count,
            min_samples: 1,
            missing: Missing::Inconclusive,
            wait: None,
            action: Action::Rollback,
            level: Some("emergency".into()),
            mode: Mode::Enforce,
        }
    }

    #[test]
    fn for_counts_consecutive_breaches_and_resets_on_ok() {
        let r = rule(3);
        let mut s = RuleState::default();
        use Verdict::*;
        assert_eq!(decide(&r, &mut s, Breached, false), Decision::Holding);
        assert_eq!(decide(&r, &mut s, Breached, false), Decision::Holding);
        // Flapping: one good evaluation starts over.
        assert_eq!(decide(&r, &mut s, Healthy, false), Decision::Nothing);
        assert_eq!(decide(&r, &mut s, Breached, false), Decision::Holding);
        assert_eq!(decide(&r, &mut s, Breached, false), Decision::Holding);
        assert_eq!(decide(&r, &mut s, Breached, false), Decision::Rollback);
        // Acted: not again for the same breach.
        assert_eq!(decide(&r, &mut s, Breached, false), Decision::Nothing);
        assert_eq!(decide(&r, &mut s, Healthy, false), Decision::Nothing);
        assert_eq!(s, RuleState::default());
    }

    #[test]
    fn inconclusive_alerts_once_and_never_rolls_back() {
        let r = rule(1);
        let mut s = RuleState::default();
        use Verdict::*;
        assert_eq!(decide(&r, &mut s, Inconclusive, false), Decision::Alert);
        assert_eq!(decide(&r, &mut s, Inconclusive, false), Decision::Nothing);
        assert_eq!(s.streak, 0);
        assert_eq!(
            apply_missing(Inconclusive, Missing::Critical),
            Breached,
            "missing = critical takes no data as a breach"
        );
        assert_eq!(apply_missing(Inconclusive, Missing::Ok), Healthy);
    }

    #[test]
    fn wait_rechecks_before_acting_and_observe_never_acts() {
        let mut r = rule(1);
        r.wait = Some(Duration::from_secs(5));
        let mut s = RuleState::default();
        assert_eq!(
            decide(&r, &mut s, Verdict::Breached, false),
            Decision::Recheck
        );
        assert_eq!(
            decide(&r, &mut s, Verdict::Breached, true),
            Decision::Rollback
        );
        let mut s = RuleState::default();
        assert_eq!(
            decide(&r, &mut s, Verdict::Breached, false),
            Decision::Recheck
        );
        assert_eq!(
            decide(&r, &mut s, Verdict::Healthy, true),
            Decision::Nothing
        );

        let mut r = rule(1);
        r.mode = Mode::Observe;
        let mut s = RuleState::default();
        assert_eq!(
            decide(&r, &mut s, Verdict::Breached, false),
            Decision::WouldRollback
        );
        r.severity = Severity::Warning;
        let mut s = RuleState::default();
        assert_eq!(
            decide(&r, &mut s, Verdict::Breached, false),
            Decision::WouldAlert
        );
    }
}
