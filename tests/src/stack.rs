//! The local stack: the template's data layer created in the emulator, and read back.
//!
//! `provision` creates every data-layer resource of `infra/template.yaml` (keys, table,
//! buckets, bucket policies, the provider secret) with the template's own settings. Tests
//! provision one stack each under a unique name; `make run` provisions one named
//! `polly-local`. The `describe_*` functions read the emulator's state back into the same
//! specifications, for the drift test.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    SseSpecification, SseType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_kms::types::{KeySpec as KmsKeySpec, KeyUsageType};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};
use chrono::{DateTime, Utc};
use shared::adapters::{dynamo::DynamoLeadStore, kms::KmsKeyService};
use shared::domain::{Email, LeadId};
use shared::ports::{IdentifierKind, KeyService};

use crate::template::{
    BucketSpec, IndexSpec, KeySpec, LifecycleRuleSpec, Resolver, TableSpec, Template,
};

pub const REGION: &str = "eu-central-1";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// One provisioned copy of the template's data layer.
#[derive(Clone)]
pub struct Stack {
    pub name: String,
    pub table: String,
    /// The key table: wrapped subject keys, without backups (crypto-shredding).
    pub key_table: String,
    /// Logical id → (key id, key ARN).
    pub keys: BTreeMap<String, (String, String)>,
    /// Logical id → bucket name.
    pub buckets: BTreeMap<String, String>,
    pub provider_secret_arn: String,
    /// The CRM webhook's signing secret (`CrmWebhookSecret`), holding
    /// [`crate::crm_sim::LOCAL_SECRET`].
    pub crm_secret_arn: String,
    /// Logical id → (queue URL, queue ARN, queue name): the workers' dead-letter queues.
    pub queues: BTreeMap<String, (String, String, String)>,
    pub aws: SdkConfig,
    /// The emulator this stack lives in.
    pub endpoint: String,
}

impl Stack {
    /// A fresh stack under a unique name, for one test, in the shared emulator.
    pub async fn isolated() -> Result<Self> {
        Self::isolated_on(&crate::endpoint()).await
    }

    /// A fresh stack under a unique name, for one test, in the emulator at `endpoint`
    /// (see [`crate::emulator`]).
    pub async fn isolated_on(endpoint: &str) -> Result<Self> {
        let name = format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        Self::provision_on(endpoint, &name, "local-test-key").await
    }

    /// Creates every data-layer resource of the template, named after `name`, in the
    /// shared emulator.
    pub async fn provision(name: &str, provider_api_key: &str) -> Result<Self> {
        Self::provision_on(&crate::endpoint(), name, provider_api_key).await
    }

