//! metadata-svc binary: load the config, set up tracing, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
    let path = service_kit::config_path_from_args("CAUDAL_METADATA_CONFIG");
    let config: metadata_svc::Config =
        match service_kit::load_config(path.as_deref(), "CAUDAL_METADATA_") {
            Ok(c) => c,
            Err(e) => {
                eprintln!("metadata-svc: {e:#}");
                return ExitCode::FAILURE;
            }
        };
    match metadata_svc::run(config, service_kit::shutdown_token()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("metadata-svc: {e:#}");
            ExitCode::FAILURE
        }
    }
}
