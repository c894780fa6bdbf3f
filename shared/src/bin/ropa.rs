//! Prints the Art. 30(1) GDPR record of processing activities, generated from the
//! processing registry, as Markdown on stdout: `cargo run -p polly-shared --bin ropa`.
//! With `CRM_WEBHOOK_URL` set (non-empty), the CRM is named as a recipient (issue 17).

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let crm = std::env::var("CRM_WEBHOOK_URL").is_ok_and(|u| !u.trim().is_empty());
    let mut out = std::io::stdout().lock();
    match out
        .write_all(shared::dsar::disclosure::ropa_with(crm).as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
