//! user-svc binary: load config, set up tracing, run until SIGINT/SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::service_main(
        "user-svc",
        "CAUDAL_USER_CONFIG",
        user_svc::config::ENV_PREFIX,
        user_svc::run,
    )
    .await
}
