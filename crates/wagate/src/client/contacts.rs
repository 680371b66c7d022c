//! `wagate contacts …`: contacts imported from a CSV file.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Client, ClientArgs, jobs};

#[derive(Subcommand)]
pub enum ContactsCommand {
    /// Create or update contacts from a CSV file, streamed to the server and imported in the
    /// background; prints what was imported and the first rows refused, with their lines.
    Import {
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
    },
}

pub async fn run(command: ContactsCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    match command {
        ContactsCommand::Import { file } => jobs::import(&client, "/v1/contacts/import", &file).await,
    }
}
