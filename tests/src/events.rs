//! API Gateway (HTTP API, payload 2.0) events, built the way AWS delivers them, turned into
//! `lambda_http` requests exactly as the runtime does.

use base64::Engine;
use lambda_http::Request;

/// A request as API Gateway would hand it to the function.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
    pub source_ip: &'a str,
    /// The IAM principal API Gateway authenticated (routes with `AWS_IAM` auth).
    pub iam_user_arn: Option<&'a str>,
    pub query: &'a str,
}

impl<'a> ApiRequest<'a> {
    /// A JSON POST from a browser on 203.0.113.7.
    pub fn post_json(path: &'a str, body: &'a [u8]) -> Self {
        Self {
            method: "POST",
            path,
            headers: vec![
                ("content-type", "application/json"),
                (
                    "user-agent",
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
                ),
            ],
            body,
            source_ip: "203.0.113.7",
            iam_user_arn: None,
            query: "",
        }
    }

    /// A GET without body.
    pub fn get(path: &'a str) -> Self {
        Self {
            method: "GET",
            body: b"",
            ..Self::post_json(path, b"")
        }
    }

    /// Signed by an IAM principal (API Gateway's `AWS_IAM` authoriser passed it).
    pub fn as_staff(mut self, user_arn: &'a str) -> Self {
        self.iam_user_arn = Some(user_arn);
        self
    }

    /// The caller's address as API Gateway saw it (`requestContext.http.sourceIp`).
    pub fn source_ip(mut self, ip: &'a str) -> Self {
        self.source_ip = ip;
        self
    }

    pub fn query(mut self, query: &'a str) -> Self {
        self.query = query;
        self
    }

    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name, value));
        self
    }

    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// The API Gateway v2 event JSON.
    pub fn event(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    serde_json::Value::String((*v).to_owned()),
                )
            })
            .collect();
        let user_agent = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
            .map(|(_, v)| *v)
            .unwrap_or_default();
        // API Gateway passes text bodies as they are and binary ones base64-encoded; use
        // base64 always so the function's decoding path is the one exercised.
        let body = base64::engine::general_purpose::STANDARD.encode(self.body);
        let query: serde_json::Map<String, serde_json::Value> = self
            .query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": format!("{} {}", self.method, self.path),
            "rawPath": self.path,
            "rawQueryString": self.query,
            "queryStringParameters": query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": "local.execute-api.eu-central-1.amazonaws.com",
                "domainPrefix": "local",
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": self.source_ip,
                    "userAgent": user_agent
                },
                "requestId": uuid::Uuid::now_v7().to_string(),
                "routeKey": format!("{} {}", self.method, self.path),
                "stage": "$default",
                "time": "28/Nov/2026:18:00:00 +0000",
                "timeEpoch": 1_795_888_800_000_i64
            },
            "body": body,
            "isBase64Encoded": true
        });
        if let Some(arn) = self.iam_user_arn {
            event["requestContext"]["authorizer"] = serde_json::json!({"iam": {
                "accessKey": "ASIAEXAMPLE",
                "accountId": "123456789012",
                "callerId": "AROAEXAMPLE:staff",
                "userArn": arn,
                "userId": "AROAEXAMPLE:staff"
            }});
        }
        event
    }

    pub fn build(&self) -> Request {
        lambda_http::request::from_str(&self.event().to_string())
            .expect("a well-formed API Gateway v2 event")
    }
}

/// A DynamoDB stream event with one record, as Lambda delivers it to a stream consumer.
pub fn stream_event(
    event_name: &str,
    new_image: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    old_image: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    sequence: u64,
) -> aws_lambda_events::event::dynamodb::Event {
    let keys: std::collections::HashMap<_, _> = new_image
        .iter()
        .chain(old_image.iter())
        .filter(|(k, _)| k.as_str() == "pk" || k.as_str() == "sk")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let json = |m: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
        let item: serde_dynamo::Item = m.into();
        serde_json::to_value(item).unwrap_or_default()
    };
    let mut change = serde_json::json!({
        "ApproximateCreationDateTime": 1_795_888_800,
        "Keys": json(keys),
        "SequenceNumber": sequence.to_string(),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
    });
    if !new_image.is_empty() {
        change["NewImage"] = json(new_image);
    }
    if !old_image.is_empty() {
        change["OldImage"] = json(old_image);
    }
    let event = serde_json::json!({"Records": [{
        "eventID": format!("e{sequence}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-central-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:eu-central-1:123456789012:table/t/stream/2026-11-28T00:00:00.000"
    }]});
    serde_json::from_value(event).unwrap_or_default()
}
