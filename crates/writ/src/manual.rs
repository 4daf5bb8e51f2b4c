//! `writ completions` and `writ man`: shell completion scripts and man pages, generated
//! from the command line's own definition so they never drift from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

/// Options of `writ completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Options of `writ man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `writ.1` and a page per subcommand (`writ-serve.1`, …) into this directory
    /// instead of printing `writ.1` to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script of `shell` for the command `cli` describes.
pub fn completions<C: CommandFactory>(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = C::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "writ", &mut out);
    out.flush()
        .context("cannot write the completion script to stdout")
}

/// Prints `writ.1`, or writes every page into `args.dir`.
pub fn man<C: CommandFactory>(args: &ManArgs) -> anyhow::Result<()> {
    let command = C::command();
    match &args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("cannot write the man page to stdout")?;
            out.flush().context("cannot write the man page to stdout")
        }
        Some(dir) => write_pages(&command, dir),
    }
}

/// Writes the page of `command` and of each of its subcommands, recursively, into `dir`.
fn write_pages(command: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(command.clone(), dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    eprintln!("man pages written to {}", dir.display());
    Ok(())
}