    /// Creates every data-layer resource of the template, named after `name`, in the
    /// emulator at `endpoint`.
    pub async fn provision_on(endpoint: &str, name: &str, provider_api_key: &str) -> Result<Self> {
        let template = Template::load()?;
        let aws = crate::aws_config_for(endpoint).await;
        let kms = aws_sdk_kms::Client::new(&aws);
        let ddb = aws_sdk_dynamodb::Client::new(&aws);
        let s3 = crate::s3_client(&aws);
        let secrets = aws_sdk_secretsmanager::Client::new(&aws);

        let mut stack = Stack {
            name: name.to_owned(),
            table: format!("{name}-table"),
            key_table: format!("{name}-keys"),
            keys: BTreeMap::new(),
            buckets: BTreeMap::new(),
            provider_secret_arn: String::new(),
            crm_secret_arn: String::new(),
            queues: BTreeMap::new(),
            aws: aws.clone(),
            endpoint: endpoint.to_owned(),
        };
        for logical in template.resources_of("AWS::S3::Bucket") {
            stack.buckets.insert(
                logical.clone(),
                format!(
                    "{name}-{}",
                    logical.trim_end_matches("Bucket").to_lowercase()
                ),
            );
        }

        // Keys first: everything else is encrypted under them.
        for key in template.keys()? {
            let policy = template.properties(&key.logical_id)["KeyPolicy"].clone();
            let policy = stack.resolver().json(&policy).context("key policy")?;
            let out = kms
                .create_key()
                .key_spec(KmsKeySpec::from(key.key_spec.as_str()))
                .key_usage(KeyUsageType::from(key.key_usage.as_str()))
                .description(&key.description)
                .policy(policy.to_string())
                .send()
                .await
                .with_context(|| format!("creating key {}", key.logical_id))?;
            let meta = out
                .key_metadata()
                .ok_or_else(|| anyhow!("no key metadata"))?;
            let arn = meta.arn().unwrap_or_default().to_owned();
            if key.rotation {
                kms.enable_key_rotation()
                    .key_id(meta.key_id())
                    .send()
                    .await?;
            }
            stack
                .keys
                .insert(key.logical_id.clone(), (meta.key_id().to_owned(), arn));
        }
        for alias in template.resources_of("AWS::KMS::Alias") {
            let p = stack.resolver().json(template.properties(&alias))?;
            kms.create_alias()
                .alias_name(p["AliasName"].as_str().unwrap_or_default())
                .target_key_id(p["TargetKeyId"].as_str().unwrap_or_default())
                .send()
                .await
                .with_context(|| format!("creating alias {alias}"))?;
        }

        create_table(&ddb, &stack, &stack.table, &template.table()?).await?;
        create_table(&ddb, &stack, &stack.key_table, &template.key_table()?).await?;

        for bucket in template.buckets()? {
            create_bucket(&s3, &stack, &template, &bucket).await?;
        }

        for secret in template.resources_of("AWS::SecretsManager::Secret") {
            let crm = secret == "CrmWebhookSecret";
            let value = if crm {
                serde_json::json!({"current": crate::crm_sim::LOCAL_SECRET})
            } else {
                serde_json::json!({"current": provider_api_key, "previous": ""})
            };
            let out = secrets
                .create_secret()
                .name(format!("{name}-{}", secret.to_lowercase()))
                .kms_key_id(stack.key_id("DataKey")?)
                .secret_string(value.to_string())
                .send()
                .await
                .with_context(|| format!("creating secret {secret}"))?;
            let arn = out.arn().unwrap_or_default().to_owned();
            if crm {
                stack.crm_secret_arn = arn;
            } else {
                stack.provider_secret_arn = arn;
            }
        }

        // The dead-letter queues (their encryption settings are not emulated).
        let sqs = aws_sdk_sqs::Client::new(&aws);
        for queue in template.resources_of("AWS::SQS::Queue") {
            let queue_name = format!("{name}-{}", queue.to_lowercase());
            let url = sqs
                .create_queue()
                .queue_name(&queue_name)
                .send()
                .await
                .with_context(|| format!("creating queue {queue}"))?
                .queue_url()
                .unwrap_or_default()
                .to_owned();
            let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}");
            stack.queues.insert(queue, (url, arn, queue_name));
        }

