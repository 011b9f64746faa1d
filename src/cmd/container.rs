//! Detached containers after `hoist run -d` started them: `ps`, `logs`, `stop`, `rm` and
//! `container inspect`, over the state under the store's `containers/` ([`hoist_runtime::state`]).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use hoist_image::default_root;
use hoist_image::display::{ellipsis, human_duration, table};
use hoist_runtime::lifecycle;
use hoist_runtime::monitor::{Record, read_log};
use hoist_runtime::state::{Containers, State, now, rfc3339};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// List containers
    #[command(alias = "list")]
    Ps {
        /// Show all containers (default shows just running)
        #[arg(short, long)]
        all: bool,
        /// Only display container IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Fetch the logs of a container
    Logs {
        /// Follow log output
        #[arg(short, long)]
        follow: bool,
        /// Show timestamps
        #[arg(short, long)]
        timestamps: bool,
        /// Number of lines to show from the end of the logs (or "all")
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        container: String,
    },
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Remove one or more containers
    Rm {
        /// Force the removal of a running container (uses SIGKILL)
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill one or more running containers
    Kill {
        /// Signal to send to the container
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Start one or more stopped containers
    Start {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart(StopArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommands),
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommands {
    /// Display detailed information on one or more containers
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

/// `stop` and `restart`: which signal, how long to wait before SIGKILL, which containers.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short, long)]
    signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        allow_hyphen_values = true
    )]
    timeout: Option<i64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let root = global.root.clone().unwrap_or_else(default_root);
        let containers = Containers::new(root.join("containers"));
        match self {
            Commands::Ps { all, quiet } => ps(&containers, all, quiet),
            Commands::Logs {
                follow,
                timestamps,
                tail,
                container,
            } => logs(&containers, &container, follow, timestamps, &tail),
            Commands::Stop(a) => each(&containers, &a.containers, |s| {
                stop(&containers, s, a.signal.as_deref(), a.timeout)
            }),
            Commands::Rm {
                force,
                containers: keys,
            } => each(&containers, &keys, |s| {
                lifecycle::remove(&containers, s, force)
            }),
            Commands::Kill {
                signal,
                containers: keys,
            } => each(&containers, &keys, |s| {
                let sig = hoist_parser::values::parse_signal(&signal)?;
                if !s.running {
                    return Err(format!(
                        "cannot kill container: {}: container {} is not running",
                        s.name, s.id
                    ));
                }
                lifecycle::kill(s, sig as i32)
            }),
            Commands::Start { containers: keys } => {
                each(&containers, &keys, |s| start_again(&containers, s))
            }
            Commands::Restart(a) => each(&containers, &a.containers, |s| {
                stop(&containers, s, a.signal.as_deref(), a.timeout)?;
                let s = containers.load(&s.id)?;
                start_again(&containers, &s)
            }),
            Commands::Wait { containers: keys } => {
                let mut failed = false;
                for key in keys {
                    match containers.find(&key) {
                        Ok(s) => {
                            let mut s = s;
                            while s.running {
                                std::thread::sleep(Duration::from_millis(50));
                                match containers.load(&s.id) {
                                    Ok(next) => s = next,
                                    Err(_) => break, // removed (--rm): its code is gone with it
                                }
                            }
                            println!("{}", s.exit_code);
                        }
                        Err(e) => {
                            eprintln!("Error response from daemon: {e}");
                            failed = true;
                        }
                    }
                }
                Ok(if failed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            }
            Commands::Container(ContainerCommands::Inspect { containers: keys }) => {
                inspect(&containers, &keys)
            }
        }
    }
}

/// `stop`: `signal`, else the image's STOPSIGNAL, else SIGTERM; SIGKILL after `timeout` (10 s).
fn stop(
    containers: &Containers,
    s: &State,
    signal: Option<&str>,
    timeout: Option<i64>,
) -> Result<(), String> {
    let sig = signal.or(s.stop_signal.as_deref()).unwrap_or("SIGTERM");
    let sig = hoist_parser::values::parse_signal(sig)?;
    lifecycle::stop(containers, s, sig as i32, timeout.unwrap_or(10))
}

/// `start`: a stopped container's monitor again, on its kept writable layer (a running one is
/// left alone, as Docker does).
fn start_again(containers: &Containers, s: &State) -> Result<(), String> {
    if s.running {
        return Ok(());
    }
    let mut fresh = s.clone();
    fresh.started = 0;
    containers.save(&fresh)?;
    match super::run::start_monitor(containers, &s.id, false) {
        Ok(0) => Ok(()),
        Ok(code) => Err(format!(
            "cannot start container {}: exit status {code}",
            s.id
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `f` on each container named, printing the name as given on success and Docker's error
/// otherwise (exit status 1 if any failed).
fn each(
    containers: &Containers,
    keys: &[String],
    f: impl Fn(&State) -> Result<(), String>,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for key in keys {
        match containers.find(key).and_then(|s| f(&s)) {
            Ok(()) => println!("{key}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `inspect` of containers: Docker's shape for the fields hoist knows.
fn inspect(containers: &Containers, keys: &[String]) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    let mut failed = false;
    for key in keys {
        match containers.find(key) {
            Ok(s) => out.push(inspect_json(&s)),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `inspect`'s JSON for the container `key` in `store`, if there is one.
pub fn find(store: &hoist_image::Store, key: &str) -> Option<serde_json::Value> {
    let containers = Containers::new(store.dir("containers").ok()?);
    containers.find(key).ok().map(|s| inspect_json(&s))
}

/// One container as `docker inspect` shows it.
pub fn inspect_json(s: &State) -> serde_json::Value {
    let pid = if s.running {
        lifecycle::pid1(s.pid).unwrap_or(0)
    } else {
        0
    };
    let status = match () {
        _ if s.running => "running",
        _ if s.started == 0 => "created",
        _ => "exited",
    };
    serde_json::json!({
        "Id": s.id,
        "Created": rfc3339(s.created),
        "Path": s.args.first().cloned().unwrap_or_default(),
        "Args": s.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status,
            "Running": s.running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": pid,
            "ExitCode": s.exit_code,
            "Error": "",
            "StartedAt": rfc3339(s.started),
            "FinishedAt": rfc3339(s.finished),
        },
        "Image": s.image,
        "Name": format!("/{}", s.name),
        "HostConfig": { "AutoRemove": s.auto_remove },
        "Config": { "Image": s.image, "StopSignal": s.stop_signal },
    })
}

/// `hoist logs`: the json-file records, stdout to stdout and stderr to stderr; `-f` keeps reading
/// while the monitor lives.
fn logs(
    containers: &Containers,
    key: &str,
    follow: bool,
    timestamps: bool,
    tail: &str,
) -> anyhow::Result<ExitCode> {
    let state = match containers.find(key) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error response from daemon: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let tail: Option<usize> = match tail {
        "all" => None,
        n => Some(n.parse().map_err(|_| {
            anyhow::anyhow!("invalid value for \"tail\": {n:?} (expected a number or \"all\")")
        })?),
    };
    let path = containers.log_path(&state.id);
    let records = read_log(&path);
    let first = tail.map_or(0, |n| records.len().saturating_sub(n));
    print_records(&records[first..], timestamps)?;
    let mut printed = records.len();
    // Follow: print new records until the monitor has gone and the log is read.
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let alive = containers.monitor_alive(&state.id);
        std::thread::sleep(Duration::from_millis(100));
        let records = read_log(&path);
        print_records(records.get(printed..).unwrap_or_default(), timestamps)?;
        printed = printed.max(records.len());
        if !alive {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_records(records: &[Record], timestamps: bool) -> std::io::Result<()> {
    use std::io::Write;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for r in records {
        let w: &mut dyn Write = if r.stream == "stderr" {
            &mut err
        } else {
            &mut out
        };
        if timestamps {
            write!(w, "{} ", r.time)?;
        }
        w.write_all(r.log.as_bytes())?;
    }
    out.flush()
}

/// `STATUS`: `Up 3 seconds`, `Exited (0) 2 seconds ago`, `Created`.
pub fn status(s: &State, now_ns: u128) -> String {
    let ago = |t: u128| human_duration((now_ns.saturating_sub(t) / 1_000_000_000) as i64);
    if s.running {
        format!("Up {}", ago(s.started))
    } else if s.started == 0 {
        "Created".into()
    } else {
        format!("Exited ({}) {} ago", s.exit_code, ago(s.finished))
    }
}

fn ps(containers: &Containers, all: bool, quiet: bool) -> anyhow::Result<ExitCode> {
    let list: Vec<State> = containers
        .list()
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .filter(|s| all || s.running)
        .collect();
    if quiet {
        for s in &list {
            println!("{}", &s.id[..12]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let t = now();
    let mut rows = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in &list {
        rows.push(vec![
            s.id[..12].to_string(),
            s.image.clone(),
            format!("\"{}\"", ellipsis(&s.command, 20)),
            format!(
                "{} ago",
                human_duration((t.saturating_sub(s.created) / 1_000_000_000) as i64)
            ),
            status(s, t),
            String::new(),
            s.name.clone(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}
