//! trace-level: template
//!
//! What `infra/template.yaml` promises for calling hours and caps (R7.2, R7.3), read from
//! the template: the due index, the dispatcher's schedule and what its role may do with
//! it, the calling-hours state and the ring time of the telephony worker.

use harness::template::Template;
use serde_json::{json, Value};

fn template() -> Template {
    Template::load().expect("infra/template.yaml parses")
}

/// R7.2: the table has the sparse due index (`due_kind` → `due_at`, both strings, the
/// stored instant format sorting by time) projecting what the dispatcher needs and no
/// more; the worker's schedule sends the input the worker takes for a dispatcher run,
/// every 5 minutes, without retries (the next run catches up).
#[test]
fn the_due_index_and_the_dispatch_schedule_are_in_the_template() {
    let t = template();
    let table = t.table().unwrap();
    let index = table.indexes.get("by-due").expect("the due index");
    assert_eq!(
        index.keys,
        [
            ("due_kind".to_owned(), "HASH".to_owned()),
            ("due_at".to_owned(), "RANGE".to_owned())
        ]
    );
    assert_eq!(index.projection, "INCLUDE");
    assert_eq!(
        index.non_key_attributes,
        ["due_phone", "lead_id", "request"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
    for attribute in ["due_kind", "due_at"] {
        assert_eq!(table.attributes[attribute], "S", "{attribute}");
    }
    let event =
        serde_json::to_value(&t.properties("TelephonyWorkerFunction")["Events"]["DispatchDue"])
            .unwrap();
    assert_eq!(event["Type"], "ScheduleV2");
    assert_eq!(event["Properties"]["ScheduleExpression"], "rate(5 minutes)");
    assert_eq!(
        event["Properties"]["RetryPolicy"]["MaximumRetryAttempts"],
        0
    );
    let input: Value =
        serde_json::from_str(event["Properties"]["Input"].as_str().unwrap()).unwrap();
    assert!(telephony::worker::is_dispatch(&input), "{input}");
    assert!(!telephony::worker::is_dispatch(&json!({"Records": []})));
}

/// R7.2 (least privilege): the telephony worker may query the due index and no other
/// index of the table; no other function may query the due index.
#[test]
fn only_the_telephony_worker_reads_the_due_index() {
    let t = template();
    for function in t.functions() {
        let Some(role) = t.function_role(&function) else {
            continue;
        };
        let indexes: Vec<String> = t
            .role_statements(&role)
            .iter()
            .flat_map(|st| {
                let resources = match &st["Resource"] {
                    Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                resources.into_iter().map(|r| r.to_string())
            })
            .filter(|r| r.contains("/index/"))
            .collect();
        let due = indexes.iter().any(|r| r.contains("by-due"));
        if function == "TelephonyWorkerFunction" {
            assert!(due, "{indexes:?}");
            assert_eq!(indexes.len(), 1, "only the due index: {indexes:?}");
        } else {
            assert!(!due, "{function} reads the due index");
        }
    }
}

/// R7.2, R7.3: the deployed worker keeps the holidays of North Rhine-Westphalia and rings
/// for 30 seconds: values the configuration accepts as they are.
#[test]
fn the_worker_is_configured_for_nrw_and_a_bounded_ring_time() {
    let t = template();
    let env =
        serde_json::to_value(&t.properties("TelephonyWorkerFunction")["Environment"]["Variables"])
            .unwrap();
    let get = |name: &str| {
        env[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} set"))
            .to_owned()
    };
    assert_eq!(get("CALLING_STATE"), "NW");
    assert_eq!(get("RING_DURATION_MS"), "30000");
    assert_eq!(
        shared::outbound::ring_duration_ms(get("RING_DURATION_MS").parse().ok()),
        30_000
    );
    assert_eq!(shared::outbound::ring_duration_ms(Some(1_000)), 5_000);
    assert_eq!(shared::outbound::ring_duration_ms(Some(900_000)), 300_000);
}