        // The sender of mails to data subjects: a verified SES identity (in AWS the
        // operator verifies the domain; see README).
        let mail_from = stack
            .resolver()
            .values
            .get("MailFrom")
            .cloned()
            .ok_or_else(|| anyhow!("template has no MailFrom parameter"))?;
        let ses = aws_sdk_sesv2::Client::new(&aws);
        if let Err(e) = ses
            .create_email_identity()
            .email_identity(&mail_from)
            .send()
            .await
        {
            if !e
                .as_service_error()
                .is_some_and(|s| s.is_already_exists_exception())
            {
                return Err(anyhow!(e).context("verifying the mail sender"));
            }
        }
        Ok(stack)
    }

    pub fn key_id(&self, logical: &str) -> Result<&str> {
        self.keys
            .get(logical)
            .map(|(id, _)| id.as_str())
            .ok_or_else(|| anyhow!("no key {logical}"))
    }

    pub fn bucket(&self, logical: &str) -> &str {
        self.buckets
            .get(logical)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Values for the template's intrinsic functions in this stack.
    pub fn resolver(&self) -> Resolver {
        let mut values = BTreeMap::from([
            ("AWS::Region".to_owned(), REGION.to_owned()),
            ("AWS::AccountId".to_owned(), ACCOUNT.to_owned()),
            ("AWS::Partition".to_owned(), "aws".to_owned()),
            ("AWS::StackName".to_owned(), self.name.clone()),
            ("Table".to_owned(), self.table.clone()),
            ("KeyTable".to_owned(), self.key_table.clone()),
            (
                "ProviderApiKeySecret".to_owned(),
                self.provider_secret_arn.clone(),
            ),
            ("CrmWebhookSecret".to_owned(), self.crm_secret_arn.clone()),
        ]);
        for (logical, (id, arn)) in &self.keys {
            values.insert(logical.clone(), id.clone());
            values.insert(format!("{logical}.Arn"), arn.clone());
        }
        for (logical, (url, arn, name)) in &self.queues {
            values.insert(logical.clone(), url.clone());
            values.insert(format!("{logical}.Arn"), arn.clone());
            values.insert(format!("{logical}.QueueName"), name.clone());
        }
        for (logical, name) in &self.buckets {
            values.insert(logical.clone(), name.clone());
            values.insert(format!("{logical}.Arn"), format!("arn:aws:s3:::{name}"));
        }
        let template = Template::load().ok();
        let mut lists = BTreeMap::new();
        if let Some(t) = template.as_ref() {
            for (name, default) in t.parameter_defaults() {
                values.insert(name, default);
            }
        }
        // Local browsers run on localhost; the template's production origins do not apply.
        lists.insert(
            "AllowedOrigins".to_owned(),
            vec![
                "http://127.0.0.1:8080".to_owned(),
                "http://localhost:8080".to_owned(),
            ],
        );
        Resolver { values, lists }
    }

    /// The environment the template gives a function, resolved for this stack.
    pub fn function_env(&self, logical: &str) -> Result<BTreeMap<String, String>> {
        Template::load()?.function_environment(logical, &self.resolver())
    }

    /// The sign-up function's configuration, built from its template environment.
    pub fn signup_config(&self) -> Result<shared::Config> {
        self.config_for("SignupFunction")
    }

    /// A function's configuration, built from its template environment. Like
    /// `make run`, the local sweep may be run with a moved clock (R3.1); the template
    /// never allows it (`template_config_for` gives the deployed configuration).
    pub fn config_for(&self, logical: &str) -> Result<shared::Config> {
        let mut env = self.function_env(logical)?;
        if logical == "RetentionSweepFunction" {
            env.insert(
                shared::config::SWEEP_ALLOW_CLOCK_OVERRIDE.to_owned(),
                "true".to_owned(),
            );
        }
        Ok(shared::Config::from_map(&env.into_iter().collect())?)
    }

    /// A function's configuration exactly as the template's environment gives it, without
    /// anything the local stack adds.
    pub fn template_config_for(&self, logical: &str) -> Result<shared::Config> {
        let env = self.function_env(logical)?;
        Ok(shared::Config::from_map(&env.into_iter().collect())?)
    }

    /// The subject holding `email`, found the way the system finds it: the email's blind
    /// index from the KMS HMAC key, then the live `EMAIL#<index>` / `CLAIM` item. The
    /// sign-up answer names no lead (R1.6), so tests and benchmarks look it up here.
    pub async fn lead_of(&self, email: &str, now: DateTime<Utc>) -> Result<Option<LeadId>> {
        let email = Email::parse(email).map_err(|_| anyhow!("not an email address"))?;
        let config = self.signup_config()?;
        let keys = KmsKeyService::new(
            aws_sdk_kms::Client::new(&self.aws),
            config.data_key_id,
            config.blind_index_key_id,
        );
        let index = keys
            .blind_index(IdentifierKind::Email, &email.lookup_key())
            .await?;
        let store = DynamoLeadStore::new(
            aws_sdk_dynamodb::Client::new(&self.aws),
            config.table_name,
            config.key_table_name,
        );
        Ok(store
            .claim_holder(shared::ports::IdentifierKind::Email, &index, now)
            .await?)
    }

    pub async fn describe_table(&self) -> Result<TableSpec> {
        self.describe_table_named(&self.table).await
    }

    pub async fn describe_table_named(&self, table: &str) -> Result<TableSpec> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.aws);
        let t = ddb.describe_table().table_name(table).send().await?;
        let t = t.table().ok_or_else(|| anyhow!("no table description"))?;
        let keys = |ks: &[KeySchemaElement]| {
            ks.iter()
                .map(|k| {
                    (
                        k.attribute_name().to_owned(),
                        k.key_type().as_str().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut indexes = BTreeMap::new();
        for g in t.global_secondary_indexes() {
            let name = g.index_name().unwrap_or_default().to_owned();
            let projection = g.projection();
            indexes.insert(
                name.clone(),
                IndexSpec {
                    name,
                    keys: keys(g.key_schema()),
                    projection: projection
                        .and_then(|p| p.projection_type())
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    non_key_attributes: projection
                        .map(|p| p.non_key_attributes().iter().cloned().collect())
                        .unwrap_or_default(),
                },
            );
        }
        let ttl = ddb.describe_time_to_live().table_name(table).send().await?;
        let ttl = ttl
            .time_to_live_description()
            .filter(|d| d.time_to_live_status().map(|s| s.as_str()) == Some("ENABLED"))
            .and_then(|d| d.attribute_name().map(str::to_owned));
        let pitr = ddb
            .describe_continuous_backups()
            .table_name(table)
            .send()
            .await?;
        let pitr = pitr
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|d| d.point_in_time_recovery_status())
            .map(|s| s.as_str() == "ENABLED")
            .unwrap_or(false);
        let sse = t.sse_description();
        let sse_arn = sse.and_then(|s| s.kms_master_key_arn()).unwrap_or_default();
        Ok(TableSpec {
            attributes: t
                .attribute_definitions()
                .iter()
                .map(|a| {
                    (
                        a.attribute_name().to_owned(),
                        a.attribute_type().as_str().to_owned(),
                    )
                })
                .collect(),
            keys: keys(t.key_schema()),
            indexes,
            billing_mode: t
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map(|b| b.as_str().to_owned())
                .unwrap_or_default(),
            stream_view_type: t
                .stream_specification()
                .filter(|s| s.stream_enabled())
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str().to_owned()),
            ttl_attribute: ttl,
            point_in_time_recovery: pitr,
            sse_kms: sse
                .and_then(|s| s.sse_type())
                .map(|t| t.as_str() == "KMS")
                .unwrap_or(false)
                && sse
                    .and_then(|s| s.status())
                    .map(|s| s.as_str() == "ENABLED")
                    .unwrap_or(false),
            sse_key: self.key_logical_id(sse_arn),
            deletion_protection: t.deletion_protection_enabled().unwrap_or(false),
        })
    }

    pub async fn describe_bucket(&self, logical: &str) -> Result<BucketSpec> {
        let s3 = crate::s3_client(&self.aws);
        let bucket = self.bucket(logical);
        let enc = s3.get_bucket_encryption().bucket(bucket).send().await?;
        let rule = enc
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .ok_or_else(|| anyhow!("no encryption rule"))?;
        let by_default = rule.apply_server_side_encryption_by_default();
        let versioning = s3.get_bucket_versioning().bucket(bucket).send().await?;
        let pab = s3.get_public_access_block().bucket(bucket).send().await?;
        let pab = pab.public_access_block_configuration();
        let flag = |f: Option<bool>| f.unwrap_or(false);
        let lc = s3
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await?;
        let mut lifecycle = BTreeSet::new();
        for r in lc.rules() {
            let prefix = r
                .filter()
                .and_then(|f| f.prefix())
                .or(
                    #[allow(deprecated)]
                    r.prefix(),
                )
                .unwrap_or_default()
                .to_owned();
            lifecycle.insert(LifecycleRuleSpec {
                id: r.id().unwrap_or_default().to_owned(),
                enabled: r.status().as_str() == "Enabled",
                prefix,
                expiration_days: r.expiration().and_then(|e| e.days()),
                expired_object_delete_marker: r
                    .expiration()
                    .and_then(|e| e.expired_object_delete_marker()),
                noncurrent_days: r
                    .noncurrent_version_expiration()
                    .and_then(|n| n.noncurrent_days()),
                abort_incomplete_days: r
                    .abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation()),
            });
        }
        Ok(BucketSpec {
            logical_id: logical.to_owned(),
            sse_algorithm: by_default
                .map(|d| d.sse_algorithm().as_str().to_owned())
                .unwrap_or_default(),
            sse_key: by_default
                .and_then(|d| d.kms_master_key_id())
                .and_then(|k| self.key_logical_id(k)),
            bucket_key: rule.bucket_key_enabled().unwrap_or(false),
            versioning: versioning
                .status()
                .map(|s| s.as_str() == "Enabled")
                .unwrap_or(false),
            block_public_access: [
                flag(pab.and_then(|p| p.block_public_acls())),
                flag(pab.and_then(|p| p.block_public_policy())),
                flag(pab.and_then(|p| p.ignore_public_acls())),
                flag(pab.and_then(|p| p.restrict_public_buckets())),
            ],
            lifecycle,
        })
    }

    pub async fn describe_key(&self, logical: &str) -> Result<KeySpec> {
        let kms = aws_sdk_kms::Client::new(&self.aws);
        let id = self.key_id(logical)?;
        let meta = kms.describe_key().key_id(id).send().await?;
        let meta = meta
            .key_metadata()
            .ok_or_else(|| anyhow!("no key metadata"))?;
        let rotation = match kms.get_key_rotation_status().key_id(id).send().await {
            Ok(r) => r.key_rotation_enabled(),
            Err(_) => false,
        };
        Ok(KeySpec {
            logical_id: logical.to_owned(),
            key_spec: meta
                .key_spec()
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
            key_usage: meta
                .key_usage()
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
            rotation,
            description: meta.description().unwrap_or_default().to_owned(),
        })
    }

    /// The logical id of the key with this id or ARN.
    fn key_logical_id(&self, id_or_arn: &str) -> Option<String> {
        self.keys
            .iter()
            .find(|(_, (id, arn))| id == id_or_arn || arn == id_or_arn)
            .map(|(logical, _)| logical.clone())
    }
}

