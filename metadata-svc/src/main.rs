//! metadata-svc binary: load the config, set up tracing, serve until SIGINT/SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::service_main(
        "metadata-svc",
        "CAUDAL_METADATA_CONFIG",
        "CAUDAL_METADATA_",
        metadata_svc::run,
    )
    .await
}
