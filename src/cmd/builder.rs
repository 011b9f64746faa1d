//! `hoist builder ...`: the build cache, with `docker buildx`'s shapes: `du [--verbose]` and
//! `prune [--all] [--keep-storage SIZE] [--filter until=DURATION] [-f] [--verbose]`.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use hoist_builder::prune::{PruneOptions, parse_filters};
use hoist_builder::usage::{self, UsageRecord};
use hoist_image::display::{human_duration, human_size4};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCommand),
}

#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache (step records, the layers only they kept, RUN cache mounts)
    Prune(PruneArgs),
    /// Disk usage of the build cache
    Du(DuArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Include internal records (hoist prunes every record either way)
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Amount of disk space to keep for cache (e.g. 512MB): least recently used goes first
    #[arg(long, alias = "reserved-space")]
    keep_storage: Option<String>,
    /// Maximum amount of disk space allowed to keep for cache
    #[arg(long)]
    max_used_space: Option<String>,
    /// Provide filter values (until=DURATION, id=PREFIX, type=regular|exec.cachemount|internal)
    #[arg(long)]
    filter: Vec<String>,
    /// Provide a more verbose output
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, Args)]
pub struct DuArgs {
    /// Provide a more verbose output
    #[arg(long)]
    verbose: bool,
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let root = global
            .root
            .clone()
            .unwrap_or_else(hoist_image::default_root);
        let store = hoist_image::Store::open(&root)?;
        let Commands::Builder(cmd) = self;
        match cmd {
            BuilderCommand::Du(a) => {
                let recs = usage::records(&store)?;
                if a.verbose {
                    print!("{}", verbose(&recs, true));
                } else {
                    print!("{}", table(&recs));
                }
                print!("{}", summary(&recs));
            }
            BuilderCommand::Prune(a) => prune(&store, a)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn prune(store: &hoist_image::Store, a: PruneArgs) -> anyhow::Result<()> {
    let size = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                hoist_image::display::ram_in_bytes(s)
                    .map_err(|e| anyhow::anyhow!("invalid argument {s:?} for \"--{flag}\": {e}"))
            })
            .transpose()
    };
    let keep = size("keep-storage", &a.keep_storage)?;
    let max_used = size("max-used-space", &a.max_used_space)?;
    let mut opts = PruneOptions {
        // Pruning least recently used first, both bounds mean "down to this size".
        keep_storage: match (keep, max_used) {
            (Some(k), Some(m)) => Some(k.min(m)),
            (k, m) => k.or(m),
        },
        ..PruneOptions::default()
    };
    parse_filters(&a.filter, &mut opts)?;
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all build cache. Are you sure you want to continue?"
        } else {
            "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
        };
        eprint!("{warning} [y/N] ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !line.trim().eq_ignore_ascii_case("y") {
            return Ok(());
        }
    }
    let r = hoist_builder::prune::prune(store, &opts)?;
    if a.verbose {
        print!("{}", verbose(&r.removed, false));
    } else if !r.removed.is_empty() {
        print!("{}", prune_table(&r.removed));
    }
    print!("{}", kv_tabs(&[("Total", human_size4(r.bytes))]));
    Ok(())
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    format!("{} ago", human_duration(secs as i64))
}

/// buildx's table: ID (`*` when mutable), RECLAIMABLE, SIZE (`*` when shared), LAST ACCESSED.
fn table(recs: &[UsageRecord]) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "RECLAIMABLE".into(),
        "SIZE".into(),
        "LAST ACCESSED".into(),
    ]];
    for r in recs {
        rows.push(vec![
            format!("{}{}", r.id, if r.mutable { "*" } else { "" }),
            (!r.in_use).to_string(),
            format!("{}{}", human_size4(r.size), if r.shared { "*" } else { "" }),
            ago(r.last_used),
        ]);
    }
    hoist_image::display::table(&rows)
}