async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    stack: &Stack,
    table: &str,
    spec: &TableSpec,
) -> Result<()> {
    let key = |(name, kind): &(String, String)| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::from(kind.as_str()))
            .build()
    };
    let mut req = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(spec.billing_mode.as_str()))
        .deletion_protection_enabled(spec.deletion_protection);
    for (name, kind) in &spec.attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()?,
        );
    }
    for k in &spec.keys {
        req = req.key_schema(key(k)?);
    }
    for index in spec.indexes.values() {
        let mut projection =
            Projection::builder().projection_type(ProjectionType::from(index.projection.as_str()));
        for a in &index.non_key_attributes {
            projection = projection.non_key_attributes(a);
        }
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(&index.name)
            .projection(projection.build());
        for k in &index.keys {
            gsi = gsi.key_schema(key(k)?);
        }
        req = req.global_secondary_indexes(gsi.build()?);
    }
    if let Some(view) = &spec.stream_view_type {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()?,
        );
    }
    if spec.sse_kms {
        let mut sse = SseSpecification::builder()
            .enabled(true)
            .sse_type(SseType::Kms);
        if let Some(key) = &spec.sse_key {
            sse = sse.kms_master_key_id(stack.key_id(key)?);
        }
        req = req.sse_specification(sse.build());
    }
    req.send().await.context("creating the table")?;
    if let Some(attr) = &spec.ttl_attribute {
        ddb.update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .context("enabling TTL")?;
    }
    if spec.point_in_time_recovery {
        ddb.update_continuous_backups()
            .table_name(table)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()?,
            )
            .send()
            .await
            .context("enabling point-in-time recovery")?;
    }
    Ok(())
}

