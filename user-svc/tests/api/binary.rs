//! The binary: a configuration or database problem exits non-zero with one clear line.

use std::process::Command;

fn user_svc() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_user-svc"));
    cmd.env_clear().env("RUST_LOG", "off");
    cmd
}

fn stderr_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn missing_settings_exit_non_zero() {
    let out = user_svc().output().unwrap();
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("CAUDAL_USER_DATABASE_URL"));

    let out = user_svc()
        .env("CAUDAL_USER_DATABASE_URL", "mysql://u:p@127.0.0.1:1/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("CAUDAL_USER_JWT_SECRET"));
}

#[test]
fn a_config_error_is_reported_before_any_port_is_bound() {
    // the metrics port is taken: the answer is still what is wrong with the config
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = user_svc()
        .env("CAUDAL_USER_METRICS_LISTEN", &addr)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line = stderr_line(&out);
    assert!(line.contains("CAUDAL_USER_DATABASE_URL"), "{line}");
}

#[test]
fn unreachable_database_exits_non_zero_without_the_password() {
    let out = user_svc()
        .env(
            "CAUDAL_USER_DATABASE_URL",
            "mysql://caudal:hunter2@127.0.0.1:1/caudal",
        )
        .env("CAUDAL_USER_JWT_SECRET", "x".repeat(40))
        .env("CAUDAL_USER_LISTEN", "127.0.0.1:0")
        .env("CAUDAL_USER_METRICS_LISTEN", "127.0.0.1:0")
        .env("CAUDAL_USER_PAYMENT__LOCAL_ENABLED", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line = stderr_line(&out);
    assert!(
        line.contains("cannot connect to the database mysql://caudal:***@127.0.0.1:1/caudal"),
        "{line}"
    );
    assert!(!line.contains("hunter2"));
}

#[test]
fn secrets_can_come_from_files() {
    let dir = std::env::temp_dir().join(format!("user-svc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("jwt");
    std::fs::write(&secret, "short\n").unwrap();
    let out = user_svc()
        .env("CAUDAL_USER_DATABASE_URL", "mysql://u:p@127.0.0.1:1/x")
        .env("CAUDAL_USER_JWT_SECRET_FILE", &secret)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    // the file was read: the complaint is its length, not its absence
    assert!(stderr_line(&out).contains("at least 32 bytes"));
}

#[test]
fn the_local_payment_provider_is_refused_unless_enabled_for_development() {
    let out = user_svc()
        .env("CAUDAL_USER_DATABASE_URL", "mysql://u:p@127.0.0.1:1/x")
        .env("CAUDAL_USER_JWT_SECRET", "x".repeat(40))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line = stderr_line(&out);
    assert!(
        line.contains("CAUDAL_USER_PAYMENT__LOCAL_ENABLED=true"),
        "{line}"
    );
}
