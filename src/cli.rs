//! Command line: `faultline [--config PATH] [serve|migrate|check-config|diagnose|eval|rules]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  faultline                                  run the engine (SQLite ./faultline.db, port 8000)
  faultline --config /etc/faultline.toml serve
  FAULTLINE_DATABASE_URL=mysql://faultline:secret@127.0.0.1:3306/faultline faultline migrate
  faultline check-config --config faultline.toml
  faultline diagnose /var/log/hadoop/hadoop-hdfs-namenode-nn1.log
  start-dfs.sh 2>&1 | faultline diagnose --format json -
  faultline eval --corpus dev-cases.jsonl
  faultline rules check --rules ./rules ; faultline rules test --rules ./rules --cases tests/rules
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
    /// Run the parser and rules over log files (or - for stdin) and print the findings,
    /// primary (the most likely root cause) first. Each file is one stream.
    Diagnose {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Rule directory (default: `rules.dir` of the configuration, else the built-in pack).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Only findings of known fault classes (no `unknown`).
        #[arg(long)]
        no_unknown: bool,
        /// A saved `GET /api/cluster/status` answer (or one snapshot): rules' snapshot
        /// causes use it, as the engine uses the scheduler's latest snapshot.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Score the rules on a labelled corpus (JSONL with id, expected, lines).
    Eval {
        #[arg(long, value_name = "FILE")]
        corpus: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Exit with status 1 when macro-F1 is below this.
        #[arg(long, value_name = "F1")]
        min_macro_f1: Option<f64>,
    },
    /// Validate, test or list the rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Make API tokens for `[auth] tokens` (offline; `POST /api/tokens` makes stored ones).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print the SHA-256 (hex) of the token read from standard input (one line).
    Hash,
    /// Generate a random token; print it and the `[[auth.tokens]]` entry (hash only).
    New {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["ingest", "read", "operator", "admin"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate every rule file; print each problem with its file, field and reason.
    Check {
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Run every rule's case file (tests/rules/<area>/<id>.toml).
    Test {
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        #[arg(long, value_name = "DIR", default_value = "tests/rules")]
        cases: PathBuf,
    },
    /// List the rules (id, kind, severity, priority, file).
    List {
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Print every literal of every signal, one per line (`rg -f` input for benchmarks).
    Literals {
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}
