//! The data layer as `infra/template.yaml` declares it, reduced to plain specifications
//! that can be compared with what the emulator reports.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context, Result};
use serde_norway::Value;

/// A parsed template.
pub struct Template {
    root: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    /// (attribute, HASH|RANGE)
    pub keys: Vec<(String, String)>,
    pub projection: String,
    pub non_key_attributes: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub attributes: BTreeMap<String, String>,
    pub keys: Vec<(String, String)>,
    pub indexes: BTreeMap<String, IndexSpec>,
    pub billing_mode: String,
    pub stream_view_type: Option<String>,
    pub ttl_attribute: Option<String>,
    pub point_in_time_recovery: bool,
    pub sse_kms: bool,
    /// Logical id of the KMS key named as the table's key.
    pub sse_key: Option<String>,
    pub deletion_protection: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LifecycleRuleSpec {
    pub id: String,
    pub enabled: bool,
    pub prefix: String,
    pub expiration_days: Option<i32>,
    pub expired_object_delete_marker: Option<bool>,
    pub noncurrent_days: Option<i32>,
    pub abort_incomplete_days: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub logical_id: String,
    pub sse_algorithm: String,
    /// Logical id of the KMS key of the default encryption.
    pub sse_key: Option<String>,
    pub bucket_key: bool,
    pub versioning: bool,
    pub block_public_access: [bool; 4],
    pub lifecycle: BTreeSet<LifecycleRuleSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub logical_id: String,
    pub key_spec: String,
    pub key_usage: String,
    pub rotation: bool,
    pub description: String,
}

fn tag_of(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string(), &t.value)),
        _ => None,
    }
}