/// Cells through Go's tabwriter as buildx sets it up (min width 1, tab width 8, padding 1,
/// padded with tabs): each column but the last as wide as its widest cell plus one, rounded up
/// to a tab stop.
fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            let w = rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count());
            (w.max().unwrap_or(0) + 1).div_ceil(8) * 8
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < r.len() {
                let tabs = (widths[c] - cell.chars().count()).div_ceil(8);
                out.push_str(&"\t".repeat(tabs));
            }
        }
        out.push('\n');
    }
    out
}

/// `Key:\tvalue` lines through [`tabwrite`]: `Reclaimable:\t682MB`, `Total:\t\t682MB`.
fn kv_tabs(pairs: &[(&str, String)]) -> String {
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|(k, v)| vec![format!("{k}:"), v.clone()])
        .collect();
    tabwrite(&rows)
}

/// The rows `prune` prints for what it removed (`%-40s\t%-5v\t%-10s\t%s` through [`tabwrite`]).
fn prune_table(recs: &[UsageRecord]) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "RECLAIMABLE".into(),
        "SIZE".into(),
        "LAST ACCESSED".into(),
    ]];
    for r in recs {
        rows.push(vec![
            format!(
                "{:<40}",
                format!("{}{}", r.id, if r.mutable { "*" } else { "" })
            ),
            format!("{:<5}", !r.in_use),
            format!(
                "{:<10}",
                format!("{}{}", human_size4(r.size), if r.shared { "*" } else { "" })
            ),
            ago(r.last_used),
        ]);
    }
    tabwrite(&rows)
}

/// `Key:` padded with spaces to 14 columns, as buildx's `du --verbose` template writes it.
fn kv_pretty(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{:<14}{v}\n", format!("{k}:")))
        .collect()
}

/// Go's `time.Time.String()` in UTC: `2026-12-03 20:56:53.123456789 +0000 UTC`.
fn go_time(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let base = hoist_builder::solver::reproducible::rfc3339(d.as_secs() as i64);
    let base = base.trim_end_matches('Z').replacen('T', " ", 1);
    let frac = format!("{:09}", d.subsec_nanos());
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{base} +0000 UTC")
    } else {
        format!("{base}.{frac} +0000 UTC")
    }
}

/// buildx's verbose blocks, one per record, each ending with a blank line: `du --verbose`
/// aligns with spaces (`pretty`), `prune --verbose` with tabs.
fn verbose(recs: &[UsageRecord], pretty: bool) -> String {
    let mut out = String::new();
    for r in recs {
        let mut p = vec![
            ("ID", r.id.clone()),
            ("Created at", go_time(r.created)),
            ("Mutable", r.mutable.to_string()),
            ("Reclaimable", (!r.in_use).to_string()),
            ("Shared", r.shared.to_string()),
            ("Size", human_size4(r.size)),
        ];
        if !r.description.is_empty() {
            p.push(("Description", r.description.clone()));
        }
        p.push(("Last used", ago(r.last_used)));
        p.push(("Type", r.kind.name().to_string()));
        out.push_str(&if pretty { kv_pretty(&p) } else { kv_tabs(&p) });
        out.push('\n');
    }
    out
}

/// buildx's closing lines: `Shared:`/`Private:` when some bytes are shared, then `Reclaimable:`
/// and `Total:`.
fn summary(recs: &[UsageRecord]) -> String {
    let total: u64 = recs.iter().map(|r| r.size).sum();
    let reclaimable: u64 = recs.iter().filter(|r| !r.in_use).map(|r| r.size).sum();
    let shared: u64 = recs.iter().filter(|r| r.shared).map(|r| r.size).sum();
    let mut p = Vec::new();
    if shared > 0 {
        p.push(("Shared", human_size4(shared)));
        p.push(("Private", human_size4(total - shared)));
    }
    p.push(("Reclaimable", human_size4(reclaimable)));
    p.push(("Total", human_size4(total)));
    kv_tabs(&p)
}