async fn create_bucket(
    s3: &aws_sdk_s3::Client,
    stack: &Stack,
    template: &Template,
    spec: &BucketSpec,
) -> Result<()> {
    let name = stack.bucket(&spec.logical_id);
    s3.create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("creating bucket {}", spec.logical_id))?;
    if spec.versioning {
        s3.put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await?;
    }
    let mut by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::from(spec.sse_algorithm.as_str()));
    if let Some(key) = &spec.sse_key {
        by_default = by_default.kms_master_key_id(&stack.keys[key].1);
    }
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(by_default.build()?)
                        .bucket_key_enabled(spec.bucket_key)
                        .build(),
                )
                .build()?,
        )
        .send()
        .await?;
    let [acls, policy, ignore, restrict] = spec.block_public_access;
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(acls)
                .block_public_policy(policy)
                .ignore_public_acls(ignore)
                .restrict_public_buckets(restrict)
                .build(),
        )
        .send()
        .await?;
    if !spec.lifecycle.is_empty() {
        let mut config = BucketLifecycleConfiguration::builder();
        for r in &spec.lifecycle {
            let mut rule = LifecycleRule::builder()
                .id(&r.id)
                .status(if r.enabled {
                    ExpirationStatus::Enabled
                } else {
                    ExpirationStatus::Disabled
                })
                .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build());
            if r.expiration_days.is_some() || r.expired_object_delete_marker.is_some() {
                rule = rule.expiration(
                    LifecycleExpiration::builder()
                        .set_days(r.expiration_days)
                        .set_expired_object_delete_marker(r.expired_object_delete_marker)
                        .build(),
                );
            }
            if let Some(days) = r.noncurrent_days {
                rule = rule.noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(days)
                        .build(),
                );
            }
            if let Some(days) = r.abort_incomplete_days {
                rule = rule.abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(days)
                        .build(),
                );
            }
            config = config.rules(rule.build()?);
        }
        s3.put_bucket_lifecycle_configuration()
            .bucket(name)
            .lifecycle_configuration(config.build()?)
            .send()
            .await
            .context("putting the lifecycle configuration")?;
    }
    if let Some(mut policy) = template.bucket_policy(&spec.logical_id, &stack.resolver())? {
        // moto evaluates bucket policies but knows neither TLS (it speaks plain HTTP) nor
        // the request's SSE headers as condition keys, so these deny statements would
        // refuse every request locally. They are kept out of the emulator only; the
        // template's statements are checked by `template_bucket_policies_enforce_tls_and_kms`.
        if let Some(statements) = policy["Statement"].as_array_mut() {
            statements.retain(|st| {
                let condition = st["Condition"].to_string();
                !condition.contains("aws:SecureTransport")
                    && !condition.contains("s3:x-amz-server-side-encryption")
            });
            if statements.is_empty() {
                return Ok(());
            }
        }
        s3.put_bucket_policy()
            .bucket(name)
            .policy(policy.to_string())
            .send()
            .await
            .context("putting the bucket policy")?;
    }
    Ok(())
}

