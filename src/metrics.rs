//! Prometheus metrics: tokens issued, OAuth errors, HTTP requests and database pool usage.
//!
//! Sesame records into a [`PrometheusRecorder`] of its own and never installs a global
//! `metrics` recorder. A host application that installs its own recorder keeps it: Sesame's
//! series do not reach it, and the host's series do not appear at `GET /metrics`. A host that
//! wants one exposition can append [`Metrics::render`] to its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

const TOKENS_ISSUED: &str = "sesame_tokens_issued_total";
const OAUTH_ERRORS: &str = "sesame_oauth_errors_total";
const HTTP_REQUESTS: &str = "sesame_http_requests_total";
const HTTP_REQUEST_DURATION: &str = "sesame_http_request_duration_seconds";
const DB_POOL_SIZE: &str = "sesame_db_pool_connections";
const DB_POOL_IDLE: &str = "sesame_db_pool_idle_connections";
const DB_POOL_MAX: &str = "sesame_db_pool_max_connections";

/// Upper bounds of the request latency histogram's buckets, in seconds: 1 ms to 10 s, so that
/// both cached reads and requests that verify an Argon2id password fall inside.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Requests recorded between two drains of the latency histogram's samples. The exporter keeps
/// every sample (a value and an `Instant`, 24 bytes) until it renders or drains. Without this, a
/// server whose `/metrics` is never scraped would grow without bound: by about 860 MB an hour
/// at 10,000 requests per second.
const DRAIN_EVERY: u64 = 4096;

/// Sesame's metrics and the recorder that stores them.
///
/// Cheap to clone; clones share one recorder.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    requests_recorded: Arc<AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates an empty set of metrics with its own recorder.
    pub fn new() -> Metrics {
        // `set_buckets` fails only for an empty bucket list, and this one is not empty.
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS_SECONDS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics {
            recorder: Arc::new(recorder),
            handle,
            requests_recorded: Arc::new(AtomicU64::new(0)),
        };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let counters = [
            (TOKENS_ISSUED, "Access tokens issued, by grant type"),
            (
                OAUTH_ERRORS,
                "OAuth error responses of the token, revocation, introspection and device \
                 endpoints, by error code",
            ),
            (
                HTTP_REQUESTS,
                "HTTP requests completed, by route, method and status",
            ),
        ];
        for (name, help) in counters {
            self.recorder
                .describe_counter(KeyName::from(name), None, SharedString::from(help));
        }
        self.recorder.describe_histogram(
            KeyName::from(HTTP_REQUEST_DURATION),
            Some(Unit::Seconds),
            SharedString::from("Time from receiving a request's headers to answering it"),
        );
        let gauges = [
            (DB_POOL_SIZE, "Open database connections, idle or in use"),
            (DB_POOL_IDLE, "Idle database connections"),
            (DB_POOL_MAX, "Maximum database connections the pool opens"),
        ];
        for (name, help) in gauges {
            self.recorder
                .describe_gauge(KeyName::from(name), None, SharedString::from(help));
        }
    }

    /// Counts one token response of the grant `grant`, such as `client_credentials`.
    pub(crate) fn record_token_issued(&self, grant: &'static str) {
        let key = Key::from_parts(TOKENS_ISSUED, vec![Label::new("grant", grant)]);
        self.recorder
            .register_counter(&key, &metadata())
            .increment(1);
    }

    /// Counts one OAuth error response with the `error` code `code`.
    pub(crate) fn record_oauth_error(&self, code: &'static str) {
        let key = Key::from_parts(OAUTH_ERRORS, vec![Label::new("error", code)]);
        self.recorder
            .register_counter(&key, &metadata())
            .increment(1);
    }

    /// Counts one completed request and records its latency. `route` must be a route pattern
    /// (axum's `MatchedPath`) or a fixed word, never the raw path, and `method` a fixed name
    /// or `other` (see `http::observe`), to keep the number of series bounded.
    pub(crate) fn record_request(
        &self,
        route: &str,
        method: &'static str,
        status: u16,
        latency: Duration,
    ) {
        let route = Label::new("route", route.to_owned());
        let method = Label::new("method", method);
        let status = Label::new("status", status.to_string());
        let requests = Key::from_parts(HTTP_REQUESTS, vec![route.clone(), method.clone(), status]);
        self.recorder
            .register_counter(&requests, &metadata())
            .increment(1);
        let duration = Key::from_parts(HTTP_REQUEST_DURATION, vec![route, method]);
        self.recorder
            .register_histogram(&duration, &metadata())
            .record(latency.as_secs_f64());
        let recorded = self.requests_recorded.fetch_add(1, Ordering::Relaxed) + 1;
        if recorded.is_multiple_of(DRAIN_EVERY) {
            // Folds the waiting samples into the histogram's bucket counts.
            self.handle.run_upkeep();
        }
    }

    /// Sets the database pool gauges: open connections, idle connections and the maximum.
    pub(crate) fn record_pool(&self, size: u32, idle: usize, max: u32) {
        let gauges = [
            (DB_POOL_SIZE, f64::from(size)),
            (DB_POOL_IDLE, idle as f64),
            (DB_POOL_MAX, f64::from(max)),
        ];
        for (name, value) in gauges {
            let key = Key::from_name(name);
            self.recorder.register_gauge(&key, &metadata()).set(value);
        }
    }

    /// Renders every series in the Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Reads this process's resident set size in KiB from `/proc/self/status`.
    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .expect("VmRSS line");
        line.split_whitespace()
            .nth(1)
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS value")
    }

    #[test]
    fn unscraped_request_samples_stay_bounded() {
        // The check reads the whole process's memory, so it needs a process of its own, as
        // cargo-nextest gives each test. Under `cargo test` other tests run beside it.
        if std::env::var_os("NEXTEST").is_none() {
            eprintln!("skipped: run under cargo-nextest to measure this test's memory alone");
            return;
        }
        let metrics = Metrics::new();
        let latency = Duration::from_micros(300);
        // Warm up the series and the allocator's pools first.
        for _ in 0..2 * DRAIN_EVERY {
            metrics.record_request("/oauth/token", "POST", 200, latency);
        }
        let before = resident_kib();
        // Kept, these samples would take about 9 MiB.
        for _ in 0..400_000 {
            metrics.record_request("/oauth/token", "POST", 200, latency);
        }
        let grown = resident_kib().saturating_sub(before);
        assert!(grown < 3 * 1024, "resident memory grew by {grown} KiB");
        let rendered = metrics.render();
        let count = format!(
            "{HTTP_REQUEST_DURATION}_count{{route=\"/oauth/token\",method=\"POST\"}} {}",
            400_000 + 2 * DRAIN_EVERY
        );
        assert!(rendered.contains(&count), "no {count} in {rendered}");
    }
}
