//! trace-level: template
//!
//! What `infra/template.yaml` promises about access, read from the template itself: the
//! public DSAR function cannot read subject profiles or scan (R5.4), the staff routes are
//! served by their own IAM-authorised function (R4.10), every KMS grant under an
//! encryption context needs that context to be present (R5.2), and the webhook route has
//! a throttling budget of its own.

use harness::template::Template;
use serde_json::{json, Value};
use shared::dsar::staff::StaffPrincipals;

fn template() -> Template {
    Template::load().expect("infra/template.yaml parses")
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn actions(statement: &Value) -> Vec<String> {
    list(&statement["Action"])
}

/// Whether an IAM action pattern covers `action` (`kms:*`, `kms:Decrypt*`, `*`).
fn covers(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.strip_suffix('*') {
        Some(prefix) => a.starts_with(prefix),
        None => p == a,
    }
}

fn allows(statement: &Value, action: &str) -> bool {
    statement["Effect"] == "Allow" && actions(statement).iter().any(|p| covers(p, action))
}

/// Actions that return plaintext of something encrypted under the key.
const DECRYPTING: &[&str] = &["kms:Decrypt", "kms:ReEncryptFrom"];

fn decrypts(statement: &Value) -> bool {
    DECRYPTING.iter().any(|a| allows(statement, a))
}

/// Every condition key of a statement with its operator: (operator, key, value).
fn conditions(statement: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (op, keys) in statement["Condition"].as_object().into_iter().flatten() {
        for (key, value) in keys.as_object().into_iter().flatten() {
            out.push((op.clone(), key.clone(), value.clone()));
        }
    }
    out
}

/// The encryption-context keys a statement's conditions name (`kms:EncryptionContext:<k>`
/// keys and the values of `kms:EncryptionContextKeys`).
fn context_keys(statement: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    for (_, key, value) in conditions(statement) {
        if let Some(k) = key.strip_prefix("kms:EncryptionContext:") {
            keys.push(k.to_owned());
        } else if key == "kms:EncryptionContextKeys" {
            keys.extend(list(&value));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The context keys a statement grants under without requiring them to be present
/// (`"Null": {"kms:EncryptionContext:<k>": "false"}`). Empty when the statement names no
/// context or requires every one it names.
fn context_not_required(statement: &Value) -> Vec<String> {
    let required: Vec<String> = conditions(statement)
        .into_iter()
        .filter(|(op, _, value)| op == "Null" && value == "false")
        .filter_map(|(_, key, _)| {
            key.strip_prefix("kms:EncryptionContext:")
                .map(str::to_owned)
        })
        .collect();
    context_keys(statement)
        .into_iter()
        .filter(|k| !required.contains(k))
        .collect()
}

/// Every statement of every role and key policy: (where, statement).
fn every_statement(t: &Template) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for role in t.resources_of("AWS::IAM::Role") {
        for st in t.role_statements(&role) {
            out.push((role.clone(), st));
        }
    }
    for key in t.resources_of("AWS::KMS::Key") {
        for st in t.key_policy_statements(&key) {
            out.push((format!("{key} key policy"), st));
        }
    }
    out
}

#[test]
fn the_context_check_flags_a_grant_without_a_presence_condition() {
    // The shape the DSAR worker's role had: ForAllValues alone also matches a request
    // without any encryption context.
    let loose = json!({
        "Effect": "Allow", "Action": "kms:Decrypt",
        "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["subject", "dsar_request"]}}
    });
    assert_eq!(context_not_required(&loose), ["dsar_request", "subject"]);
    let half = json!({
        "Effect": "Allow", "Action": ["kms:Decrypt*"],
        "Condition": {
            "StringEquals": {"kms:EncryptionContext:LambdaFunctionName": "f"},
            "Null": {"kms:EncryptionContext:subject": "false"}
        }
    });
    assert_eq!(context_not_required(&half), ["LambdaFunctionName"]);
    assert!(decrypts(&half));
    let tight = json!({
        "Effect": "Allow", "Action": "kms:Decrypt",
        "Condition": {
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["subject"]},
            "Null": {"kms:EncryptionContext:subject": "false"}
        }
    });
    assert!(context_not_required(&tight).is_empty());
}

/// R5.2: every key-policy and role statement that grants under an encryption context
/// requires that context to be present, so nothing is decrypted without one; and no role
/// may decrypt with the data key unconditionally.
#[test]
fn every_grant_under_an_encryption_context_requires_the_context() {
    let t = template();
    let statements = every_statement(&t);
    let with_context: Vec<&(String, Value)> = statements
        .iter()
        .filter(|(_, st)| !context_keys(st).is_empty())
        .collect();
    // The template has such grants in every function role and the data key's policy;
    // an empty selection would make this test pass by reading nothing.
    assert!(with_context.len() >= 10, "{}", with_context.len());
    for role in [
        "DsarWorkerFunctionRole",
        "DsarStaffFunctionRole",
        "DsarApiFunctionRole",
    ] {
        assert!(with_context.iter().any(|(w, _)| w == role), "{role}");
    }
    assert!(with_context.iter().any(|(w, _)| w == "DataKey key policy"));

    let gaps: Vec<String> = with_context
        .iter()
        .filter_map(|(w, st)| {
            let missing = context_not_required(st);
            (!missing.is_empty()).then(|| format!("{w} {}: {missing:?}", st["Sid"]))
        })
        .collect();
    assert!(
        gaps.is_empty(),
        "grants without a presence check: {gaps:#?}"
    );

    let unconditional: Vec<String> = statements
        .iter()
        .filter(|(w, st)| !w.ends_with("key policy") && decrypts(st))
        .filter(|(_, st)| st["Condition"].is_null())
        .map(|(w, st)| format!("{w} {}", st["Sid"]))
        .collect();
    assert!(unconditional.is_empty(), "{unconditional:?}");
}

/// The decryption a statement of the public DSAR role allows is one of: request keys
/// (`dsar_request` context, required present), S3 on our behalf (export downloads), or the
/// function's own environment (`LambdaFunctionName` context, required present).
fn public_decrypt_is_bounded(st: &Value) -> bool {
    let conds = conditions(st);
    let has = |op: &str, key: &str, value: &Value| {
        conds
            .iter()
            .any(|(o, k, v)| o == op && k == key && v == value)
    };
    let null_false = |k: &str| {
        has(
            "Null",
            &format!("kms:EncryptionContext:{k}"),
            &json!("false"),
        )
    };
    let request_keys = has(
        "ForAllValues:StringEquals",
        "kms:EncryptionContextKeys",
        &json!(["dsar_request"]),
    ) && null_false("dsar_request")
        && conds.len() == 2;
    let via_s3 = conds.len() == 1
        && has(
            "StringEquals",
            "kms:ViaService",
            &json!({"!Sub": "s3.${AWS::Region}.amazonaws.com"}),
        );
    let environment = conds.len() == 2
        && has(
            "StringEquals",
            "kms:EncryptionContext:LambdaFunctionName",
            &json!({"!Sub": "${AWS::StackName}-dsar-api"}),
        )
        && null_false("LambdaFunctionName");
    request_keys || via_s3 || environment
}

/// R5.4: the public DSAR function's role can neither scan nor query the table, nor
/// decrypt a subject's profile: every decryption it may do is bound to a request key, to
/// S3 (export downloads) or to its own environment.
#[test]
fn the_public_dsar_role_cannot_scan_or_read_subject_profiles() {
    let t = template();
    let role = t.function_role("DsarApiFunction").expect("a role");
    assert_eq!(role, "DsarApiFunctionRole");
    let statements = t.role_statements(&role);
    assert!(!statements.is_empty());
    for action in ["dynamodb:Scan", "dynamodb:Query"] {
        let granting: Vec<&Value> = statements.iter().filter(|st| allows(st, action)).collect();
        assert!(granting.is_empty(), "{action}: {granting:?}");
    }
    let decrypting: Vec<&Value> = statements.iter().filter(|st| decrypts(st)).collect();
    // Request keys, export downloads, the environment.
    assert_eq!(decrypting.len(), 3, "{decrypting:#?}");
    for st in decrypting {
        assert!(
            public_decrypt_is_bounded(st),
            "unbounded decryption: {st:#}"
        );
        assert!(
            !context_keys(st).contains(&"subject".to_owned()),
            "subject profiles: {st:#}"
        );
    }
    // The analytics export (an upload) went with the staff routes.
    assert!(!statements.iter().any(|st| allows(st, "s3:PutObject")));
}

/// R4.10, R5.4: the staff routes are served by the staff function, each with `AWS_IAM`
/// auth; the public function serves none of them. The staff function has a role and a
/// KMS-encrypted 30-day log group of its own, and its allow-list comes from a parameter
/// whose default admits nobody.
#[test]
fn staff_routes_are_served_by_the_staff_function_with_iam_auth() {
    let t = template();
    let routes = t.http_routes();
    let staff: Vec<_> = routes
        .iter()
        .filter(|r| r.path.starts_with("/v1/admin"))
        .collect();
    let keys: Vec<String> = staff.iter().map(|r| r.key()).collect();
    for expected in [
        "GET /v1/admin/dsar",
        "POST /v1/admin/dsar/{id}/{action}",
        "ANY /v1/admin/subjects/{proxy+}",
        "POST /v1/admin/analytics-exports",
        "POST /v1/admin/do-not-call",
        "POST /v1/admin/do-not-call/lift",
    ] {
        assert!(keys.contains(&expected.to_owned()), "{expected}: {keys:?}");
    }
    for r in &staff {
        assert_eq!(r.function, "DsarStaffFunction", "{}", r.key());
        assert_eq!(r.authorizer.as_deref(), Some("AWS_IAM"), "{}", r.key());
    }
    let public: Vec<String> = routes
        .iter()
        .filter(|r| r.function == "DsarApiFunction")
        .map(|r| r.key())
        .collect();
    assert_eq!(
        public,
        [
            "POST /v1/dsar",
            "POST /v1/dsar/{id}/verify",
            "GET /v1/dsar/{id}",
            "GET /v1/dsar/{id}/cancel",
            "POST /v1/dsar/{id}/cancel",
            "GET /privacy",
            "GET /privacy/request",
            "POST /privacy/request",
            "GET /privacy/withdraw",
            "GET /privacy/no-calls",
            "GET /privacy/requests/{id}",
            "GET /privacy/requests/{id}/code",
            "POST /privacy/requests/{id}/code",
            "GET /en/privacy",
            "GET /en/privacy/request",
            "POST /en/privacy/request",
            "GET /en/privacy/withdraw",
            "GET /en/privacy/no-calls",
            "GET /en/privacy/requests/{id}",
            "GET /en/privacy/requests/{id}/code",
            "POST /en/privacy/requests/{id}/code",
            "GET /v1/openapi.json"
        ]
    );

    // Its own role (no other function shares it) and log group.
    let role = t.function_role("DsarStaffFunction").unwrap();
    assert_eq!(role, "DsarStaffFunctionRole");
    for f in t.resources_of("AWS::Serverless::Function") {
        if f != "DsarStaffFunction" {
            assert_ne!(t.function_role(&f).as_deref(), Some(role.as_str()), "{f}");
        }
    }
    let group = t.function_log_group("DsarStaffFunction").unwrap();
    let p = t.properties(&group);
    assert_eq!(p["RetentionInDays"].as_i64(), Some(30));
    assert!(!p["KmsKeyId"].is_null(), "KMS-encrypted log group");
    let logs = t.role_statements(&role);
    assert!(logs.iter().any(|st| allows(st, "logs:PutLogEvents")
        && st["Resource"] == json!({"!Sub": format!("${{{group}.Arn}}:*")})));

    // The allow-list: from the parameter; its default admits nobody.
    let env = t.declared_environment("DsarStaffFunction");
    assert_eq!(
        env["STAFF_PRINCIPAL_ARNS"],
        json!({"!Join": [",", {"!Ref": "StaffPrincipalArns"}]})
    );
    let param = t.parameter("StaffPrincipalArns");
    assert_eq!(param["Type"], "CommaDelimitedList");
    let default = param["Default"].as_str().unwrap_or_default();
    let admitted = StaffPrincipals::parse(&default.split(',').collect::<Vec<_>>())
        .expect("the default parses");
    assert!(
        admitted.is_empty(),
        "the default admits nobody: {default:?}"
    );
}

/// The (rate, burst) a route setting names; nulls when the route has none.
fn setting_refs(settings: &serde_json::Map<String, Value>, key: &str) -> (Value, Value) {
    let s = settings.get(key).cloned().unwrap_or_default();
    (
        s["ThrottlingRateLimit"].clone(),
        s["ThrottlingBurstLimit"].clone(),
    )
}

/// R5.4: the webhook route has a throttling budget of its own, from its own
/// parameters, keyed by the route the webhook function declares; the public DSAR routes
/// have their own, smaller one. Every route setting names a route that exists (API
/// Gateway refuses the stage otherwise).
#[test]
fn the_webhook_route_has_its_own_throttling_budget() {
    let t = template();
    let settings = t.route_settings("HttpApi");
    let routes = t.http_routes();
    let webhook = routes
        .iter()
        .find(|r| r.function == "TelephonyWebhookFunction")
        .expect("the webhook route");
    assert_eq!(webhook.key(), "POST /v1/telephony/retell");
    assert_eq!(
        setting_refs(&settings, &webhook.key()),
        (
            json!({"!Ref": "WebhookRateLimit"}),
            json!({"!Ref": "WebhookBurstLimit"})
        )
    );
    for r in routes.iter().filter(|r| r.function == "DsarApiFunction") {
        assert_eq!(
            setting_refs(&settings, &r.key()),
            (
                json!({"!Ref": "DsarRateLimit"}),
                json!({"!Ref": "DsarBurstLimit"})
            ),
            "{}",
            r.key()
        );
    }
    let keys: Vec<String> = routes.iter().map(|r| r.key()).collect();
    for key in settings.keys() {
        assert!(
            keys.contains(key),
            "route setting for a missing route: {key}"
        );
    }
    let default = |name: &str| -> i64 {
        let p = t.parameter(name);
        assert_eq!(p["Type"], "Number", "{name}");
        p["Default"].as_i64().unwrap()
    };
    assert!(default("DsarRateLimit") < default("ApiRateLimit"));
    assert!(default("DsarBurstLimit") < default("ApiBurstLimit"));
    assert!(default("WebhookRateLimit") >= 1 && default("WebhookBurstLimit") >= 1);
}

/// The webhook's optional source allow-list comes from a parameter that restricts nothing
/// by default and names the provider's documented address.
#[test]
fn the_webhook_source_allow_list_is_a_parameter_empty_by_default() {
    let t = template();
    let param = t.parameter("WebhookSourceCidrs");
    assert_eq!(param["Type"], "CommaDelimitedList");
    assert_eq!(param["Default"], "");
    assert!(param["Description"]
        .as_str()
        .unwrap()
        .contains("100.20.5.228"));
    assert_eq!(
        t.declared_environment("TelephonyWebhookFunction")["WEBHOOK_SOURCE_CIDRS"],
        json!({"!Join": [",", {"!Ref": "WebhookSourceCidrs"}]})
    );
}

/// A path with its parameters reduced to their kind, so the template's and the local
/// router's spellings compare: `{id}` → `{}`, greedy `{proxy+}` (API Gateway) and
/// `{*rest}` (the `cargo lambda watch` router) → `{*}`.
fn path_shape(path: &str) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(p) if p.starts_with('*') || p.ends_with('+') => "{*}",
                Some(_) => "{}",
                None => segment,
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The `cargo lambda watch` router of the workspace manifest: path shape → (method →
/// binary), with `*` for a route that takes every method (a plain string in the manifest).
fn local_router() -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>
{
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let manifest: toml_edit::DocumentMut = text.parse().unwrap();
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table_like()
        .expect("[workspace.metadata.lambda.watch.router] is a table");
    let mut out = std::collections::BTreeMap::new();
    for (path, routes) in router.iter() {
        let mut methods = std::collections::BTreeMap::new();
        if let Some(function) = routes.as_str() {
            methods.insert("*".to_owned(), function.to_owned());
        } else {
            let routes = routes
                .as_array()
                .expect("a function name or an array of routes");
            for route in routes.iter() {
                let route = route.as_inline_table().expect("{ method, function }");
                let method = route.get("method").and_then(|m| m.as_str()).unwrap();
                let function = route.get("function").and_then(|f| f.as_str()).unwrap();
                let clash = methods.insert(method.to_owned(), function.to_owned());
                assert!(clash.is_none(), "{method} {path} routed twice");
            }
        }
        let clash = out.insert(path_shape(path), methods);
        assert!(clash.is_none(), "{path} routed twice");
    }
    out
}

/// `make run` serves the HTTP functions with `cargo lambda watch`: every route of the
/// template must reach the same binary locally, with the same methods (`ANY` as a route
/// for every method), and the router must serve nothing the API does not. The one
/// addition allowed is `OPTIONS` to the route's own function: the API answers CORS
/// preflights from its `CorsConfiguration`, locally the functions answer them.
#[test]
fn the_local_router_serves_the_template_routes_with_the_same_functions() {
    let t = template();
    let routes = t.http_routes();
    assert!(!routes.is_empty());
    let router = local_router();

    let mut served = std::collections::BTreeSet::new();
    for r in &routes {
        let binary = t
            .function_binary(&r.function)
            .unwrap_or_else(|| panic!("{} has no BuildProperties.Binary", r.function));
        let shape = path_shape(&r.path);
        let local = router
            .get(&shape)
            .unwrap_or_else(|| panic!("{} is not routed locally", r.key()));
        let method = r.method.to_uppercase();
        if method == "ANY" {
            assert_eq!(
                local.get("*"),
                Some(&binary),
                "{}: locally every method must reach {binary}: {local:?}",
                r.key()
            );
        } else {
            let got = local.get(&method).or_else(|| local.get("*"));
            assert_eq!(got, Some(&binary), "{}: {local:?}", r.key());
        }
        served.insert((shape, method, binary));
    }

    for (shape, local) in &router {
        for (method, binary) in local {
            let declared = served.contains(&(shape.clone(), method.clone(), binary.clone()))
                || served.contains(&(shape.clone(), "ANY".to_owned(), binary.clone()));
            let preflight =
                method == "OPTIONS" && served.iter().any(|(s, _, b)| s == shape && b == binary);
            assert!(
                declared || preflight,
                "{method} {shape} → {binary} is routed locally but not in the template"
            );
        }
    }
}

/// R5.3, R5.4: every function that computes a blind index may use the blind-index key. The
/// emulator enforces no IAM, so a function whose role lacks `kms:GenerateMac` would pass
/// every local test and fail in AWS (the dsar worker did: rectification and the analytics
/// cleanup compute indexes). The telephony worker computes one for the sales handoff's
/// do-not-call check (issue 17); the sweep and the sales function compute none and get none.
#[test]
fn every_function_that_computes_a_blind_index_may_use_the_key() {
    let t = template();
    for (function, computes) in [
        ("SignupFunction", true),
        ("TelephonyWebhookFunction", true),
        ("DsarApiFunction", true),
        ("DsarStaffFunction", true),
        ("DsarWorkerFunction", true),
        ("TelephonyWorkerFunction", true),
        ("RetentionSweepFunction", false),
        ("SalesApiFunction", false),
    ] {
        let role = t.function_role(function).expect("a role");
        let granted = t.role_statements(&role).iter().any(|st| {
            allows(st, "kms:GenerateMac") && st["Resource"].to_string().contains("BlindIndexKey")
        });
        assert_eq!(granted, computes, "{function} ({role})");
    }
}

/// R6: the dsar worker's role may read and rewrite the analytics files and delete their
/// earlier versions, which erasure, restriction and objection do to take the subject's
/// rows out (the emulator enforces no IAM, so only the template shows this).
#[test]
fn the_dsar_worker_may_rewrite_the_analytics_files() {
    let t = template();
    let role = t.function_role("DsarWorkerFunction").expect("a role");
    let statements = t.role_statements(&role);
    for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObjectVersion"] {
        assert!(
            statements.iter().any(|st| allows(st, action)
                && st["Resource"].to_string().contains("/analytics/*")),
            "{action} on analytics/*"
        );
    }
}

/// R6: the exports bucket expires the analytics files after exactly the lifetime the
/// export counts with when it leaves out subjects whose retention ends sooner.
#[test]
fn the_analytics_files_expire_when_the_export_counts_on_it() {
    let t = template();
    let rules = harness::template::raw_json(
        &t.properties("ExportsBucket")["LifecycleConfiguration"]["Rules"],
    );
    let rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Prefix"] == "analytics/")
        .expect("a lifecycle rule for analytics/");
    assert_eq!(rule["Status"], "Enabled");
    assert_eq!(
        rule["ExpirationInDays"],
        json!(shared::domain::retention::ANALYTICS_FILE_DAYS)
    );
    assert_eq!(
        rule["NoncurrentVersionExpiration"]["NoncurrentDays"],
        json!(1)
    );
}

/// The events of a function (`Properties.Events`), as JSON.
fn events(t: &Template, function: &str) -> Value {
    serde_json::to_value(&t.properties(function)["Events"]).unwrap()
}

/// R5.4, R5.7: the sweep deletes erased subjects' calls at the provider through the
/// outbox, so its role may read the provider secret, and nothing else of Secrets Manager,
/// decrypted only through Secrets Manager; an hourly schedule drains the outbox.
#[test]
fn the_sweep_reads_only_the_provider_secret_and_drains_the_outbox_hourly() {
    let t = template();
    let role = t.function_role("RetentionSweepFunction").expect("a role");
    let statements = t.role_statements(&role);
    let secret: Vec<&Value> = statements
        .iter()
        .filter(|st| allows(st, "secretsmanager:GetSecretValue"))
        .collect();
    assert_eq!(secret.len(), 1, "{secret:#?}");
    assert_eq!(actions(secret[0]), ["secretsmanager:GetSecretValue"]);
    let resource = secret[0]["Resource"].to_string();
    assert!(
        resource.contains("ProviderApiKeySecret") && !resource.contains('*'),
        "{resource}"
    );
    // Decrypting the secret only through Secrets Manager.
    for st in statements.iter().filter(|st| decrypts(st)) {
        let bounded = conditions(st).iter().any(|(_, k, _)| {
            k == "kms:ViaService" || k == "kms:EncryptionContext:LambdaFunctionName"
        });
        assert!(bounded, "unbounded decryption: {st:#}");
    }
    let env = t.properties("RetentionSweepFunction")["Environment"]["Variables"].clone();
    let env = serde_json::to_value(&env).unwrap().to_string();
    assert!(env.contains("PROVIDER_API_KEY_SECRET_ARN"), "{env}");
    let events = events(&t, "RetentionSweepFunction");
    let hourly = &events["OutboxHourly"]["Properties"];
    assert_eq!(hourly["ScheduleExpression"], "rate(1 hour)");
    let input: Value = serde_json::from_str(hourly["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"outbox": true}));
}

/// The dsar worker gives a request up on the stream's last attempt, so its
/// own count must match the event source mapping's retries; its replay messages go to
/// its dead-letter queue, and every way something can stall raises an alarm.
#[test]
fn the_dsar_worker_gives_up_on_the_streams_last_attempt_and_stalls_raise_alarms() {
    let t = template();
    let events = events(&t, "DsarWorkerFunction");
    let stream = &events["TableStream"]["Properties"];
    let retries = stream["MaximumRetryAttempts"].as_u64().unwrap();
    assert_eq!(
        retries + 1,
        u64::from(shared::dsar::worker::MAX_WORKER_ATTEMPTS)
    );
    assert!(stream["DestinationConfig"]["OnFailure"]["Destination"]
        .to_string()
        .contains("DsarDeadLetterQueue"));
    let env = serde_json::to_value(
        &t.properties("DsarWorkerFunction")["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URL"],
    )
    .unwrap();
    assert!(env.to_string().contains("DsarDeadLetterQueue"), "{env}");
    let role = t.function_role("DsarWorkerFunction").expect("a role");
    assert!(t
        .role_statements(&role)
        .iter()
        .any(|st| allows(st, "sqs:SendMessage")
            && st["Resource"].to_string().contains("DsarDeadLetterQueue")));

    let alarms: Vec<Value> = t
        .resources_of("AWS::CloudWatch::Alarm")
        .iter()
        .map(|a| serde_json::to_value(t.properties(a)).unwrap())
        .collect();
    let watches = |metric: &str, needle: &str| {
        alarms.iter().any(|a| {
            a["MetricName"] == metric && (needle.is_empty() || a.to_string().contains(needle))
        })
    };
    assert!(watches("ProviderDeletionIncidentsOpen", ""), "{alarms:#?}");
    assert!(watches("DsarRequestFailed", ""));
    for queue in ["DsarDeadLetterQueue", "TelephonyDeadLetterQueue"] {
        assert!(
            watches("ApproximateNumberOfMessagesVisible", queue),
            "{queue}: {alarms:#?}"
        );
    }
}
