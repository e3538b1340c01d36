use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = ghthub::cli::Cli::parse();
    let default_filter = match cli.command {
        ghthub::cli::Command::Serve(_) => "info,sqlx=warn,h2=warn,tower=warn",
        _ => "warn",
    };
    let _telemetry = ghthub::telemetry::init(cli.log_format, default_filter);
    match ghthub::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // tonic statuses print their code and message; others their chain.
            if let Some(s) = e.downcast_ref::<tonic::Status>() {
                eprintln!("error: {:?}: {}", s.code(), s.message());
            } else {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
