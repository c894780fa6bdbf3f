//! trace-level: template
//!
//! The consent ledger's infrastructure, read from `infra/template.yaml` (R7.6): the
//! signing key, who may write which ledger partition, and the daily head schedule. An
//! insider with one of the function roles must not be able to rewrite history through
//! an update, a delete or a batch write, nor sign a head.

use harness::template::Template;
use serde_json::Value;

/// The ledger's partitions (`shared::adapters::ledger`).
const LEDGER_KEYS: [&str; 2] = [
    shared::adapters::ledger::LEDGER_PK,
    shared::adapters::ledger::HEAD_PK,
];

fn template() -> Template {
    Template::load().expect("infra/template.yaml parses")
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

fn strings(v: &Value) -> Vec<String> {
    list(v)
        .iter()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

/// The logical id a `{"!Ref": X}` or `{"!GetAtt": "X.Attr"}` names.
fn reference(v: &Value) -> Option<String> {
    if let Some(r) = v["!Ref"].as_str() {
        return Some(r.to_owned());
    }
    match &v["!GetAtt"] {
        Value::String(s) => s.split('.').next().map(str::to_owned),
        Value::Array(parts) => parts.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn on(st: &Value, logical: &str) -> bool {
    list(&st["Resource"])
        .iter()
        .any(|r| reference(r).as_deref() == Some(logical))
}

/// The leading keys a statement is limited to (`ForAllValues:StringEquals`), if any.
fn only_keys(st: &Value) -> Option<Vec<String>> {
    let v = &st["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"];
    (!v.is_null()).then(|| strings(v))
}

/// The leading-key patterns a statement excludes (`ForAllValues:StringNotLike`).
fn excluded_keys(st: &Value) -> Vec<String> {
    strings(&st["Condition"]["ForAllValues:StringNotLike"]["dynamodb:LeadingKeys"])
}

/// Whether an IAM `StringLike` pattern (`*` wildcard only) matches `key`.
fn like(pattern: &str, key: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == key,
        Some((head, tail)) => {
            key.len() >= head.len() + tail.len() && key.starts_with(head) && key.ends_with(tail)
        }
    }
}

/// Every statement of every function role, with its role.
fn statements(t: &Template) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for function in t.functions() {
        let role = t.function_role(&function).expect("a role");
        for st in t.role_statements(&role) {
            out.push((role.clone(), st));
        }
    }
    out
}

/// Whether a statement grants on the main table's items (the table or its indexes; not
/// its stream).
fn on_table_items(st: &Value) -> bool {
    list(&st["Resource"]).iter().any(|r| {
        r["!GetAtt"] == "Table.Arn"
            || r["!Sub"]
                .as_str()
                .is_some_and(|s| s.starts_with("${Table.Arn}"))
    })
}

/// What a statement lets its role do to the ledger's partitions of the main table.
fn ledger_actions(st: &Value) -> Vec<String> {
    if st["Effect"] != "Allow" || !on_table_items(st) {
        return Vec::new();
    }
    let like_keys = strings(&st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
    let reaches = match only_keys(st) {
        Some(keys) => keys.iter().any(|k| LEDGER_KEYS.contains(&k.as_str())),
        // `StringLike` patterns (`LEAD#*`): reaches the ledger only if a pattern matches it.
        None if !like_keys.is_empty() => like_keys
            .iter()
            .any(|p| LEDGER_KEYS.iter().any(|k| like(p, k))),
        None => !LEDGER_KEYS
            .iter()
            .all(|k| excluded_keys(st).iter().any(|p| like(p, k))),
    };
    if reaches {
        strings(&st["Action"])
    } else {
        Vec::new()
    }
}

/// R7.6: no function role may update, delete or batch-write an item of the
/// ledger's partitions: every statement granting those on the table excludes the
/// `LEDGER*` leading keys, and the statements that reach the ledger grant only reads
/// (`Query`, `GetItem`, and `Scan` for the analytics worker, which cannot be narrowed to
/// key prefixes) and `PutItem` (the append, conditional in the code).
#[test]
fn no_role_may_update_delete_or_batch_write_the_ledger() {
    let t = template();
    let mut reaching = 0;
    for (role, st) in statements(&t) {
        let actions = ledger_actions(&st);
        if actions.is_empty() {
            continue;
        }
        reaching += 1;
        for action in &actions {
            assert!(
                [
                    "dynamodb:Query",
                    "dynamodb:GetItem",
                    "dynamodb:Scan",
                    "dynamodb:PutItem"
                ]
                .contains(&action.as_str()),
                "{role} {}: {action} on the ledger",
                st["Sid"]
            );
        }
    }
    assert!(
        reaching >= 5,
        "the appenders, the head job and staff reach the ledger"
    );
    // The check itself: a statement without the exclusion is caught.
    let open: Value = serde_json::json!({
        "Effect": "Allow",
        "Action": ["dynamodb:UpdateItem"],
        "Resource": {"!GetAtt": "Table.Arn"}
    });
    assert_eq!(ledger_actions(&open), ["dynamodb:UpdateItem"]);
}

/// R7.6: entries are appended only by the sign-up, the webhook, the request worker and
/// staff (do-not-call listings);
/// heads are written only by the sweep's role, which alone may sign with the ledger key;
/// the staff role may read the key's public half only.
#[test]
fn only_the_appenders_append_and_only_the_head_job_signs() {
    let t = template();
    let mut appenders = Vec::new();
    let mut head_writers = Vec::new();
    let mut key_grants = Vec::new();
    for (role, st) in statements(&t) {
        let actions = ledger_actions(&st);
        let keys = only_keys(&st).unwrap_or_default();
        if actions.iter().any(|a| a == "dynamodb:PutItem") {
            if keys.iter().any(|k| k == LEDGER_KEYS[0]) {
                appenders.push(role.clone());
            }
            if keys.iter().any(|k| k == LEDGER_KEYS[1]) {
                head_writers.push(role.clone());
            }
        }
        if on(&st, "LedgerKey") {
            key_grants.push((role.clone(), strings(&st["Action"])));
        }
    }
    appenders.sort();
    assert_eq!(
        appenders,
        [
            "DsarStaffFunctionRole",
            "DsarWorkerFunctionRole",
            "SignupFunctionRole",
            "TelephonyWebhookFunctionRole"
        ]
    );
    assert_eq!(head_writers, ["RetentionSweepFunctionRole"]);
    key_grants.sort();
    assert_eq!(
        key_grants,
        [
            (
                "DsarStaffFunctionRole".to_owned(),
                vec!["kms:GetPublicKey".to_owned()]
            ),
            (
                "RetentionSweepFunctionRole".to_owned(),
                vec!["kms:Sign".to_owned()]
            ),
        ]
    );
}

/// R7.6: the head is signed with an ECDSA P-256 KMS key (what the verifier checks
/// locally), and the sweep function is invoked daily with `{"ledger_head": true}` and
/// told the key through `LEDGER_KEY_ID`.
#[test]
fn the_heads_are_signed_daily_with_a_p256_key() {
    let t = template();
    let key = t
        .keys()
        .unwrap()
        .into_iter()
        .find(|k| k.logical_id == "LedgerKey")
        .expect("the ledger key");
    assert_eq!(
        (key.key_spec.as_str(), key.key_usage.as_str()),
        ("ECC_NIST_P256", "SIGN_VERIFY")
    );
    let doc = t.json();
    let sweep = &doc["Resources"]["RetentionSweepFunction"]["Properties"];
    assert_eq!(
        reference(&sweep["Environment"]["Variables"]["LEDGER_KEY_ID"]).as_deref(),
        Some("LedgerKey")
    );
    let daily: Vec<&Value> = sweep["Events"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| {
            e["Properties"]["Input"]
                .as_str()
                .and_then(|i| serde_json::from_str::<Value>(i).ok())
                == Some(serde_json::json!({"ledger_head": true}))
        })
        .collect();
    assert_eq!(daily.len(), 1);
    let cron = daily[0]["Properties"]["ScheduleExpression"]
        .as_str()
        .unwrap();
    let fields: Vec<&str> = cron
        .trim_start_matches("cron(")
        .trim_end_matches(')')
        .split_whitespace()
        .collect();
    assert_eq!(fields[2..], ["*", "*", "?", "*"], "{cron}");
}
