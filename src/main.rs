//! The `faultline` binary: parse the command line, load settings, dispatch.

use anyhow::Context as _;
use clap::Parser;

use faultline::cli::{Cli, Command, Format};
use faultline::commands;
use faultline::config::Settings;
use faultline::startup::Application;
use faultline::storage::Store;
use faultline::telemetry;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let loaded = match Settings::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("faultline: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&loaded.settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            println!(
                "# configuration OK (file: {}; environment overrides: {})",
                loaded
                    .file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none, built-in defaults".into()),
                if loaded.env_overrides.is_empty() {
                    "none".to_string()
                } else {
                    loaded.env_overrides.join(", ")
                }
            );
            print!("{}", loaded.settings.to_redacted_toml());
            Ok(())
        }
        Command::Diagnose {
            format,
            rules,
            no_unknown,
            snapshot,
            files,
        } => {
            let source = commands::rule_source(rules.as_deref(), &loaded.settings);
            commands::diagnose(
                &source,
                &files,
                format,
                !no_unknown,
                snapshot.as_deref(),
                &mut std::io::stdout(),
            )
        }
        Command::Eval {
            corpus,
            format,
            rules,
            min_macro_f1,
        } => {
            let source = commands::rule_source(rules.as_deref(), &loaded.settings);
            match commands::eval(&source, &corpus) {
                Ok(report) => {
                    match format {
                        Format::Text => print!("{}", report.to_text()),
                        Format::Json => println!(
                            "{}",
                            serde_json::to_string_pretty(&report).unwrap_or_default()
                        ),
                    }
                    if min_macro_f1.is_some_and(|min| report.macro_f1 < min) {
                        eprintln!(
                            "faultline: macro-F1 {:.3} is below --min-macro-f1",
                            report.macro_f1
                        );
                        return std::process::ExitCode::FAILURE;
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Command::Rules { command } => {
            match commands::rules(&command, &loaded.settings, &mut std::io::stdout()) {
                Ok(true) => Ok(()),
                Ok(false) => return std::process::ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        Command::Token { command } => commands::token(
            &command,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout(),
        ),
        Command::Migrate => actix_web::rt::System::new().block_on(async move {
            let store = Store::connect(&loaded.settings.database).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }),
        Command::Serve => actix_web::rt::System::new().block_on(async move {
            let app = Application::build(loaded.settings)
                .await
                .context("starting faultline")?;
            app.run_until_stopped().await.context("serving")
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("faultline: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
