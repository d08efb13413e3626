//! bff binary: load the config, set up tracing, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
    let path = service_kit::config_path_from_args("CAUDAL_BFF_CONFIG");
    let config: bff::Config = match service_kit::load_config(path.as_deref(), "CAUDAL_BFF_") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bff: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = config.validate() {
        eprintln!("bff: invalid configuration: {e}");
        return ExitCode::FAILURE;
    }
    match bff::run(config, service_kit::shutdown_token()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bff: {e:#}");
            ExitCode::FAILURE
        }
    }
}
