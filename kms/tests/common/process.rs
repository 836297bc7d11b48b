//! kagid and kagictl as processes: a dev-mode kagid on a free port (killed when dropped, its
//! log printed if the test failed), and kagictl commands pointed at it.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

/// A dev-mode kagid process on a free port, with its audit trail also in `audit.jsonl`.
pub struct DevKagid {
    child: Child,
    /// `http://127.0.0.1:PORT`, as kagid printed it.
    pub endpoint: String,
    /// The dev admin's token, as kagid printed it.
    pub admin_token: String,
    /// Data directory, kagid's log, the audit file and the test's files; removed last.
    pub dir: TempDir,
}

impl DevKagid {
    /// Starts kagid with `extra` flags and reads its two `export` lines.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = fs::File::create(dir.path().join("kagid.log")).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kagid"));
        without_kagi_env(&mut command);
        let mut child = command
            .args(["--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--audit-file")
            .arg(dir.path().join("audit.jsonl"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("kagid starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (mut endpoint, mut admin_token) = (String::new(), String::new());
        while endpoint.is_empty() || admin_token.is_empty() {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).expect("kagid's stdout");
            assert!(
                read > 0,
                "kagid exited before printing its endpoint and token"
            );
            let line = line.trim();
            if let Some(value) = line.strip_prefix("export KAGI_ENDPOINT=") {
                endpoint = value.to_owned();
            } else if let Some(value) = line.strip_prefix("export KAGI_TOKEN=") {
                admin_token = value.to_owned();
            }
        }
        // Drain the rest, so that kagid never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self {
            child,
            endpoint,
            admin_token,
            dir,
        }
    }

    /// A path in the test's directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// kagictl as `token` with `args`, not started, run in the test's directory.
    pub fn command(&self, token: &str, args: &[&str]) -> Command {
        kagictl(&self.endpoint, token, args, self.dir.path())
    }
}

impl Drop for DevKagid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let mut log = String::new();
            let _ = fs::File::open(self.dir.path().join("kagid.log"))
                .and_then(|mut f| f.read_to_string(&mut log));
            eprintln!("--- kagid log ---\n{log}");
        }
    }
}

/// kagictl against `endpoint` as `token` with `args`, run in `dir`, not started; stdin empty,
/// stdout and stderr piped.
pub fn kagictl(endpoint: &str, token: &str, args: &[&str], dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kagictl"));
    without_kagi_env(&mut command);
    command
        .env("KAGI_ENDPOINT", endpoint)
        .env("KAGI_TOKEN", token)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Keeps the developer's own KAGI_* settings (an endpoint, a token, a config file) out of
/// the processes under test.
pub fn without_kagi_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KAGI_") {
            command.env_remove(name);
        }
    }
}
