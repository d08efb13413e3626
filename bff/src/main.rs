//! bff binary: load the config, set up tracing, serve until SIGINT/SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::service_main("bff", "CAUDAL_BFF_CONFIG", "CAUDAL_BFF_", bff::run).await
}
