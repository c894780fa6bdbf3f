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

/// R7.2, R5.4 (least privilege): the sparse due index is read by four functions, each
/// only under its own due kind: the telephony worker (scheduled call requests, `call`,
/// and no other index) and the dsar worker (erasures whose cancel window ended,
/// `dsar_erasure`), and, since issue 17, the sales function (the follow-up queue,
/// `followup`) and the CRM worker (its outbox retries, `crm`); no other function may query it.
#[test]
fn only_the_two_dispatchers_read_the_due_index_each_its_own_kind() {
    let t = template();
    for function in t.functions() {
        let Some(role) = t.function_role(&function) else {
            continue;
        };
        let statements = t.role_statements(&role);
        let resources_of = |st: &Value| -> Vec<String> {
            match &st["Resource"] {
                Value::Array(a) => a.iter().map(|r| r.to_string()).collect(),
                other => vec![other.to_string()],
            }
        };
        let indexes: Vec<String> = statements
            .iter()
            .flat_map(resources_of)
            .filter(|r| r.contains("/index/"))
            .collect();
        let due: Vec<&Value> = statements
            .iter()
            .filter(|st| resources_of(st).iter().any(|r| r.contains("by-due")))
            .collect();
        let kind = match function.as_str() {
            "TelephonyWorkerFunction" => {
                assert_eq!(indexes.len(), 1, "only the due index: {indexes:?}");
                "call"
            }
            "DsarWorkerFunction" => "dsar_erasure",
            // Issue 17: the sales queue and the CRM outbox's retries, each its own kind.
            "SalesApiFunction" => "followup",
            "CrmWorkerFunction" => "crm",
            _ => {
                assert!(due.is_empty(), "{function} reads the due index");
                continue;
            }
        };
        assert_eq!(due.len(), 1, "{function}: one due-index statement");
        let st = due[0];
        assert_eq!(st["Action"], json!("dynamodb:Query"), "{function}");
        assert_eq!(
            st["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
            json!([kind]),
            "{function} reads only its own due kind"
        );
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
