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
    let line = record.to_string();
    capture::offer(&line);
    println!("{line}");
}

/// Tests read the metric records a flow emits (`println!` goes to the test harness's own
/// capture, out of a test's reach): while a [`capture::MetricCapture`] is active on a
/// thread, every record emitted on that thread is also kept there. Production never
/// starts one; then this costs a thread-local read.
pub mod capture {
    use std::cell::RefCell;
    use std::sync::{Arc, Mutex};

    thread_local! {
        static ACTIVE: RefCell<Option<Arc<Mutex<Vec<String>>>>> = const { RefCell::new(None) };
    }

    pub(super) fn offer(line: &str) {
        ACTIVE.with(|a| {
            if let Some(buf) = a.borrow().as_ref() {
                buf.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.to_owned());
            }
        });
    }

    /// The metric records emitted on this thread since [`MetricCapture::start`], until
    /// dropped (use a current-thread runtime: `#[tokio::test]`).
    pub struct MetricCapture(Arc<Mutex<Vec<String>>>);

    impl MetricCapture {
        pub fn start() -> Self {
            let buf = Arc::new(Mutex::new(Vec::new()));
            ACTIVE.with(|a| *a.borrow_mut() = Some(buf.clone()));
            Self(buf)
        }

        /// Every record captured, as emitted (one EMF JSON object per line).
        pub fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }

        /// The values recorded for the metric `name`, in order.
        pub fn values(&self, name: &str) -> Vec<f64> {
            self.lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| {
                    v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"].as_str() == Some(name)
                })
                .filter_map(|v| v[name].as_f64())
                .collect()
        }
    }

    impl Drop for MetricCapture {
        fn drop(&mut self) {
            ACTIVE.with(|a| *a.borrow_mut() = None);
        }
    }
}

/// Emits one EMF record of `name` with dimensions (`dims`: name and value). Dimension
/// values must be codes (a request type, a status), never personal data: each distinct
/// value is a metric of its own in CloudWatch.
pub fn metric_with(name: &str, value: f64, dims: &[(&str, &str)]) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let names: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
    let mut record = serde_json::json!({
        "_aws": {
            "Timestamp": ms,
            "CloudWatchMetrics": [{"Namespace": "Polly", "Dimensions": [names], "Metrics": [{"Name": name, "Unit": "Count"}]}]
        },
        name: value
    });
    for (k, v) in dims {
        record[*k] = serde_json::Value::String((*v).to_owned());
    }
    let line = record.to_string();
    capture::offer(&line);
    println!("{line}");
}
