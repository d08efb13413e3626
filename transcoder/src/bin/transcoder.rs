//! `transcoder worker [--config FILE]`: a transcode worker pulling jobs from the queue.
//! Configuration: `CAUDAL_WORKER_*` variables (see `transcoder::worker::WorkerConfig`).

use std::process::ExitCode;

use transcoder::worker::WorkerConfig;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
    if std::env::args().nth(1).as_deref() != Some("worker") {
        eprintln!("usage: transcoder worker [--config FILE]");
        return ExitCode::from(2);
    }
    let path = service_kit::config_path_from_args("CAUDAL_WORKER_CONFIG");
    let cfg: WorkerConfig = match service_kit::load_config(path.as_deref(), "CAUDAL_WORKER_") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("transcoder worker: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = service_kit::shutdown_token();
    let metrics = match service_kit::serve_metrics(cfg.metrics_listen, shutdown.clone()).await {
        Ok((addr, task)) => {
            tracing::info!(%addr, "metrics listening");
            task
        }
        Err(e) => {
            eprintln!("transcoder worker: metrics: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = transcoder::worker::run(cfg, shutdown.clone()).await;
    shutdown.cancel();
    let _ = metrics.await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("transcoder worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