/// The logical id a `!Ref X` or `!GetAtt X.Arn` points to.
fn referenced(v: &Value) -> Option<String> {
    let (tag, inner) = tag_of(v)?;
    match (tag.as_str(), inner) {
        ("!Ref", Value::String(s)) => Some(s.clone()),
        ("!GetAtt", Value::String(s)) => Some(s.split('.').next()?.to_owned()),
        ("!GetAtt", Value::Sequence(parts)) => parts.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn s(v: &Value, what: &str) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{what} is not a string"))
}

fn b(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

impl Template {
    pub fn load() -> Result<Self> {
        let path = crate::template_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            root: serde_norway::from_str(&text).context("parsing the template")?,
        })
    }

    /// Logical ids of all resources of a type, in template order.
    pub fn resources_of(&self, kind: &str) -> Vec<String> {
        self.root["Resources"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .filter(|(_, r)| r["Type"].as_str() == Some(kind))
                    .filter_map(|(k, _)| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn properties(&self, logical_id: &str) -> &Value {
        &self.root["Resources"][logical_id]["Properties"]
    }

    /// The main table (`Table`).
    pub fn table(&self) -> Result<TableSpec> {
        self.table_spec("Table")
    }

    /// The key table (`KeyTable`): wrapped subject keys, deliberately without backups.
    pub fn key_table(&self) -> Result<TableSpec> {
        self.table_spec("KeyTable")
    }

    pub fn table_spec(&self, id: &str) -> Result<TableSpec> {
        if self.root["Resources"][id]["Type"].as_str() != Some("AWS::DynamoDB::Table") {
            bail!("{id} is not a table of the template");
        }
        let p = self.properties(id);
        let keys = |v: &Value| -> Result<Vec<(String, String)>> {
            v.as_sequence()
                .ok_or_else(|| anyhow!("KeySchema missing"))?
                .iter()
                .map(|k| {
                    Ok((
                        s(&k["AttributeName"], "AttributeName")?,
                        s(&k["KeyType"], "KeyType")?,
                    ))
                })
                .collect()
        };
        let mut attributes = BTreeMap::new();
        for a in p["AttributeDefinitions"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            attributes.insert(
                s(&a["AttributeName"], "AttributeName")?,
                s(&a["AttributeType"], "AttributeType")?,
            );
        }
        let mut indexes = BTreeMap::new();
        for g in p["GlobalSecondaryIndexes"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let name = s(&g["IndexName"], "IndexName")?;
            let spec = IndexSpec {
                name: name.clone(),
                keys: keys(&g["KeySchema"])?,
                projection: s(&g["Projection"]["ProjectionType"], "ProjectionType")?,
                non_key_attributes: g["Projection"]["NonKeyAttributes"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            };
            indexes.insert(name, spec);
        }
        Ok(TableSpec {
            attributes,
            keys: keys(&p["KeySchema"])?,
            indexes,
            billing_mode: s(&p["BillingMode"], "BillingMode")?,
            stream_view_type: p["StreamSpecification"]["StreamViewType"]
                .as_str()
                .map(str::to_owned),
            ttl_attribute: b(&p["TimeToLiveSpecification"]["Enabled"])
                .then(|| {
                    p["TimeToLiveSpecification"]["AttributeName"]
                        .as_str()
                        .map(str::to_owned)
                })
                .flatten(),
            point_in_time_recovery: b(
                &p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
            ),
            sse_kms: b(&p["SSESpecification"]["SSEEnabled"])
                && p["SSESpecification"]["SSEType"].as_str() == Some("KMS"),
            sse_key: referenced(&p["SSESpecification"]["KMSMasterKeyId"]),
            deletion_protection: b(&p["DeletionProtectionEnabled"]),
        })
    }

    pub fn buckets(&self) -> Result<Vec<BucketSpec>> {
        self.resources_of("AWS::S3::Bucket")
            .into_iter()
            .map(|id| {
                let p = self.properties(&id);
                let rule = &p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
                let pab = &p["PublicAccessBlockConfiguration"];
                let mut lifecycle = BTreeSet::new();
                for r in p["LifecycleConfiguration"]["Rules"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                {
                    let days = |v: &Value| v.as_i64().map(|d| d as i32);
                    lifecycle.insert(LifecycleRuleSpec {
                        id: s(&r["Id"], "Id")?,
                        enabled: r["Status"].as_str() == Some("Enabled"),
                        prefix: r["Prefix"].as_str().unwrap_or_default().to_owned(),
                        expiration_days: days(&r["ExpirationInDays"]),
                        expired_object_delete_marker: r["ExpiredObjectDeleteMarker"].as_bool(),
                        noncurrent_days: days(&r["NoncurrentVersionExpiration"]["NoncurrentDays"]),
                        abort_incomplete_days: days(
                            &r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
                        ),
                    });
                }
                Ok(BucketSpec {
                    sse_algorithm: s(
                        &rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
                        "SSEAlgorithm",
                    )?,
                    sse_key: referenced(&rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]),
                    bucket_key: b(&rule["BucketKeyEnabled"]),
                    versioning: p["VersioningConfiguration"]["Status"].as_str() == Some("Enabled"),
                    block_public_access: [
                        b(&pab["BlockPublicAcls"]),
                        b(&pab["BlockPublicPolicy"]),
                        b(&pab["IgnorePublicAcls"]),
                        b(&pab["RestrictPublicBuckets"]),
                    ],
                    lifecycle,
                    logical_id: id,
                })
            })
            .collect()
    }

    pub fn keys(&self) -> Result<Vec<KeySpec>> {
        self.resources_of("AWS::KMS::Key")
            .into_iter()
            .map(|id| {
                let p = self.properties(&id);
                Ok(KeySpec {
                    key_spec: p["KeySpec"]
                        .as_str()
                        .unwrap_or("SYMMETRIC_DEFAULT")
                        .to_owned(),
                    key_usage: p["KeyUsage"]
                        .as_str()
                        .unwrap_or("ENCRYPT_DECRYPT")
                        .to_owned(),
                    rotation: b(&p["EnableKeyRotation"]),
                    description: p["Description"]
                        .as_str()
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                    logical_id: id,
                })
            })
            .collect()
    }

    /// The bucket policy document attached to a bucket, with intrinsic functions resolved.
    pub fn bucket_policy(
        &self,
        bucket_logical_id: &str,
        resolve: &Resolver,
    ) -> Result<Option<serde_json::Value>> {
        for id in self.resources_of("AWS::S3::BucketPolicy") {
            let p = self.properties(&id);
            if referenced(&p["Bucket"]).as_deref() == Some(bucket_logical_id) {
                return resolve.json(&p["PolicyDocument"]).map(Some);
            }
        }
        Ok(None)
    }

    /// Environment variable names a function's template entry sets.
    pub fn function_environment(
        &self,
        logical_id: &str,
        resolve: &Resolver,
    ) -> Result<BTreeMap<String, String>> {
        let vars = &self.properties(logical_id)["Environment"]["Variables"];
        let mut out = BTreeMap::new();
        for (k, v) in vars
            .as_mapping()
            .ok_or_else(|| anyhow!("{logical_id} has no environment"))?
        {
            let value = match resolve.json(v)? {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(s(k, "variable name")?, value);
        }
        Ok(out)
    }

    /// Logical ids of every Lambda function (SAM and plain CloudFormation), in template
    /// order.
    pub fn functions(&self) -> Vec<String> {
        let mut out = self.resources_of("AWS::Serverless::Function");
        out.extend(self.resources_of("AWS::Lambda::Function"));
        out
    }

    /// Names of the environment variables a function is given: its own and those every
    /// function gets from `Globals.Function`.
    pub fn function_variable_names(&self, logical_id: &str) -> BTreeSet<String> {
        [
            &self.properties(logical_id)["Environment"]["Variables"],
            &self.root["Globals"]["Function"]["Environment"]["Variables"],
        ]
        .into_iter()
        .filter_map(Value::as_mapping)
        .flat_map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)))
        .collect()
    }

    /// Every parameter's default, as text.
    pub fn parameter_defaults(&self) -> Vec<(String, String)> {
        self.root["Parameters"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        let default = match &v["Default"] {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => return None,
                        };
                        Some((k.as_str()?.to_owned(), default))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The default of a template parameter.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        self.root["Parameters"][name]["Default"]
            .as_str()
            .map(str::to_owned)
    }
}

/// A route an `HttpApi` event of a function declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// Logical id of the function serving it.
    pub function: String,
    pub method: String,
    pub path: String,
    /// `Auth.Authorizer` of the event, if any (`AWS_IAM`).
    pub authorizer: Option<String>,
}

impl HttpRoute {
    /// The API Gateway route key (`POST /v1/dsar`).
    pub fn key(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }
}

/// A YAML value as JSON, intrinsic functions kept as `{"!Tag": value}` (for policy
/// documents: actions and condition keys are plain strings, values may be intrinsics).
pub fn raw_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => serde_json::to_value(n).unwrap_or_default(),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Sequence(seq) => serde_json::Value::Array(seq.iter().map(raw_json).collect()),
        Value::Mapping(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), raw_json(v)))
                .collect(),
        ),
        Value::Tagged(t) => serde_json::json!({ t.tag.to_string(): raw_json(&t.value) }),
    }
}

