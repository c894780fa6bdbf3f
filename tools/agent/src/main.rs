//! `make agent`: see the library docs (`agent`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match agent::run(&args, &|name| std::env::var(name).ok()).await {
        Ok(report) => {
            for line in report.lines {
                println!("{line}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("polly-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
