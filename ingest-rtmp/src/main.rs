//! ingest-rtmp binary: load the config, set up tracing, serve until SIGINT/SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::service_main(
        "ingest-rtmp",
        "CAUDAL_INGEST_CONFIG",
        "CAUDAL_INGEST_",
        ingest_rtmp::run,
    )
    .await
}
