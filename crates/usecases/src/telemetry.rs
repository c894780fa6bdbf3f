//! Metrics the use cases emit: CloudWatch embedded-metric-format records on stdout, which
//! the Lambda log stream turns into metrics. Names only, never personal data.

/// Emits one CloudWatch embedded-metric-format record (namespace `Polly`, no
/// dimensions that could carry personal data).
pub fn metric(name: &str, value: f64) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let record = serde_json::json!({
        "_aws": {
            "Timestamp": ms,
            "CloudWatchMetrics": [{"Namespace": "Polly", "Dimensions": [[]], "Metrics": [{"Name": name, "Unit": "Count"}]}]
        },
        name: value
    });
    println!("{record}");
}
