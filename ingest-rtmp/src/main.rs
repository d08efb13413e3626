use std::process::ExitCode;

use ingest_rtmp::Config;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
    let path = service_kit::config_path_from_args("CAUDAL_INGEST_CONFIG");
    let cfg: Config = match service_kit::load_config(path.as_deref(), "CAUDAL_INGEST_") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ingest-rtmp: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = service_kit::shutdown_token();
    match ingest_rtmp::run(cfg, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest-rtmp: {e:#}");
            ExitCode::FAILURE
        }
    }
}
