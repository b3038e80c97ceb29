use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;

use nearbytix::app::{self, App};
use nearbytix::cli::{Cli, Command};
use nearbytix::config::Settings;
use nearbytix::{api, checkin, healthcheck, telemetry};

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
    if let Some(Command::VerifyCode { code, keys }) = &cli.command {
        // Offline, like a scanner: no settings, no database.
        println!("{}", checkin::verify_code(code, keys)?);
        return Ok(());
    }
    let settings = Settings::try_from(cli.options)?;
    let command = cli.command.unwrap_or(Command::Serve { no_sweeper: false });
    match command {
        Command::Healthcheck => return healthcheck::check(settings.host, settings.port).await,
        Command::Openapi => {
            let document = api::openapi(&settings.api_prefix).to_pretty_json()?;
            println!("{document}");
            return Ok(());
        }
        _ => {}
    }
    telemetry::init_logging(settings.log_format);
    match command {
        Command::Serve { no_sweeper } => serve(settings, !no_sweeper).await,
        Command::Migrate => app::migrate(&settings).await,
        Command::Worker => app::work(&settings, app::shutdown_signal()).await,
        Command::Healthcheck | Command::Openapi | Command::VerifyCode { .. } => {
            unreachable!("handled above")
        }
    }
}

async fn serve(settings: Settings, run_sweeper: bool) -> anyhow::Result<()> {
    let address = (settings.host, settings.port);
    let app = App::connect(settings).await?;
    let listener = TcpListener::bind(address).await.map_err(|error| {
        anyhow::anyhow!("cannot listen on {}:{}: {error}", address.0, address.1)
    })?;
    let local = listener.local_addr()?;
    tracing::info!(
        backend = app.store.backend().as_str(),
        sweeper = run_sweeper,
        "NearbyTix listening on http://{local} (API docs at http://{local}/docs)"
    );
    app.serve(listener, run_sweeper, app::shutdown_signal())
        .await?;
    tracing::info!("NearbyTix stopped");
    Ok(())
}
