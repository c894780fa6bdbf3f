//! The emulators tests run against.
//!
//! Most tests share the one emulator `AWS_ENDPOINT_URL` names ([`crate::endpoint`];
//! `scripts/with-moto.sh` starts it); each provisions its own stack in it. A few groups of
//! tests must not share it, because moto's `/moto-api/data.json` (where tests read the
//! mail SES sent) walks every object the emulator ever held and answers 404 once an
//! aborted multipart upload is left in it: tests that read mail get an emulator of their
//! own, started here, so that neither the rest of the suite nor their own bulk slows or
//! breaks each other's mail reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The endpoint of this process's private emulator called `name`, started on first use
/// (on a free port on loopback). It lives as long as this process: a shell watchdog stops
/// it when the process ends, however it ends. Tests in one process that ask for the same
/// name share the emulator.
pub fn private(name: &'static str) -> String {
    static STARTED: Mutex<Option<HashMap<&'static str, String>>> = Mutex::new(None);
    let mut started = STARTED.lock().unwrap_or_else(|p| p.into_inner());
    started
        .get_or_insert_with(HashMap::new)
        .entry(name)
        .or_insert_with(start)
        .clone()
}

fn start() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let moto = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/moto_server");
    let script = format!(
        "{moto} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
         kill $m; sleep 5; kill -9 $m 2>/dev/null",
        parent = std::process::id()
    );
    // The watchdog outlives this process by design; it stops the server itself.
    #[allow(clippy::zombie_processes)]
    let _watchdog = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .spawn()
        .expect("start a private emulator");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("http://127.0.0.1:{port}")
}
