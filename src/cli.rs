//! Command line: `faultline [--config PATH] [serve|migrate|check-config]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  faultline                                  run the engine (SQLite ./faultline.db, port 8000)
  faultline --config /etc/faultline.toml serve
  FAULTLINE_DATABASE_URL=mysql://faultline:secret@127.0.0.1:3306/faultline faultline migrate
  faultline check-config --config faultline.toml
  curl -X POST 'http://127.0.0.1:8000/api/log/auto-upload?host=worker1&service=datanode' \\
       --data-binary '2024-05-12 10:15:32,118 WARN org.apache.hadoop.hdfs.server.datanode.DataNode: Problem connecting to server: master/192.168.10.10:9000'

Configuration: --config PATH, else ./faultline.toml if present, else built-in defaults;
FAULTLINE_DATABASE_URL, FAULTLINE_LISTEN and FAULTLINE_<SECTION>__<KEY> override it.";

#[derive(Debug, Parser)]
#[command(
    name = "faultline",
    version,
    about = "Fault diagnosis engine for Hadoop clusters",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Path of the TOML configuration file.
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine: HTTP API, ingest and the pipeline (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration, print the effective settings (secrets redacted) and exit.
    CheckConfig,
}
