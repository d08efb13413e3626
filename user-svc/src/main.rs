//! user-svc binary: load config, set up tracing, run until SIGINT/SIGTERM.

use std::process::ExitCode;

use user_svc::config::{Config, ENV_PREFIX};

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
    let path = service_kit::config_path_from_args("CAUDAL_USER_CONFIG");
    let config = match service_kit::load_config::<Config>(path.as_deref(), ENV_PREFIX) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("user-svc: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = config.validate() {
        eprintln!("user-svc: invalid configuration: {e}");
        return ExitCode::FAILURE;
    }
    match user_svc::run(config, service_kit::shutdown_token()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("user-svc: {e:#}");
            ExitCode::FAILURE
        }
    }
}