impl Template {
    /// Every statement of an IAM role's inline policies, as JSON (see [`raw_json`]).
    pub fn role_statements(&self, role: &str) -> Vec<serde_json::Value> {
        self.properties(role)["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|st| raw_json(&st))
            .collect()
    }

    /// Every statement of a KMS key's key policy, as JSON.
    pub fn key_policy_statements(&self, key: &str) -> Vec<serde_json::Value> {
        self.properties(key)["KeyPolicy"]["Statement"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(raw_json)
            .collect()
    }

    /// The logical id of the role a function runs with (`Role: !GetAtt X.Arn`).
    pub fn function_role(&self, function: &str) -> Option<String> {
        referenced(&self.properties(function)["Role"])
    }

    /// The binary `sam build` packages for a function (`Metadata.BuildProperties.Binary`).
    pub fn function_binary(&self, function: &str) -> Option<String> {
        self.root["Resources"][function]["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .map(str::to_owned)
    }

    /// The log group a function writes to (`LoggingConfig.LogGroup: !Ref X`).
    pub fn function_log_group(&self, function: &str) -> Option<String> {
        referenced(&self.properties(function)["LoggingConfig"]["LogGroup"])
    }

    /// Every `HttpApi` event of every function.
    pub fn http_routes(&self) -> Vec<HttpRoute> {
        let mut out = Vec::new();
        for function in self.resources_of("AWS::Serverless::Function") {
            for (_, event) in self.properties(&function)["Events"]
                .as_mapping()
                .into_iter()
                .flatten()
            {
                if event["Type"].as_str() != Some("HttpApi") {
                    continue;
                }
                let p = &event["Properties"];
                out.push(HttpRoute {
                    function: function.clone(),
                    method: p["Method"].as_str().unwrap_or_default().to_owned(),
                    path: p["Path"].as_str().unwrap_or_default().to_owned(),
                    authorizer: p["Auth"]["Authorizer"].as_str().map(str::to_owned),
                });
            }
        }
        out
    }

    /// The `RouteSettings` of the HTTP API (route key → settings), as JSON.
    pub fn route_settings(&self, api: &str) -> serde_json::Map<String, serde_json::Value> {
        match raw_json(&self.properties(api)["RouteSettings"]) {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// A template parameter's declaration, as JSON.
    pub fn parameter(&self, name: &str) -> serde_json::Value {
        raw_json(&self.root["Parameters"][name])
    }

    /// A function's environment as declared (values unresolved, see [`raw_json`]).
    pub fn declared_environment(&self, function: &str) -> serde_json::Value {
        raw_json(&self.properties(function)["Environment"]["Variables"])
    }
}

/// Resolves the intrinsic functions the data layer uses (`!Ref`, `!GetAtt`, `!Sub`,
/// `!Join`) against values the local stack knows.
pub struct Resolver {
    /// `Logical` (Ref value) and `Logical.Attr` (GetAtt value) and `AWS::Region`, ….
    pub values: BTreeMap<String, String>,
    /// Parameter lists (CommaDelimitedList) by name.
    pub lists: BTreeMap<String, Vec<String>>,
}

impl Resolver {
    pub fn json(&self, v: &Value) -> Result<serde_json::Value> {
        if let Some((tag, inner)) = tag_of(v) {
            return match tag.as_str() {
                "!Ref" => {
                    let name = s(inner, "!Ref")?;
                    if let Some(list) = self.lists.get(&name) {
                        return Ok(serde_json::json!(list));
                    }
                    self.get(&name).map(serde_json::Value::String)
                }
                "!GetAtt" => {
                    let name = match inner {
                        Value::Sequence(parts) => parts
                            .iter()
                            .filter_map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join("."),
                        other => s(other, "!GetAtt")?,
                    };
                    self.get(&name).map(serde_json::Value::String)
                }
                "!Sub" => self.sub(&s(inner, "!Sub")?).map(serde_json::Value::String),
                "!Join" => {
                    let sep = s(&inner[0], "!Join separator")?;
                    let parts = match self.json(&inner[1])? {
                        serde_json::Value::Array(a) => a,
                        // A CommaDelimitedList parameter resolved from its default text.
                        serde_json::Value::String(s) => vec![serde_json::Value::String(s)],
                        other => bail!("!Join over {other}"),
                    };
                    let parts: Vec<String> = parts
                        .iter()
                        .map(|p| p.as_str().unwrap_or_default().to_owned())
                        .collect();
                    Ok(serde_json::Value::String(parts.join(&sep)))
                }
                other => bail!("intrinsic {other} is not supported by the local stack"),
            };
        }
        Ok(match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::to_value(n)?,
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Sequence(seq) => {
                serde_json::Value::Array(seq.iter().map(|x| self.json(x)).collect::<Result<_>>()?)
            }
            Value::Mapping(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    out.insert(s(k, "key")?, self.json(v)?);
                }
                serde_json::Value::Object(out)
            }
            Value::Tagged(_) => unreachable!("handled above"),
        })
    }

    fn get(&self, name: &str) -> Result<String> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("no local value for {name}"))
    }

    fn sub(&self, text: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| anyhow!("unterminated ${{ in !Sub"))?
                + start;
            out.push_str(&self.get(&rest[start + 2..end])?);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl Template {
    /// The whole template as JSON, intrinsic functions kept as `{"!Tag": value}` (see
    /// [`raw_json`]): for tests that assert facts of sections the typed readers above do
    /// not cover (`Rules`, `Globals`, events, log groups).
    pub fn json(&self) -> serde_json::Value {
        raw_json(&self.root)
    }
}
