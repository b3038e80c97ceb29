use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;

use nearbytix::app::{self, AppState};
use nearbytix::config::{Cli, Command, Settings};
use nearbytix::store::{self, StoreOptions};
use nearbytix::{expiry, healthcheck, telemetry};

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is worth knowing about.
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            eprintln!("warning: could not read .env: {error}");
        }
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    let command = cli.command.unwrap_or(Command::Serve { no_sweeper: false });
    if let Command::Healthcheck = command {
        return healthcheck::check(settings.host, settings.port).await;
    }
    telemetry::init_logging(settings.log_format);
    telemetry::init_metrics();
    match command {
        Command::Serve { no_sweeper } => serve(settings, !no_sweeper).await,
        Command::Migrate => migrate(settings).await,
        Command::Worker => worker(settings).await,
        Command::Healthcheck => unreachable!("handled above"),
    }
}

async fn serve(settings: Settings, run_sweeper: bool) -> anyhow::Result<()> {
    let address = (settings.host, settings.port);
    let state = AppState::connect(settings).await?;
    let listener = TcpListener::bind(address).await.map_err(|error| {
        anyhow::anyhow!("cannot listen on {}:{}: {error}", address.0, address.1)
    })?;
    let local = listener.local_addr()?;
    tracing::info!(
        backend = state.store.backend().as_str(),
        sweeper = run_sweeper,
        "NearbyTix listening on http://{local} (API docs at http://{local}/docs)"
    );
    app::serve(state, listener, run_sweeper, app::shutdown_signal()).await?;
    tracing::info!("NearbyTix stopped");
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    settings.check()?;
    let store = store::connect(&StoreOptions {
        url: settings.database_url.clone(),
        max_connections: 1,
        acquire_timeout: settings.acquire_timeout(),
    })
    .await?;
    store.close().await;
    tracing::info!(backend = store.backend().as_str(), "migrations applied");
    Ok(())
}

async fn worker(settings: Settings) -> anyhow::Result<()> {
    settings.check()?;
    let store = store::connect(&StoreOptions {
        url: settings.database_url.clone(),
        max_connections: 2,
        acquire_timeout: settings.acquire_timeout(),
    })
    .await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(expiry::run(
        store.clone(),
        settings.sweep_interval(),
        settings.sweep_batch_size,
        stop_rx,
    ));
    app::shutdown_signal().await;
    let _ = stop_tx.send(true);
    sweeper.await?;
    store.close().await;
    Ok(())
}
