//! The sweep function over in-memory fakes: the daily schedule runs a real sweep at the
//! current time; a manual request may move the clock only for a dry run (or where the
//! local stack allows it); a refused request deletes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::RetentionClass;
use retention_sweep::{App, SweepError};
use serde_json::json;
use testkit::retention::{key, MemItem};
use testkit::World;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const HOUR: Duration = Duration::from_secs(3600);

/// A world holding one consent proof (5 years) from 2026: due in 2031.
fn world() -> World {
    let w = World::new();
    w.retention.put(
        key("LEAD#x", "CONSENT#1"),
        MemItem::kind("phone_consent")
            .retained(RetentionClass::PhoneConsentProof, t("2026-11-28T10:00:00Z")),
    );
    w
}

/// R3.1: through the function's handler, a real run that names `now` is refused and
/// writes nothing; a dry run with the same clock reports the due proof and deletes
/// nothing.
#[tokio::test]
async fn a_real_run_with_a_moved_clock_is_refused_as_deployed_and_deletes_nothing() {
    let w = world();
    let app = App::new(w.sweeper(), false);
    let moved = json!({"dry_run": false, "now": "2032-01-01T00:00:00Z"});
    let err = app.handle(&moved, &w.clock, HOUR).await.unwrap_err();
    assert!(matches!(err, SweepError::ClockOverrideRefused), "{err}");
    assert!(w.retention.ops().is_empty() && w.retention.runs().is_empty());

    // A dry run may look ahead; it reports and deletes nothing.
    let ahead = json!({"dry_run": true, "now": "2032-01-01T00:00:00Z"});
    let report = app.handle(&ahead, &w.clock, HOUR).await.unwrap();
    assert_eq!(report.classes["phone_consent"].deleted, 1);
    assert!(w.retention.ops().is_empty());
    assert_eq!(w.retention.keys().len(), 1);
}

/// R3.1, R3.5: the schedule's event is a real run at the clock's time: nothing due in
/// 2026, the proof deleted once the clock reaches 2031, and each real run recorded.
#[tokio::test]
async fn the_schedule_runs_a_real_sweep_at_the_current_time() {
    let w = world();
    let app = App::new(w.sweeper(), false);
    let scheduled = json!({"version": "0", "detail-type": "Scheduled Event"});
    let now = app.handle(&scheduled, &w.clock, HOUR).await.unwrap();
    assert_eq!(now.classes["phone_consent"].due, 0, "not due in 2026");
    w.clock.set(t("2031-11-28T10:00:00Z"));
    let later = app.handle(&scheduled, &w.clock, HOUR).await.unwrap();
    assert_eq!(later.classes["phone_consent"].deleted, 1);
    assert!(w.retention.keys().is_empty());
    assert_eq!(w.retention.runs().len(), 2, "each real run is recorded");
}

/// R3.1: where the configuration allows it (the local stack), a real run may name `now`
/// and deletes what is due then.
#[tokio::test]
async fn the_local_stack_may_move_the_clock_for_a_real_run() {
    let w = world();
    let app = App::new(w.sweeper(), true);
    let moved = json!({"dry_run": false, "now": "2032-01-01T00:00:00Z"});
    let report = app.handle(&moved, &w.clock, HOUR).await.unwrap();
    assert_eq!(report.classes["phone_consent"].deleted, 1);
}
