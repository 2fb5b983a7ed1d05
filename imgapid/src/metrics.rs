//! Counters for `/metrics` in the Prometheus text format: requests by route
//! and status, bytes served and received, errors by IMGAPI code, request
//! latency buckets, and images per state. Lock-free atomics on the hot path;
//! a mutex only for the rarely-new label combinations.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    pub bytes_served: AtomicU64,
    pub bytes_received: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// Records one finished request (`route` is a fixed label, never a path).
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, method, status)).or_insert(0) += 1;
        }
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn error(&self, code: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code).or_insert(0) += 1;
        }
    }

    /// The exposition text; `states` are current image counts per state.
    pub fn render(&self, states: &[(&str, u64)]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP imgapid_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(s, "# TYPE imgapid_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((route, method, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "imgapid_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP imgapid_errors_total Error answers by IMGAPI code."
        );
        let _ = writeln!(s, "# TYPE imgapid_errors_total counter");
        if let Ok(m) = self.errors.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(s, "imgapid_errors_total{{code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(
            s,
            "# HELP imgapid_bytes_served_total Body bytes sent for files and icons."
        );
        let _ = writeln!(s, "# TYPE imgapid_bytes_served_total counter");
        let _ = writeln!(
            s,
            "imgapid_bytes_served_total {}",
            self.bytes_served.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP imgapid_bytes_received_total Upload bytes received."
        );
        let _ = writeln!(s, "# TYPE imgapid_bytes_received_total counter");
        let _ = writeln!(
            s,
            "imgapid_bytes_received_total {}",
            self.bytes_received.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP imgapid_request_duration_seconds Time to the response head."
        );
        let _ = writeln!(s, "# TYPE imgapid_request_duration_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "imgapid_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "imgapid_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "imgapid_request_duration_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "imgapid_request_duration_seconds_count {count}");
        let _ = writeln!(s, "# HELP imgapid_images Images by state.");
        let _ = writeln!(s, "# TYPE imgapid_images gauge");
        for (state, n) in states {
            let _ = writeln!(s, "imgapid_images{{state=\"{state}\"}} {n}");
        }
        s
    }
}
