//! trace-level: template
//!
//! Two kinds of drift. The code against the template: the names and settings the code
//! relies on (key attributes, index names and projections, the TTL attribute, the
//! stream's images, the keys' usage, the environment the configuration reads) must be the
//! ones the template declares, else a deployed function fails where the local stack, built
//! from the same template, does not. And the local stack against the template: every
//! data-layer setting the template declares is read back from the emulator, which shows
//! that `harness::stack` builds what the template says; it proves nothing about the
//! template's values (those are asserted in `template_facts`).

use harness::stack::Stack;
use harness::template::Template;
use shared::adapters::dynamo::schema;

/// The local stack is built from the template: the emulator's tables have the template's
/// key schema, attributes, indexes, TTL, stream, PITR, SSE key and deletion protection,
/// and the TTL attribute and index names the code uses.
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
    let main = stack.describe_table().await.unwrap();
    for index in [
        schema::EMAIL_INDEX,
        schema::PHONE_INDEX,
        schema::EXPIRY_INDEX,
    ] {
        assert!(main.indexes.contains_key(index), "{index}");
    }
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
    assert_eq!(actual.ttl_attribute.as_deref(), Some(schema::TTL), "{name}");
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

/// The local stack is built from the template: the emulator's buckets have the
/// template's encryption, versioning, public access block and lifecycle rules.
#[tokio::test]
async fn local_buckets_match_the_template() {
    let stack = Stack::isolated().await.expect("provision");
    let declared = Template::load().unwrap().buckets().unwrap();
    assert!(declared.len() >= 2, "recordings and exports buckets");
    for bucket in declared {
        assert!(!bucket.lifecycle.is_empty(), "{}", bucket.logical_id);
        let actual = stack.describe_bucket(&bucket.logical_id).await.unwrap();
        assert_eq!(actual, bucket, "{}", bucket.logical_id);
    }
}

/// The local stack is built from the template: the emulator's KMS keys have the
/// template's spec, usage, rotation and description.
#[tokio::test]
async fn local_keys_match_the_template() {
    let stack = Stack::isolated().await.expect("provision");
    let keys = Template::load().unwrap().keys().unwrap();
    assert!(keys.len() >= 2);
    for key in keys {
        let actual = stack.describe_key(&key.logical_id).await.unwrap();
        assert_eq!(actual, key, "{}", key.logical_id);
    }
}

/// R3.2: the expiry index the sweep queries exists under the code's name, keyed by the
/// code's expiry attributes and projecting the `kind` and `lead_id` the sweep reads from
/// it; the table keys and the blind-index indexes carry the code's names too.
#[test]
fn the_code_uses_the_names_the_template_declares() {
    let template = Template::load().unwrap();
    let table = template.table().unwrap();
    let keys = [
        (schema::PK.into(), "HASH".into()),
        (schema::SK.into(), "RANGE".into()),
    ];
    assert_eq!(table.keys, keys);
    assert_eq!(template.key_table().unwrap().keys, keys);
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
    let expiry = index(schema::EXPIRY_INDEX);
    assert_eq!(
        expiry.keys,
        [
            (schema::EXPIRY_PARTITION_ATTR.into(), "HASH".into()),
            (schema::EXPIRY_SORT_ATTR.into(), "RANGE".into())
        ]
    );
    // `DynamoRetentionStore::due` reads these from the index's items
    // (crates/aws/src/retention.rs); a projection without them hands the sweep
    // nothing to erase.
    assert!(
        expiry.projection == "ALL"
            || (expiry.projection == "INCLUDE"
                && ["kind", "lead_id"]
                    .iter()
                    .all(|a| expiry.non_key_attributes.contains(*a))),
        "{expiry:?}"
    );
    // The code writes the partition as text and the sort key as epoch seconds.
    assert_eq!(table.attributes[schema::EXPIRY_PARTITION_ATTR], "S");
    assert_eq!(table.attributes[schema::EXPIRY_SORT_ATTR], "N");
}

/// The table's stream carries old and new images, which both stream workers compare to
/// see a transition (`record.change.old_image`), and both read the main table's stream.
#[test]
fn the_workers_stream_carries_old_and_new_images() {
    let template = Template::load().unwrap();
    assert_eq!(
        template.table().unwrap().stream_view_type.as_deref(),
        Some("NEW_AND_OLD_IMAGES")
    );
    for function in ["TelephonyWorkerFunction", "DsarWorkerFunction"] {
        let stream = harness::template::raw_json(
            &template.properties(function)["Events"]["TableStream"]["Properties"]["Stream"],
        );
        assert_eq!(
            stream,
            serde_json::json!({"!GetAtt": "Table.StreamArn"}),
            "{function}"
        );
    }
}

/// R5.3: the blind-index key every function is given (`BLIND_INDEX_KEY_ID`) is a KMS HMAC
/// key of the kind the code's `GenerateMac` call needs (HMAC_256 for HMAC_SHA_256), and
/// the data key (`DATA_KEY_ID`) is the symmetric key `GenerateDataKey` (AES_256) needs.
#[test]
fn the_keys_have_the_usage_the_code_calls_them_with() {
    let template = Template::load().unwrap();
    let keys = template.keys().unwrap();
    let key = |id: &str| keys.iter().find(|k| k.logical_id == id).unwrap().clone();
    // crates/aws/src/kms.rs: MacAlgorithmSpec::HmacSha256, DataKeySpec::Aes256.
    let blind = key("BlindIndexKey");
    assert_eq!(
        (blind.key_spec.as_str(), blind.key_usage.as_str()),
        ("HMAC_256", "GENERATE_VERIFY_MAC")
    );
    let data = key("DataKey");
    assert_eq!(
        (data.key_spec.as_str(), data.key_usage.as_str()),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    );
    let functions = template.functions();
    assert!(functions.len() >= 7);
    for function in functions {
        let env = template.declared_environment(&function);
        assert_eq!(
            env["BLIND_INDEX_KEY_ID"],
            serde_json::json!({"!Ref": "BlindIndexKey"}),
            "{function}"
        );
        assert_eq!(
            env["DATA_KEY_ID"],
            serde_json::json!({"!Ref": "DataKey"}),
            "{function}"
        );
    }
}

/// The sign-up function's template environment, resolved against the local stack, is a
/// configuration the code accepts, naming the stack's table and keys.
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

/// Every function's template environment, resolved against the local stack, is a
/// configuration the code accepts (no variable the code requires is missing), naming the
/// stack's table and key table.
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
