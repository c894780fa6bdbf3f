//! trace-level: template
//!
//! What REQUIREMENTS.md says the infrastructure does, asserted from `infra/template.yaml`
//! itself. No emulator: the local stack is built from the template and cannot disagree
//! with it, so only a reading of the template can show a wrong value. Expected values come
//! from the requirements and from the code (`domain::retention`, the adapters' schema and
//! object keys), not from a second reading of the template. Each fact is a test of its
//! own, so a failure names the promise that broke; resources, routes and functions are
//! enumerated from the template, so a new one is covered without a change here.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, TimeZone, Utc};
use harness::template::Template;
use serde_json::{json, Value};
use shared::adapters::dynamo::schema;
use shared::domain::retention::{
    add_period, Period, RetentionClass, ANALYTICS_FILE_DAYS, TTL_GRACE,
};
use shared::domain::LeadId;

/// The customer managed key everything at rest is encrypted with (R5.2).
const CUSTOMER_KEY: &str = "DataKey";
/// The blind-index key: the one key that does not rotate (see
/// [`every_key_rotates_except_the_hmac_blind_index_key`]).
const BLIND_INDEX_KEY: &str = "BlindIndexKey";

fn template() -> Template {
    Template::load().expect("infra/template.yaml parses")
}

fn resources(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["Resources"].as_object().expect("Resources")
}

fn of_type<'a>(doc: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    resources(doc)
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

