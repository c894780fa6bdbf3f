//! Prints the Art. 30(1) GDPR record of processing activities, generated from the
//! processing registry, as Markdown on stdout: `cargo run -p polly-shared --bin ropa`.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(shared::dsar::disclosure::ropa().as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
