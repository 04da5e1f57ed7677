//! Taking samples: one measurement of a probe, as the catalog keeps it.

use std::sync::mpsc;
use std::time::Instant;

use ripcord_catalog::samples::Sample;
use ripcord_core::config::guard::GuardProbe;
use ripcord_core::config::Config;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One measurement of `probe`, stamped when it began.
pub fn take(probe: &GuardProbe, config: &Config) -> Sample {
    let at_ms = now_ms();
    let m = ripcord_probe::measure(&probe.measure, config, probe.timeout);
    Sample {
        probe: probe.name.clone(),
        at_ms,
        ok: m.ok,
        latency_ms: m.latency_ms,
        // NaN and infinities are no number: never silently healthy.
        value: m.value.filter(|v| v.is_finite()),
        observed: m.observed,
    }
}

/// One sample of every probe, taken at once (each on its own thread, so
/// the slowest bounds the time).
pub fn take_all(probes: &[&GuardProbe], config: &Config) -> Vec<Sample> {
    std::thread::scope(|s| {
        let handles: Vec<_> = probes
            .iter()
            .map(|p| s.spawn(move || take(p, config)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a probe thread does not panic"))
            .collect()
    })
}

/// Samples `probe` every `interval` until `stop` says so or the receiver
/// is gone, sending each sample. Runs on its own thread.
pub fn keep_taking(
    probe: GuardProbe,
    config: Config,
    out: mpsc::Sender<Sample>,
    stop: impl Fn() -> bool,
) {
    let mut next = Instant::now();
    while !stop() {
        let sample = take(&probe, &config);
        if out.send(sample).is_err() {
            return;
        }
        next += probe.interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Slower than its interval: the next sample starts now.
            next = now;
        }
    }
}