impl Stack {
    /// Writes `count` phone-consent proofs due at `due` straight into the table (batches of
    /// 25), for sweep tests and benchmarks at scale.
    pub async fn seed_due_consent_proofs(
        &self,
        count: usize,
        due: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
        let ddb = aws_sdk_dynamodb::Client::new(&self.aws);
        let bucket = shared::domain::retention::expiry_bucket(
            shared::domain::RetentionClass::PhoneConsentProof,
            due,
        );
        let writes = (0..count)
            .map(|i| {
                let item = [
                    (
                        "pk",
                        AttributeValue::S(format!("LEAD#{}", uuid::Uuid::now_v7())),
                    ),
                    ("sk", AttributeValue::S(format!("CONSENT#{i:05}"))),
                    ("kind", AttributeValue::S("phone_consent".into())),
                    ("exp_bucket", AttributeValue::S(bucket.clone())),
                    (
                        "exp_at",
                        AttributeValue::N((due.timestamp() + i as i64).to_string()),
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in writes.chunks(25) {
            ddb.batch_write_item()
                .request_items(&self.table, chunk.to_vec())
                .send()
                .await?;
        }
        Ok(())
    }
}

/// A mail the emulator recorded as sent.
#[derive(Debug, Clone)]
pub struct SentMail {
    pub source: String,
    pub to: Vec<String>,
    pub subject: String,
    /// The HTML body (moto keeps the HTML part when a mail has both).
    pub body: String,
}

impl Stack {
    /// Every mail this stack's emulator recorded as sent to `to`, oldest first.
    pub async fn sent_mail(&self, to: &str) -> Result<Vec<SentMail>> {
        sent_mail_at(&self.endpoint, to).await
    }

    /// Every mail this stack's emulator recorded as sent, oldest first (one dump).
    pub async fn all_sent_mail(&self) -> Result<Vec<SentMail>> {
        all_sent_mail_at(&self.endpoint).await
    }
}

/// Every mail the shared emulator's SES recorded as sent to `to`, oldest first.
pub async fn sent_mail(to: &str) -> Result<Vec<SentMail>> {
    sent_mail_at(&crate::endpoint(), to).await
}

/// Every mail the emulator at `endpoint` recorded as sent to `to`, oldest first.
pub async fn sent_mail_at(endpoint: &str, to: &str) -> Result<Vec<SentMail>> {
    Ok(all_sent_mail_at(endpoint)
        .await?
        .into_iter()
        .filter(|m| m.to.iter().any(|d| d == to))
        .collect())
}

/// Every mail the emulator at `endpoint` recorded as sent, oldest first (one dump of the
/// emulator). moto answers this dump with 404 once an aborted multipart upload is left in
/// it, and it gets slower with every object the emulator ever held: tests that read mail
/// use an emulator of their own ([`crate::emulator::private`]).
pub async fn all_sent_mail_at(endpoint: &str) -> Result<Vec<SentMail>> {
    let url = format!("{endpoint}/moto-api/data.json");
    // moto builds this dump while other tests change its models; a dump taken mid-change
    // can fail, and on a loaded machine several in a row: try again, backing off, for
    // about half a minute.
    let mut data = serde_json::Value::Null;
    const ATTEMPTS: u64 = 40;
    for attempt in 0..ATTEMPTS {
        let text = reqwest::get(&url).await?.text().await?;
        match serde_json::from_str(&text) {
            Ok(v) => {
                data = v;
                break;
            }
            Err(e) if attempt == ATTEMPTS - 1 => return Err(e.into()),
            Err(_) => {
                let wait = (100 * (attempt + 1)).min(1000);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await
            }
        }
    }
    let messages = data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(messages
        .iter()
        .filter_map(|m| {
            let dest: Vec<String> = m["destinations"]["ToAddresses"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            Some(SentMail {
                source: m["source"].as_str().unwrap_or_default().to_owned(),
                to: dest,
                subject: m["subject"].as_str().unwrap_or_default().to_owned(),
                body: m["body"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect())
}
