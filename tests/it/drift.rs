//! The local stack and the template must not drift apart: every data-layer setting the
//! template declares is read back from the emulator and compared, and the names the code
//! relies on (key attributes, index names, TTL attribute, environment) are checked
//! against the template.

use harness::stack::Stack;
use harness::template::Template;
use shared::adapters::dynamo::schema;

#[tokio::test]
async fn local_tables_match_the_template() {
    let stack = Stack::isolated().await.expect("provision");
    let template = Template::load().unwrap();
    for (declared, name) in [
        (template.table().unwrap(), stack.table.clone()),
        (template.key_table().unwrap(), stack.key_table.clone()),
    ] {
        table_matches(&stack, declared, &name).await;
    }
}

#[test]
fn the_key_table_is_kept_out_of_backups_and_streams() {
    // Crypto-shredding (R4.5): a deleted key must not come back from a backup.
    let keys = Template::load().unwrap().key_table().unwrap();
    assert!(!keys.point_in_time_recovery, "no PITR on the key table");
    assert!(keys.stream_view_type.is_none(), "no stream copies of keys");
    assert!(keys.indexes.is_empty());
    assert!(keys.sse_kms && keys.deletion_protection);
}

async fn table_matches(stack: &Stack, declared: harness::template::TableSpec, name: &str) {
    let actual = stack.describe_table_named(name).await.unwrap();
    assert_eq!(actual.keys, declared.keys, "key schema");
    assert_eq!(
        actual.attributes, declared.attributes,
        "attribute definitions"
    );
    assert_eq!(actual.indexes, declared.indexes, "global secondary indexes");
    assert_eq!(
        actual.ttl_attribute, declared.ttl_attribute,
        "TTL attribute"
    );
    assert_eq!(actual.stream_view_type, declared.stream_view_type, "stream");
    assert_eq!(
        actual.point_in_time_recovery, declared.point_in_time_recovery,
        "PITR"
    );
    assert_eq!(actual.sse_kms, declared.sse_kms, "SSE");
    assert_eq!(actual.sse_key, declared.sse_key, "SSE key");
    assert_eq!(
        actual.deletion_protection, declared.deletion_protection,
        "deletion protection"
    );
}

#[tokio::test]
async fn local_buckets_match_the_template() {
    let stack = Stack::isolated().await.expect("provision");
    let declared = Template::load().unwrap().buckets().unwrap();
    assert!(declared.len() >= 2, "recordings and exports buckets");
    for bucket in declared {
        let actual = stack.describe_bucket(&bucket.logical_id).await.unwrap();
        assert_eq!(actual, bucket, "{}", bucket.logical_id);
        assert_eq!(actual.sse_algorithm, "aws:kms");
        assert!(actual.versioning);
    }
}

#[tokio::test]
async fn local_keys_match_the_template() {
    let stack = Stack::isolated().await.expect("provision");
    for key in Template::load().unwrap().keys().unwrap() {
        let actual = stack.describe_key(&key.logical_id).await.unwrap();
        assert_eq!(actual, key, "{}", key.logical_id);
    }
}

#[test]
fn the_code_uses_the_names_the_template_declares() {
    let table = Template::load().unwrap().table().unwrap();
    assert_eq!(
        table.keys,
        [
            (schema::PK.into(), "HASH".into()),
            (schema::SK.into(), "RANGE".into())
        ]
    );
    assert_eq!(table.ttl_attribute.as_deref(), Some(schema::TTL));
    let index = |name: &str| {
        table
            .indexes
            .get(name)
            .unwrap_or_else(|| panic!("index {name}"))
            .clone()
    };
    assert_eq!(
        index(schema::EMAIL_INDEX).keys,
        [(schema::EMAIL_INDEX_ATTR.into(), "HASH".into())]
    );
    assert_eq!(
        index(schema::PHONE_INDEX).keys,
        [(schema::PHONE_INDEX_ATTR.into(), "HASH".into())]
    );
    assert_eq!(
        index(schema::EXPIRY_INDEX).keys,
        [
            (schema::EXPIRY_PARTITION_ATTR.into(), "HASH".into()),
            (schema::EXPIRY_SORT_ATTR.into(), "RANGE".into())
        ]
    );
}

#[tokio::test]
async fn the_signup_function_environment_in_the_template_is_a_valid_configuration() {
    let stack = Stack::isolated().await.expect("provision");
    let config = stack
        .signup_config()
        .expect("template environment parses as Config");
    assert_eq!(config.table_name, stack.table);
    assert_eq!(config.data_key_id, stack.key_id("DataKey").unwrap());
    assert_eq!(
        config.blind_index_key_id,
        stack.key_id("BlindIndexKey").unwrap()
    );
}

#[tokio::test]
async fn template_bucket_policies_enforce_tls_and_kms() {
    let stack = Stack::isolated().await.expect("provision");
    let template = Template::load().unwrap();
    let data_key_arn = stack.keys["DataKey"].1.clone();
    for bucket in template.buckets().unwrap() {
        let policy = template
            .bucket_policy(&bucket.logical_id, &stack.resolver())
            .unwrap()
            .unwrap_or_else(|| panic!("{} has a bucket policy", bucket.logical_id));
        let statements = policy["Statement"].as_array().unwrap();
        let denies = |pred: &dyn Fn(&serde_json::Value) -> bool| {
            statements
                .iter()
                .any(|s| s["Effect"] == "Deny" && s["Principal"] == "*" && pred(s))
        };
        assert!(
            denies(&|s| s["Condition"]["Bool"]["aws:SecureTransport"] == "false"),
            "{}: TLS only",
            bucket.logical_id
        );
        assert!(
            denies(&|s| s["Action"] == "s3:PutObject"
                && s["Condition"]["StringNotEquals"]["s3:x-amz-server-side-encryption"]
                    == "aws:kms"),
            "{}: uploads without aws:kms refused",
            bucket.logical_id
        );
        assert!(
            denies(&|s| s["Condition"]["StringNotEqualsIfExists"]
                ["s3:x-amz-server-side-encryption-aws-kms-key-id"]
                == data_key_arn.as_str()),
            "{}: uploads under another key refused",
            bucket.logical_id
        );
    }
}

#[tokio::test]
async fn every_function_environment_in_the_template_is_a_valid_configuration() {
    let stack = Stack::isolated().await.expect("provision");
    for function in Template::load()
        .unwrap()
        .resources_of("AWS::Serverless::Function")
    {
        let config = stack
            .config_for(&function)
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        assert_eq!(config.table_name, stack.table, "{function}");
        assert_eq!(config.key_table_name, stack.key_table, "{function}");
    }
}
