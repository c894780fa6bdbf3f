//! Replays the workers' dead letters (`make redrive`): reads each queue named, replays
//! every message (a request back in progress, any other item touched so the stream
//! delivers it again) and deletes a message only once its replay succeeded. Prints a
//! JSON report per queue; exits non-zero when anything was kept.
//!
//! `redrive --table <table> --key-table <key table> --queue-url <url> [--queue-url …]`
//! (AWS credentials and region from the environment, like the AWS CLI).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    };
    let (tables, key_tables, queues) =
        (value("--table"), value("--key-table"), value("--queue-url"));
    let (Some(table), Some(key_table), false) =
        (tables.first(), key_tables.first(), queues.is_empty())
    else {
        eprintln!("usage: redrive --table <table> --key-table <key table> --queue-url <url> [--queue-url <url> …]");
        return ExitCode::from(2);
    };
    let aws = shared::aws::load().await;
    let redrive = shared::adapters::deadletter::Redrive::from_sdk(
        &aws,
        table.clone(),
        key_table.clone(),
        "operator-redrive".to_owned(),
    );
    let mut clean = true;
    for queue in &queues {
        let report = redrive.run(queue).await;
        clean &= report.failed == 0 && report.expired == 0;
        println!(
            "{}",
            serde_json::json!({ "queue": queue, "report": report })
        );
    }
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
