//! OPERATIONS: what a running `serve` counts, for Prometheus to scrape at
//! `GET /metrics` on the `[metrics] listen` address (off by default).
//!
//! Counters live in one process-wide registry: the places that count (the
//! pipeline after its commit, the outbox recorder after its commit, the IMAP
//! source after a pass, the portal after a response) only add to them, and
//! nothing is counted before the change it reports is durable. The outbox
//! depth and the age of its oldest pending mail are read from the database
//! at each scrape, so they are right even for mail queued by `ingest` in
//! another process.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{Db, outbox};

/// The content type of [`render`]'s text (OpenMetrics, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailboxLabel {
    mailbox: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

struct Metrics {
    registry: Registry,
    ingested: Family<OutcomeLabel, Counter>,
    quarantined: Family<ReasonLabel, Counter>,
    sent: Counter,
    failed: Counter,
    outbox_pending: Gauge,
    outbox_oldest_age: Gauge,
    imap_last_pass: Family<MailboxLabel, Gauge>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

/// 0.5 ms to about 16 s: a page takes a few milliseconds, a search tens, an upload seconds.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("ticketgate");
    let ingested = Family::default();
    let quarantined = Family::default();
    let (sent, failed) = (Counter::default(), Counter::default());
    let (outbox_pending, outbox_oldest_age) = (Gauge::default(), Gauge::default());
    let imap_last_pass = Family::default();
    let request_seconds = Family::new_with_constructor(request_buckets as fn() -> Histogram);
    registry.register("messages_ingested", "Messages committed, by outcome", ingested.clone());
    registry.register("messages_quarantined", "Messages quarantined, by reason", quarantined.clone());
    registry.register("notifications_sent", "Notifications the server accepted", sent.clone());
    registry.register(
        "notifications_failed",
        "Notifications given up on (refused, or past the retry deadline)",
        failed.clone(),
    );
    registry.register("outbox_pending", "Notifications waiting to be delivered", outbox_pending.clone());
    registry.register(
        "outbox_oldest_pending_age_seconds",
        "Age of the oldest notification waiting to be delivered (0 when none waits)",
        outbox_oldest_age.clone(),
    );
    registry.register(
        "imap_last_success_timestamp_seconds",
        "Unix time of the last complete pass over each IMAP mailbox",
        imap_last_pass.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Portal requests by method and route, from request to response headers",
        request_seconds.clone(),
    );
    Metrics {
        registry,
        ingested,
        quarantined,
        sent,
        failed,
        outbox_pending,
        outbox_oldest_age,
        imap_last_pass,
        request_seconds,
    }
});

/// A message's outcome (its stable word, and the reason when quarantined),
/// once its transaction has committed.
pub fn message(outcome: &'static str, quarantine_reason: Option<&str>) {
    METRICS.ingested.get_or_create(&OutcomeLabel { outcome }).inc();
    if let Some(reason) = quarantine_reason {
        METRICS.quarantined.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }
}

/// A notification recorded as delivered (`true`) or given up on (`false`).
pub fn notification(sent: bool) {
    if sent {
        METRICS.sent.inc()
    } else {
        METRICS.failed.inc()
    };
}

/// A complete pass over the IMAP mailbox `label`.
pub fn imap_pass(label: &str) {
    METRICS.imap_last_pass.get_or_create(&MailboxLabel { mailbox: label.to_string() }).set(crate::clock::now());
}

/// One portal request on `route` (the matched pattern, e.g. `/t/{id}`).
pub fn request(method: &str, route: &str, seconds: f64) {
    let labels = RouteLabels { method: method.to_string(), route: route.to_string() };
    METRICS.request_seconds.get_or_create(&labels).observe(seconds);
}

/// The scrape: reads the outbox figures from `db` (blocking), then encodes everything.
pub fn render(db: &Db) -> crate::store::Result<String> {
    let depth = db.with(|c| outbox::pending_depth(c))?;
    METRICS.outbox_pending.set(depth.count);
    let age = depth.oldest_created_at.map(|t| crate::clock::now().saturating_sub(t).max(0)).unwrap_or(0);
    METRICS.outbox_oldest_age.set(age);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &METRICS.registry)
        .map_err(|e| crate::store::StoreError::Io(std::io::Error::other(e)))?;
    Ok(text)
}

/// Serves `GET /metrics` on `listener` until `shutdown` turns true.
pub async fn run(
    db: Db,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    let app = axum::Router::new().route("/metrics", axum::routing::get(scrape)).with_state(db);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await?;
    Ok(())
}

async fn scrape(axum::extract::State(db): axum::extract::State<Db>) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match tokio::task::spawn_blocking(move || render(&db)).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot read the outbox");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