/// The logical id a `{"!Ref": X}` or `{"!GetAtt": "X.Attr"}` names.
fn reference(v: &Value) -> Option<&str> {
    if let Some(r) = v["!Ref"].as_str() {
        return Some(r);
    }
    match &v["!GetAtt"] {
        Value::String(s) => s.split('.').next(),
        Value::Array(parts) => parts.first()?.as_str(),
        _ => None,
    }
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

/// Every function's events, as (function, event name, event).
fn events(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (function, r) in of_type(doc, "AWS::Serverless::Function") {
        for (name, event) in r["Properties"]["Events"].as_object().into_iter().flatten() {
            out.push((function.clone(), name.clone(), event.clone()));
        }
    }
    out
}

/// The most days a period can span from any start (6 calendar months: up to 184 days),
/// from the domain's own calendar arithmetic over four years of start days.
fn max_days(period: Period) -> i64 {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    (0..4 * 366)
        .map(|d| {
            let t = start + Duration::days(d);
            (add_period(t, period).unwrap() - t).num_days()
        })
        .max()
        .unwrap()
}

/// Tokens of a text that have the shape of an AWS region name (`eu-central-1`,
/// `us-gov-west-1`).
fn region_names(text: &str) -> BTreeSet<String> {
    const AREAS: &[&str] = &["af", "ap", "ca", "cn", "eu", "il", "me", "mx", "sa", "us"];
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|token| {
            let parts: Vec<&str> = token.split('-').collect();
            parts.len() >= 3
                && AREAS.contains(&parts[0])
                && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
                && !parts[parts.len() - 1].is_empty()
                && parts[1..parts.len() - 1]
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn region_names_are_recognised() {
    let found = region_names("arn:aws:kms:us-east-1:1:key/x eu-central-1, us-gov-west-1 eu-x");
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["eu-central-1", "us-east-1", "us-gov-west-1"]
    );
}

/// R5.6: the template's `Rules` refuse a deployment anywhere but Frankfurt: one rule
/// without a `RuleCondition` asserts exactly `!Equals [!Ref "AWS::Region", eu-central-1]`,
/// and no other region is written anywhere in the template.
#[test]
fn the_template_refuses_every_region_but_frankfurt() {
    let doc = template().json();
    let rules = doc["Rules"].as_object().expect("the template has Rules");
    let frankfurt = json!({"!Equals": [{"!Ref": "AWS::Region"}, "eu-central-1"]});
    let enforcing: Vec<&String> = rules
        .iter()
        .filter(|(_, rule)| {
            rule.get("RuleCondition").is_none()
                && list(&rule["Assertions"])
                    .iter()
                    .any(|a| a["Assert"] == frankfurt)
        })
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        enforcing.len(),
        1,
        "an unconditional Frankfurt rule: {rules:#?}"
    );

    let text = std::fs::read_to_string(harness::template_path()).unwrap();
    let regions = region_names(&text);
    assert!(
        regions.iter().all(|r| r == "eu-central-1"),
        "regions named in the template: {regions:?}"
    );
}

/// R5.2: every KMS key of the template rotates, except the blind-index key: exactly that
/// one key, an HMAC key (HMAC_256, GENERATE_VERIFY_MAC: KMS cannot rotate those), which
/// no role may use for anything but computing MACs.
#[test]
fn every_key_rotates_except_the_hmac_blind_index_key() {
    let t = template();
    let keys = t.keys().unwrap();
    assert!(keys.len() >= 2, "{keys:?}");
    let not_rotating: Vec<&str> = keys
        .iter()
        .filter(|k| !k.rotation)
        .map(|k| k.logical_id.as_str())
        .collect();
    // KMS rotates neither HMAC nor asymmetric keys: the blind-index key and the consent
    // ledger's signing key (R7.6; each head names the key that signed it).
    assert_eq!(
        not_rotating,
        [BLIND_INDEX_KEY, "LedgerKey"],
        "keys without rotation"
    );
    let blind = keys
        .iter()
        .find(|k| k.logical_id == BLIND_INDEX_KEY)
        .unwrap();
    assert_eq!(
        (blind.key_spec.as_str(), blind.key_usage.as_str()),
        ("HMAC_256", "GENERATE_VERIFY_MAC")
    );
    let data = keys.iter().find(|k| k.logical_id == CUSTOMER_KEY).unwrap();
    assert_eq!(
        (data.key_spec.as_str(), data.key_usage.as_str()),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    );

    let mut grants = 0;
    for role in t.resources_of("AWS::IAM::Role") {
        for st in t.role_statements(&role) {
            if list(&st["Resource"])
                .iter()
                .any(|r| reference(r) == Some(BLIND_INDEX_KEY))
            {
                grants += 1;
                assert_eq!(
                    strings(&st["Action"]),
                    ["kms:GenerateMac"],
                    "{role}: {st:#}"
                );
            }
        }
    }
    assert!(grants >= 1);
}

/// R5.2: every DynamoDB table is encrypted with the template's customer managed key
/// (`SSEType: KMS`, `KMSMasterKeyId` the symmetric `DataKey`), not an AWS owned or
/// managed key.
#[test]
fn every_table_is_encrypted_with_the_customer_key() {
    let t = template();
    let tables = t.resources_of("AWS::DynamoDB::Table");
    for expected in ["Table", "KeyTable"] {
        assert!(tables.contains(&expected.to_owned()), "{tables:?}");
    }
    assert!(
        t.resources_of("AWS::KMS::Key")
            .contains(&CUSTOMER_KEY.to_owned()),
        "{CUSTOMER_KEY} is a key of the template, not an AWS managed one"
    );
    for table in &tables {
        let spec = t.table_spec(table).unwrap();
        assert!(spec.sse_kms, "{table}: SSE with KMS");
        assert_eq!(spec.sse_key.as_deref(), Some(CUSTOMER_KEY), "{table}");
    }
}

/// R5.2: every S3 bucket encrypts by default with SSE-KMS under the customer managed key
/// (`aws:kms`, `DataKey`), with S3 Bucket Keys on, as configured.
#[test]
fn every_bucket_is_encrypted_with_the_customer_key() {
    let buckets = template().buckets().unwrap();
    assert!(buckets.len() >= 2, "recordings and exports");
    for b in &buckets {
        assert_eq!(b.sse_algorithm, "aws:kms", "{}", b.logical_id);
        assert_eq!(b.sse_key.as_deref(), Some(CUSTOMER_KEY), "{}", b.logical_id);
        assert!(b.bucket_key, "{}: bucket key", b.logical_id);
    }
}

/// The queues (dead letters carry stream records), the provider secret and every log
/// group are encrypted with the customer managed key too.
#[test]
fn queues_the_secret_and_log_groups_are_encrypted_with_the_customer_key() {
    let doc = template().json();
    let mut seen = 0;
    for (kind, property) in [
        ("AWS::SQS::Queue", "KmsMasterKeyId"),
        ("AWS::SecretsManager::Secret", "KmsKeyId"),
        ("AWS::Logs::LogGroup", "KmsKeyId"),
    ] {
        let found = of_type(&doc, kind);
        assert!(!found.is_empty(), "{kind}");
        for (id, r) in found {
            seen += 1;
            assert_eq!(
                reference(&r["Properties"][property]),
                Some(CUSTOMER_KEY),
                "{id}"
            );
        }
    }
    assert!(seen >= 10, "{seen}");
}

/// The statements of the bucket policy attached to a bucket (panics if it has none).
fn bucket_policy(doc: &Value, bucket: &str) -> Vec<Value> {
    let policies: Vec<&Value> = of_type(doc, "AWS::S3::BucketPolicy")
        .into_iter()
        .filter(|(_, r)| reference(&r["Properties"]["Bucket"]) == Some(bucket))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(policies.len(), 1, "{bucket} has one bucket policy");
    list(&policies[0]["Properties"]["PolicyDocument"]["Statement"])
}

fn denies_everyone(st: &Value) -> bool {
    st["Effect"] == "Deny" && (st["Principal"] == "*" || st["Principal"] == json!({"AWS": "*"}))
}

fn covers_objects(st: &Value, bucket: &str) -> bool {
    list(&st["Resource"]).contains(&json!({"!Sub": format!("${{{bucket}.Arn}}/*")}))
}

fn bucket_ids(doc: &Value) -> Vec<String> {
    of_type(doc, "AWS::S3::Bucket")
        .into_iter()
        .map(|(id, _)| id.clone())
        .collect()
}

/// R5.1: every bucket's policy denies every principal every S3 action on the bucket and
/// its objects when `aws:SecureTransport` is false, with no other condition narrowing it;
/// and no statement opens a bucket to everyone.
#[test]
fn every_bucket_denies_requests_without_tls() {
    let doc = template().json();
    let buckets = bucket_ids(&doc);
    assert!(buckets.len() >= 2);
    for bucket in &buckets {
        let statements = bucket_policy(&doc, bucket);
        let tls_only = statements.iter().any(|st| {
            denies_everyone(st)
                && strings(&st["Action"]).contains(&"s3:*".to_owned())
                && list(&st["Resource"]).contains(&json!({"!GetAtt": format!("{bucket}.Arn")}))
                && covers_objects(st, bucket)
                && st["Condition"] == json!({"Bool": {"aws:SecureTransport": "false"}})
        });
        assert!(tls_only, "{bucket}: {statements:#?}");
        assert!(
            !statements
                .iter()
                .any(|st| st["Effect"] == "Allow" && st["Principal"] == "*"),
            "{bucket}: public"
        );
    }
}

/// R5.2: every bucket's policy denies uploads (`s3:PutObject`, which covers multipart
/// uploads) that do not ask for `aws:kms`, and uploads that name a key other than the
/// customer managed key.
#[test]
fn every_bucket_denies_uploads_without_the_customer_key() {
    let doc = template().json();
    let buckets = bucket_ids(&doc);
    assert!(buckets.len() >= 2);
    for bucket in &buckets {
        let statements = bucket_policy(&doc, bucket);
        let denies = |condition: Value| {
            statements.iter().any(|st| {
                denies_everyone(st)
                    && strings(&st["Action"])
                        .iter()
                        .any(|a| a == "s3:PutObject" || a == "s3:*")
                    && covers_objects(st, bucket)
                    && st["Condition"] == condition
            })
        };
        assert!(
            denies(json!({"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}})),
            "{bucket}: uploads without aws:kms"
        );
        assert!(
            denies(json!({"StringNotEqualsIfExists": {
                "s3:x-amz-server-side-encryption-aws-kms-key-id": {"!GetAtt": format!("{CUSTOMER_KEY}.Arn")}
            }})),
            "{bucket}: uploads under another key"
        );
    }
}

/// The prefix (first path segment with its slash) of an object key.
fn prefix_of(key: &str) -> String {
    format!("{}/", key.split('/').next().unwrap())
}

/// R3, R3.3: the lifecycle backstops expire each prefix the code writes after its class's
/// period from R3: recordings and transcripts at the longest 6 calendar months (184 days)
/// plus the TTL grace, exports after 7 days plus at most one, analytics files after
/// `ANALYTICS_FILE_DAYS`; each rule also expires non-current versions after a day.
#[test]
fn the_lifecycle_rules_expire_each_prefix_after_its_retention_period() {
    let lead = LeadId::new();
    let recording = RetentionClass::Recording.period();
    assert_eq!(recording, Period::Months(6));
    let recording_days = max_days(recording);
    assert_eq!(recording_days, 184);
    let recording_backstop = recording_days + TTL_GRACE.num_days();
    let export_days = max_days(RetentionClass::Export.period());
    // (bucket, prefix the code writes, the expiration days the rule may have)
    let expected: Vec<(&str, String, std::ops::RangeInclusive<i64>)> = vec![
        (
            "RecordingsBucket",
            prefix_of(&shared::ingest::recording_key(&lead, "call")),
            recording_backstop..=recording_backstop,
        ),
        (
            "RecordingsBucket",
            prefix_of(&shared::calls::transcript_key(&lead, "call")),
            recording_backstop..=recording_backstop,
        ),
        // `exports/{request}.zip` (usecases::dsar::export): 7 days, a day of grace
        // behind the sweep.
        (
            "ExportsBucket",
            "exports/".into(),
            export_days..=export_days + 1,
        ),
        // `usecases::dsar::analytics::ANALYTICS_PREFIX`.
        (
            "ExportsBucket",
            "analytics/".into(),
            i64::from(ANALYTICS_FILE_DAYS)..=i64::from(ANALYTICS_FILE_DAYS),
        ),
    ];
    let buckets: BTreeMap<String, _> = template()
        .buckets()
        .unwrap()
        .into_iter()
        .map(|b| (b.logical_id.clone(), b))
        .collect();
    for (bucket, prefix, days) in expected {
        let rules: Vec<_> = buckets[bucket]
            .lifecycle
            .iter()
            .filter(|r| r.enabled && r.prefix == prefix)
            .collect();
        assert_eq!(rules.len(), 1, "{bucket} {prefix}: one enabled rule");
        let rule = rules[0];
        let expiration = i64::from(rule.expiration_days.unwrap_or(-1));
        assert!(
            days.contains(&expiration),
            "{bucket} {prefix}: expires after {expiration} days, expected {days:?}"
        );
        assert_eq!(rule.noncurrent_days, Some(1), "{bucket} {prefix}");
    }
}

/// R3.3: every bucket is versioned and has a bucket-wide rule that removes non-current
/// versions after a day, expired delete markers, and multipart uploads left incomplete
/// after a day; no bucket-wide rule expires current objects.
#[test]
fn every_bucket_removes_old_versions_delete_markers_and_stale_uploads() {
    let buckets = template().buckets().unwrap();
    assert!(buckets.len() >= 2);
    for b in &buckets {
        assert!(b.versioning, "{}", b.logical_id);
        let wide: Vec<_> = b
            .lifecycle
            .iter()
            .filter(|r| r.enabled && r.prefix.is_empty())
            .collect();
        assert_eq!(wide.len(), 1, "{}: one bucket-wide rule", b.logical_id);
        let rule = wide[0];
        assert_eq!(
            rule.expired_object_delete_marker,
            Some(true),
            "{}",
            b.logical_id
        );
        assert_eq!(rule.noncurrent_days, Some(1), "{}", b.logical_id);
        assert_eq!(rule.abort_incomplete_days, Some(1), "{}", b.logical_id);
        assert_eq!(rule.expiration_days, None, "{}", b.logical_id);
    }
}

/// R5.4: every function runs with an IAM role of its own: declared in the template
/// (no SAM-generated role, no managed policies), trusted only by Lambda, used by no other
/// function; no role is left over, and no policy resource adds statements to a role from
/// outside.
#[test]
fn every_function_runs_with_a_role_of_its_own() {
    let t = template();
    let doc = t.json();
    let functions = t.functions();
    assert!(functions.len() >= 7, "{functions:?}");
    let mut roles = BTreeSet::new();
    for f in &functions {
        let role = t
            .function_role(f)
            .unwrap_or_else(|| panic!("{f}: Role: !GetAtt <role>.Arn"));
        assert_eq!(
            doc["Resources"][&role]["Type"], "AWS::IAM::Role",
            "{f}: {role}"
        );
        assert!(roles.insert(role.clone()), "{f} shares {role}");
        assert!(
            doc["Resources"][f]["Properties"]["Policies"].is_null(),
            "{f}: SAM policies"
        );
    }
    let declared: BTreeSet<String> = t.resources_of("AWS::IAM::Role").into_iter().collect();
    assert_eq!(declared, roles, "roles without a function");
    for role in &roles {
        let p = &doc["Resources"][role]["Properties"];
        assert!(p["ManagedPolicyArns"].is_null(), "{role}: managed policies");
        let trust = list(&p["AssumeRolePolicyDocument"]["Statement"]);
        assert_eq!(trust.len(), 1, "{role}");
        assert_eq!(
            trust[0]["Principal"],
            json!({"Service": "lambda.amazonaws.com"}),
            "{role}"
        );
    }
    for kind in [
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::RolePolicy",
    ] {
        assert!(t.resources_of(kind).is_empty(), "{kind}");
    }
}

/// Why a role may hold a resource with a wildcard: each entry as narrow as IAM allows.
fn explained_wildcard(t: &Template, function: &str, resource: &str) -> Option<&'static str> {
    if let Some(group) = t.function_log_group(function) {
        if resource == format!("${{{group}.Arn}}:*") {
            return Some("the log streams of the function's own log group, named at run time");
        }
    }
    let (logical, path) = resource.strip_prefix("${")?.split_once(".Arn}/")?;
    let prefix = path.strip_suffix("/*")?;
    let is_bucket = t
        .resources_of("AWS::S3::Bucket")
        .iter()
        .any(|b| b == logical);
    (is_bucket && !prefix.is_empty() && !prefix.contains('*') && !prefix.contains('/'))
        .then_some("the objects under one prefix: their keys hold ids made at run time")
}

/// R5.4: no role allows an action with a wildcard or a resource `*`; the wildcards in
/// resources are on the explained allow-list only (a function's own log streams, the
/// objects under one bucket prefix). Key policies use `*` only as KMS requires: the
/// account's delegation to IAM and CloudWatch Logs' documented actions under the
/// stack's log-group context.
#[test]
fn no_role_holds_a_wildcard_outside_the_explained_allow_list() {
    let t = template();
    let mut unexplained = Vec::new();
    let mut explained = 0;
    for function in t.functions() {
        let role = t.function_role(&function).unwrap();
        for st in t.role_statements(&role) {
            assert_eq!(st["Effect"], "Allow", "{role}: {st:#}");
            for action in strings(&st["Action"]) {
                if action.contains('*') {
                    unexplained.push(format!("{role} {}: action {action}", st["Sid"]));
                }
            }
            for resource in list(&st["Resource"]) {
                let text = match &resource {
                    Value::String(s) => s.clone(),
                    other => other["!Sub"].as_str().unwrap_or_default().to_owned(),
                };
                if !text.contains('*') {
                    continue;
                }
                match explained_wildcard(&t, &function, &text) {
                    Some(_) => explained += 1,
                    None => unexplained.push(format!("{role} {}: resource {text}", st["Sid"])),
                }
            }
        }
    }
    assert!(unexplained.is_empty(), "{unexplained:#?}");
    // Every function's log streams at least: the check read the statements.
    assert!(explained >= t.functions().len(), "{explained}");

    let logs_actions = [
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Describe*",
    ];
    for key in t.resources_of("AWS::KMS::Key") {
        for st in t.key_policy_statements(&key) {
            assert_eq!(
                st["Resource"], "*",
                "{key}: a key policy names its key as *"
            );
            let actions = strings(&st["Action"]);
            if !actions.iter().any(|a| a.contains('*')) {
                continue;
            }
            let account_root = st["Principal"]
                == json!({"AWS": {"!Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}})
                && st["Condition"].is_null()
                && actions == ["kms:*"];
            let log_groups = st["Principal"]
                == json!({"Service": {"!Sub": "logs.${AWS::Region}.amazonaws.com"}})
                && actions == logs_actions
                && st["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
                    == json!({"!Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/polly/${AWS::StackName}/*"})
                && st["Condition"]["Null"]["kms:EncryptionContext:aws:logs:arn"] == "false";
            assert!(account_root || log_groups, "{key}: {st:#}");
        }
    }
}

/// The public routes of the API, each with its requirement: everything else needs IAM.
const PUBLIC_ROUTES: &[&str] = &[
    "POST /v1/signups",          // R1.1
    "POST /v1/telephony/retell", // R2.1
    "POST /v1/dsar",             // R4.1
    "POST /v1/dsar/{id}/verify", // R4.2
    "GET /v1/dsar/{id}",         // R4.2 status and download
    "GET /v1/dsar/{id}/cancel",  // R4.5 the erasure cancel link's page
    "POST /v1/dsar/{id}/cancel", // R4.5 its button
    // The sign-up pages and their assets (issue 16), German and English.
    "GET /signup",
    "POST /signup",
    "GET /en/signup",
    "POST /en/signup",
    "GET /signup/thanks",
    "GET /en/signup/thanks",
    "GET /privacy-policy",
    "GET /en/privacy-policy",
    "GET /assets/site.css",
    "GET /en/assets/site.css",
    "GET /assets/site.js",
    "GET /en/assets/site.js",
    // The privacy center's pages (R4.1, R4.2), German and English.
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
    "GET /v1/openapi.json", // the API description
];

/// A throttle setting that names a Number parameter with a positive default and minimum.
fn throttle_is_bounded(t: &Template, setting: &Value) -> bool {
    let Some(param) = setting["!Ref"].as_str() else {
        return setting.as_i64().is_some_and(|n| n >= 1);
    };
    let p = t.parameter(param);
    p["Type"] == "Number"
        && p["Default"].as_i64().is_some_and(|n| n >= 1)
        && p["MinValue"].as_i64().is_some_and(|n| n >= 1)
}

/// R1.6, R5.4: every route of every function is on the one HTTP API (no implicit API, no
/// function URL, no other API), and every route that is not IAM-authorised is throttled:
/// by its own route setting or the API's default, both from positive Number parameters.
#[test]
fn every_public_route_is_throttled() {
    let t = template();
    let doc = t.json();
    assert_eq!(t.resources_of("AWS::Serverless::HttpApi"), ["HttpApi"]);
    for kind in [
        "AWS::Serverless::Api",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Route",
        "AWS::Lambda::Url",
    ] {
        assert!(t.resources_of(kind).is_empty(), "{kind}");
    }
    for f in t.functions() {
        assert!(
            doc["Resources"][&f]["Properties"]["FunctionUrlConfig"].is_null(),
            "{f}: function URL"
        );
    }
    let mut http_events = 0;
    for (function, name, event) in events(&doc) {
        if event["Type"] == "Api" {
            panic!("{function} {name}: a REST API event");
        }
        if event["Type"] == "HttpApi" {
            http_events += 1;
            assert_eq!(
                event["Properties"]["ApiId"],
                json!({"!Ref": "HttpApi"}),
                "{function} {name}: an event without ApiId lands on SAM's implicit, unthrottled API"
            );
        }
    }

    let api = &doc["Resources"]["HttpApi"]["Properties"];
    let default = &api["DefaultRouteSettings"];
    let settings = t.route_settings("HttpApi");
    let routes = t.http_routes();
    assert_eq!(routes.len(), http_events);
    let public: Vec<_> = routes.iter().filter(|r| r.authorizer.is_none()).collect();
    assert!(public.len() >= PUBLIC_ROUTES.len(), "{public:?}");
    for r in public {
        let own = settings.get(&r.key());
        for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            let setting = own
                .map(|s| &s[limit])
                .filter(|v| !v.is_null())
                .unwrap_or(&default[limit]);
            assert!(
                throttle_is_bounded(&t, setting),
                "{}: {limit} {setting}",
                r.key()
            );
        }
    }
}

/// R4.10, R5.4: every route but the public ones (`PUBLIC_ROUTES`: sign-up, webhook, the
/// data subject's routes, the pages and the API description) is IAM-authorised
/// (`AWS_IAM`, the API's IAM authoriser on); the staff routes (`/v1/admin/...`) are
/// exactly the staff function's routes, and the sales routes (`/v1/sales/...`, issue 17)
/// exactly the sales function's.
#[test]
fn every_route_but_the_public_ones_needs_iam() {
    let t = template();
    let doc = t.json();
    assert_eq!(
        doc["Resources"]["HttpApi"]["Properties"]["Auth"]["EnableIamAuthorizer"],
        true
    );
    let routes = t.http_routes();
    let public: BTreeSet<String> = routes
        .iter()
        .filter(|r| r.authorizer.as_deref() != Some("AWS_IAM"))
        .map(|r| r.key())
        .collect();
    let expected: BTreeSet<String> = PUBLIC_ROUTES.iter().map(|s| s.to_string()).collect();
    assert_eq!(public, expected, "routes without IAM auth");
    let staff: Vec<_> = routes
        .iter()
        .filter(|r| r.path.starts_with("/v1/admin/") || r.path == "/v1/admin")
        .collect();
    assert!(staff.len() >= 4, "{staff:?}");
    for r in &staff {
        assert_eq!(r.authorizer.as_deref(), Some("AWS_IAM"), "{}", r.key());
        assert_eq!(r.function, "DsarStaffFunction", "{}", r.key());
    }
    let of_staff_function = routes
        .iter()
        .filter(|r| r.function == "DsarStaffFunction")
        .count();
    assert_eq!(of_staff_function, staff.len());
    let sales: Vec<_> = routes
        .iter()
        .filter(|r| r.path.starts_with("/v1/sales/"))
        .collect();
    assert_eq!(sales.len(), 3, "{sales:?}");
    for r in &sales {
        assert_eq!(r.authorizer.as_deref(), Some("AWS_IAM"), "{}", r.key());
        assert_eq!(r.function, "SalesApiFunction", "{}", r.key());
    }
    let of_sales_function = routes
        .iter()
        .filter(|r| r.function == "SalesApiFunction")
        .count();
    assert_eq!(of_sales_function, sales.len());
}

/// Whether a schedule expression fires once a day: `rate(1 day)` or a cron with a fixed
/// minute and hour on every day of every month.
fn daily(expression: &str) -> bool {
    if expression == "rate(1 day)" {
        return true;
    }
    let Some(fields) = expression
        .strip_prefix("cron(")
        .and_then(|e| e.strip_suffix(')'))
    else {
        return false;
    };
    let f: Vec<&str> = fields.split_whitespace().collect();
    let number = |s: &str, max: u32| s.parse::<u32>().is_ok_and(|n| n <= max);
    f.len() == 6
        && number(f[0], 59)
        && number(f[1], 23)
        && ((f[2] == "*" && f[4] == "?") || (f[2] == "?" && f[4] == "*"))
        && f[3] == "*"
        && f[5] == "*"
}

#[test]
fn the_daily_check_reads_cron_and_rate() {
    assert!(daily("cron(15 2 * * ? *)"));
    assert!(daily("rate(1 day)"));
    for not in [
        "cron(15 2 1 * ? *)",
        "cron(15 2 ? * MON *)",
        "cron(15 * * * ? *)",
        "cron(0/5 2 * * ? *)",
        "rate(2 days)",
        "rate(1 hour)",
    ] {
        assert!(!daily(not), "{not}");
    }
}

/// The payload a schedule sends: its `Input`, or an empty object.
fn schedule_input(event: &Value) -> Value {
    event["Properties"]["Input"]
        .as_str()
        .map(|s| serde_json::from_str(s).expect("Input is JSON"))
        .unwrap_or_else(|| json!({}))
}

/// R3.1: an enabled schedule invokes the retention sweep once a day, with a payload the
/// sweep's handler reads as a real run at the current time (not a dry run).
#[test]
fn the_sweep_runs_daily_on_a_schedule() {
    let doc = template().json();
    let now = Utc::now();
    let runs: Vec<(String, Value)> = events(&doc)
        .into_iter()
        .filter(|(f, _, e)| {
            f == "RetentionSweepFunction" && (e["Type"] == "ScheduleV2" || e["Type"] == "Schedule")
        })
        .filter(|(_, _, e)| {
            let input = schedule_input(e);
            input.get("outbox").is_none()
                && input.get("ledger_head").is_none()
                && retention_sweep::request_from(&input, now, false)
                    .is_ok_and(|r| !r.dry_run && r.now == now)
        })
        .map(|(_, name, e)| (name, e))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let (name, event) = &runs[0];
    let p = &event["Properties"];
    assert!(
        daily(p["ScheduleExpression"].as_str().unwrap_or_default()),
        "{name}: {}",
        p["ScheduleExpression"]
    );
    assert!(p["State"].is_null() || p["State"] == "ENABLED", "{name}");
    assert!(p["Enabled"].is_null() || p["Enabled"] == true, "{name}");
}

/// An enabled hourly schedule sends the sweep `{"outbox": true}`: provider deletions
/// that failed are retried within the hour rather than at the next daily run.
#[test]
fn the_provider_deletion_outbox_is_drained_hourly() {
    let doc = template().json();
    let hourly: Vec<(String, Value)> = events(&doc)
        .into_iter()
        .filter(|(f, _, e)| f == "RetentionSweepFunction" && e["Type"] == "ScheduleV2")
        .filter(|(_, _, e)| schedule_input(e) == json!({"outbox": true}))
        .map(|(_, name, e)| (name, e))
        .collect();
    assert_eq!(hourly.len(), 1, "{hourly:#?}");
    let p = &hourly[0].1["Properties"];
    assert_eq!(p["ScheduleExpression"], "rate(1 hour)");
    assert!(p["State"].is_null() || p["State"] == "ENABLED");
}

/// R3, R5.5: every function logs structured JSON into a log group of its own, declared in
/// the template under `/polly/<stack>/` (where the key policy lets CloudWatch Logs use the
/// customer key); every log group keeps events for the logs class's 30 days.
#[test]
fn every_function_logs_json_to_a_group_kept_30_days() {
    let t = template();
    let doc = t.json();
    let days = match RetentionClass::Logs.period() {
        Period::Days(d) => i64::from(d),
        other => panic!("logs are kept in days: {other:?}"),
    };
    assert_eq!(days, 30);
    let mut groups = BTreeSet::new();
    for f in t.functions() {
        let config = &doc["Resources"][&f]["Properties"]["LoggingConfig"];
        assert_eq!(config["LogFormat"], "JSON", "{f}");
        let group = reference(&config["LogGroup"])
            .unwrap_or_else(|| panic!("{f}: LoggingConfig.LogGroup: !Ref <group>"))
            .to_owned();
        assert_eq!(
            doc["Resources"][&group]["Type"], "AWS::Logs::LogGroup",
            "{f}: {group}"
        );
        assert!(groups.insert(group.clone()), "{f} shares {group}");
        let name = doc["Resources"][&group]["Properties"]["LogGroupName"]["!Sub"]
            .as_str()
            .unwrap_or_default();
        assert!(
            name.starts_with("/polly/${AWS::StackName}/"),
            "{group}: {name}"
        );
    }
    let all = of_type(&doc, "AWS::Logs::LogGroup");
    assert!(all.len() > groups.len(), "the API's access log group too");
    for (group, r) in all {
        assert_eq!(
            r["Properties"]["RetentionInDays"].as_i64(),
            Some(days),
            "{group}"
        );
    }
}

/// R4.5: the key table, where every function keeps the wrapped subject keys, has no
/// point-in-time recovery, no stream and no index, and no backup plan exists: a deleted
/// key cannot come back, so erasure by crypto-shredding holds for every backup of the data.
#[test]
fn the_key_table_has_no_backups_streams_or_indexes() {
    let t = template();
    let keys = t.key_table().unwrap();
    assert!(!keys.point_in_time_recovery, "PITR on the key table");
    assert_eq!(keys.stream_view_type, None, "a stream copies keys");
    assert!(keys.indexes.is_empty(), "an index copies keys");
    for kind in ["AWS::Backup::BackupPlan", "AWS::Backup::BackupSelection"] {
        assert!(t.resources_of(kind).is_empty(), "{kind}");
    }
    let mut given = 0;
    for f in t.functions() {
        let env = t.declared_environment(&f);
        if !env["KEY_TABLE_NAME"].is_null() {
            given += 1;
            assert_eq!(env["KEY_TABLE_NAME"], json!({"!Ref": "KeyTable"}), "{f}");
            assert_eq!(env["TABLE_NAME"], json!({"!Ref": "Table"}), "{f}");
        }
    }
    assert_eq!(given, t.functions().len());
}

/// The main table, which holds no keys, has point-in-time recovery (its backups are
/// unreadable once a subject's key is gone).
#[test]
fn the_main_table_has_point_in_time_recovery() {
    assert!(template().table().unwrap().point_in_time_recovery);
}

/// R3.3: every table has DynamoDB TTL enabled on the attribute the code writes the TTL
/// backstop into (`schema::TTL`).
#[test]
fn every_table_expires_items_by_the_ttl_attribute_the_code_writes() {
    let t = template();
    let tables = t.resources_of("AWS::DynamoDB::Table");
    assert!(tables.len() >= 2);
    for table in tables {
        assert_eq!(
            t.table_spec(&table).unwrap().ttl_attribute.as_deref(),
            Some(schema::TTL),
            "{table}"
        );
    }
}

/// Whether a literal looks like a credential: a provider key (`key_...`), or a long run
/// of letters and digits with both.
fn looks_like_a_secret(value: &str) -> bool {
    let token = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c));
    value.starts_with("key_")
        || (token
            && value.len() >= 20
            && value.chars().any(|c| c.is_ascii_digit())
            && value.chars().any(|c| c.is_ascii_alphabetic()))
}

#[test]
fn the_secret_check_flags_keys_and_passes_settings() {
    assert!(looks_like_a_secret("key_0123456789abcdef"));
    assert!(looks_like_a_secret("AKIAABCDEFGHIJ1234567890"));
    for plain in [
        "basic_attributes_only",
        "true",
        "info",
        "2024-04-08",
        "+4930000000",
    ] {
        assert!(!looks_like_a_secret(plain), "{plain}");
    }
}

/// R5.7, R2.1: no function environment value, parameter default or secret is a literal
/// credential: every variable naming a key or secret is a reference (`*_KEY_ID` to a KMS
/// key, `*_SECRET_ARN` to the Secrets Manager secret), literal values look like settings,
/// and the provider API key secret is generated by Secrets Manager, never written in the
/// template; every function that talks to the provider reads it from there.
#[test]
fn secrets_come_only_from_secrets_manager() {
    let t = template();
    let doc = t.json();
    let sensitive = ["SECRET", "TOKEN", "PASSWORD", "API_KEY", "PRIVATE", "KEY"];
    let mut checked = 0;
    for f in t.functions() {
        for vars in [
            t.declared_environment(&f),
            doc["Globals"]["Function"]["Environment"]["Variables"].clone(),
        ] {
            for (name, value) in vars.as_object().into_iter().flatten() {
                checked += 1;
                match value {
                    Value::String(s) => {
                        assert!(!looks_like_a_secret(s), "{f} {name}: a literal credential");
                        assert!(
                            !sensitive.iter().any(|w| name.contains(w)),
                            "{f} {name}: a literal value under a secret's name"
                        );
                    }
                    Value::Object(_) => {
                        if name.ends_with("_SECRET_ARN") {
                            let secret = reference(value).unwrap_or_default();
                            assert_eq!(
                                doc["Resources"][secret]["Type"], "AWS::SecretsManager::Secret",
                                "{f} {name}"
                            );
                        } else if name.ends_with("_KEY_ID") || name.ends_with("_KEY_ARN") {
                            let key = reference(value).unwrap_or_default();
                            assert_eq!(
                                doc["Resources"][key]["Type"], "AWS::KMS::Key",
                                "{f} {name}"
                            );
                        } else {
                            assert!(
                                !["SECRET", "TOKEN", "PASSWORD", "API_KEY"]
                                    .iter()
                                    .any(|w| name.contains(w)),
                                "{f} {name}"
                            );
                        }
                    }
                    other => assert!(!looks_like_a_secret(&other.to_string()), "{f} {name}"),
                }
            }
        }
    }
    assert!(checked >= 50, "{checked}");
    for (name, default) in t.parameter_defaults() {
        assert!(!looks_like_a_secret(&default), "parameter {name}");
    }

    let secret = &doc["Resources"]["ProviderApiKeySecret"];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    assert!(
        secret["Properties"]["SecretString"].is_null(),
        "a secret written in the template"
    );
    assert_eq!(
        secret["Properties"]["GenerateSecretString"]["GenerateStringKey"],
        "current"
    );
    for f in [
        "TelephonyWebhookFunction",
        "TelephonyWorkerFunction",
        "RetentionSweepFunction",
        "DsarWorkerFunction",
    ] {
        assert_eq!(
            t.declared_environment(f)["PROVIDER_API_KEY_SECRET_ARN"],
            json!({"!Ref": "ProviderApiKeySecret"}),
            "{f}"
        );
    }
}
