//! Parsing never panics, whatever the text: random strings and mutations
//! of good rules. A rule that parses reads back from its own spelling, and
//! an error's column is inside the text. (proptest is not a workspace
//! dependency; a seeded generator keeps failures reproducible.)

use ripcord_rules::{evaluate, parse, Sample};

/// xorshift64*: small, seeded, good enough to shake a parser.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len())]
    }
}

const SEEDS: &[&str] = &[
    "availability(api, 30s) < 95%",
    "error_rate(api, 1m) > 5% and p95(api.latency, 1m) > 500ms",
    "(value(orders) == 0 or last(q, 5m) >= 100) and avg(q, 1h) != -1.5",
    "p50(a-b.latency, 500ms) <= 2s or min(x_1, 5m) < 0 or max(x_1, 5m) > 10",
    "p99(web.latency, 90s) >= 0.25s",
];

/// Pieces that make near-misses likely, and characters that test columns.
const PIECES: &[&str] = &[
    "(",
    ")",
    ",",
    ".",
    ".latency",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "=",
    "!",
    "%",
    "ms",
    "s",
    "m",
    "h",
    "-",
    "0",
    "9",
    "1.5",
    "95%",
    " ",
    "\t",
    "\n",
    " and ",
    " or ",
    "AND",
    "value",
    "availability",
    "p95",
    "api",
    "é",
    "µ",
    "日本",
    "\u{0}",
    "\u{200b}",
    "🙂",
    "99999999999999999999",
];

fn random_text(rng: &mut Rng) -> String {
    let mut text = String::new();
    for _ in 0..rng.below(12) {
        text.push_str(rng.pick(PIECES));
    }
    text
}

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(chars.len() + 1);
        match rng.below(3) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 if at < chars.len() => {
                let piece: Vec<char> = rng.pick(PIECES).chars().collect();
                chars.splice(at..at + 1, piece);
            }
            _ => {
                let piece: Vec<char> = rng.pick(PIECES).chars().collect();
                chars.splice(at..at, piece);
            }
        }
    }
    chars.into_iter().collect()
}

fn check(text: &str, parsed: &mut usize) {
    match parse(text) {
        Ok(expr) => {
            *parsed += 1;
            let canonical = expr.to_string();
            let again = parse(&canonical)
                .unwrap_or_else(|e| panic!("{text:?} → {canonical:?} does not read back: {e}"));
            assert_eq!(again, expr, "{text:?} → {canonical:?}");
            assert_eq!(again.to_string(), canonical);
            // Judging it does not panic either, over awkward samples.
            let samples = |_: &str| {
                vec![
                    Sample {
                        at_ms: 0,
                        ok: true,
                        latency_ms: f64::NAN,
                        value: Some(f64::INFINITY),
                    },
                    Sample {
                        at_ms: -5,
                        ok: false,
                        latency_ms: -1.0,
                        value: Some(f64::NEG_INFINITY),
                    },
                    Sample {
                        at_ms: i64::MIN,
                        ok: false,
                        latency_ms: 1e308,
                        value: Some(f64::NAN),
                    },
                ]
            };
            for now in [0, i64::MIN, i64::MAX] {
                let e = evaluate(&expr, &samples, now, 1);
                assert_eq!(e.evidence.len(), expr.comparisons().len());
            }
        }
        Err(e) => {
            let len = text.chars().count();
            assert!(
                (1..=len + 1).contains(&e.column),
                "{text:?}: column {} outside 1..={}",
                e.column,
                len + 1
            );
            assert!(!e.message.is_empty(), "{text:?}");
            let picture = e.render(text);
            let caret = picture.lines().last().unwrap_or_default();
            assert_eq!(caret.chars().count(), e.column, "{text:?}: {picture}");
        }
    }
}

#[test]
fn parse_never_panics_on_random_text() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for _ in 0..20_000 {
        check(&random_text(&mut rng), &mut parsed);
    }
}

#[test]
fn parse_never_panics_on_mutated_rules() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut parsed = 0;
    for i in 0..20_000 {
        let seed = SEEDS[i % SEEDS.len()];
        check(&mutate(&mut rng, seed), &mut parsed);
    }
    // Some mutations stay valid (a space, a case change): the round trip
    // was exercised, not only the errors.
    assert!(parsed > 500, "only {parsed} mutations parsed");
}

#[test]
fn every_prefix_of_a_rule_parses_or_fails_cleanly() {
    let mut parsed = 0;
    for seed in SEEDS {
        for (i, _) in seed.char_indices() {
            check(&seed[..i], &mut parsed);
        }
    }
}
