//! Commands: pull, push, login, logout (Docker's flags and output), over `hoist_registry`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use hoist_image::{Reference, Store};
use hoist_registry::endpoint::DOCKER_HUB;
use hoist_registry::login::{self, LoginFlags};
use hoist_registry::{
    Client, ClientOptions, Credentials, DockerConfig, Platform, Progress, ProgressMode, PullOptions,
};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Download an image from a registry
    Pull {
        /// NAME[:TAG|@DIGEST]
        name: String,
        /// Set platform if server is multi-platform capable (os/arch[/variant])
        #[arg(long)]
        platform: Option<String>,
        /// Keep a multi-platform image whole: its index and every platform's image
        #[arg(long)]
        all_platforms: bool,
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        net: NetFlags,
    },
    /// Upload an image to a registry
    Push {
        /// NAME[:TAG]
        name: String,
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        net: NetFlags,
    },
    /// Log in to a registry
    Login {
        /// Registry (default: Docker Hub)
        server: Option<String>,
        #[arg(short, long)]
        username: Option<String>,
        /// Password (prefer --password-stdin)
        #[arg(short, long)]
        password: Option<String>,
        /// Take the password from stdin
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        net: NetFlags,
    },
    /// Log out from a registry
    Logout {
        /// Registry (default: Docker Hub)
        server: Option<String>,
    },
}

/// Network flags shared by registry commands.
#[derive(Debug, Args)]
pub struct NetFlags {
    /// Reach this registry (host[:port]) over plain http (loopback registries always are)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
}

impl NetFlags {
    fn client(&self, credentials: Option<Credentials>) -> anyhow::Result<Client> {
        Client::new(ClientOptions {
            insecure_registries: self.insecure.clone(),
            credentials,
            ..ClientOptions::default()
        })
    }
}

fn open_store(global: &Global) -> anyhow::Result<Store> {
    let root = global
        .root
        .clone()
        .unwrap_or_else(hoist_image::default_root);
    Store::open(&root).with_context(|| format!("opening store {}", root.display()))
}

/// A registry name as given to login/logout: strips a scheme and path; Docker Hub aliases map
/// to `docker.io`.
fn server_name(server: Option<&str>) -> String {
    let s = server.unwrap_or(DOCKER_HUB);
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" | "" => DOCKER_HUB.to_string(),
        s => s.to_string(),
    }
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Commands::Pull {
                name,
                platform,
                all_platforms,
                quiet,
                net,
            } => {
                if all_platforms && platform.is_some() {
                    anyhow::bail!(
                        "conflicting options: cannot specify both --all-platforms and --platform"
                    );
                }
                let r = Reference::parse(&name)?;
                let platform = platform.as_deref().map(Platform::parse).transpose()?;
                let store = open_store(global)?;
                let client = net.client(None)?;
                let progress = Progress::new(if quiet {
                    ProgressMode::Quiet
                } else {
                    ProgressMode::Auto
                });
                if !quiet {
                    match (&r.tag, &r.digest) {
                        (_, Some(d)) => println!("{d}: Pulling from {}", r.path),
                        (Some(t), None) => println!("{t}: Pulling from {}", r.path),
                        _ => {}
                    }
                }
                let opts = PullOptions {
                    platform,
                    all_platforms,
                    ..PullOptions::default()
                };
                let pulled = hoist_registry::runtime()?
                    .block_on(hoist_registry::pull(&client, &store, &r, &opts, &progress))?;
                if !quiet {
                    println!("Digest: {}", pulled.repo_digest());
                    if pulled.downloaded == 0 {
                        println!("Status: Image is up to date for {}", r.familiar());
                    } else {
                        println!("Status: Downloaded newer image for {}", r.familiar());
                    }
                }
                println!("{r}");
                Ok(ExitCode::SUCCESS)
            }
            Commands::Push { name, quiet, net } => {
                let r = Reference::parse(&name)?;
                let store = open_store(global)?;
                if !quiet {
                    println!("The push refers to repository [{}]", r.repository());
                }
                let local = format!("{}", r);
                let pushed = hoist_registry::blocking::push_image(
                    &store,
                    &local,
                    &name,
                    &net.insecure,
                    if quiet {
                        ProgressMode::Quiet
                    } else {
                        ProgressMode::Auto
                    },
                )?;
                let shown = r.tag.clone().unwrap_or_else(|| pushed.digest.clone());
                if quiet {
                    println!("{r}");
                } else {
                    println!("{shown}: digest: {} size: {}", pushed.digest, pushed.size);
                }
                Ok(ExitCode::SUCCESS)
            }
            Commands::Login {
                server,
                username,
                password,
                password_stdin,
                net,
            } => {
                let registry = server_name(server.as_deref());
                let mut config = DockerConfig::load_default()?;
                let saved = config.credentials(&registry)?.map(|c| c.username);
                let flags = LoginFlags {
                    username,
                    password,
                    password_stdin,
                };
                let creds = login::gather(flags, saved, &mut login::Stdio)?;
                let client = net.client(Some(creds.clone()))?;
                hoist_registry::runtime()?
                    .block_on(client.ping(&registry))
                    .with_context(|| format!("Error response from {registry}"))?;
                config.store(&registry, &creds)?;
                println!("Login Succeeded");
                Ok(ExitCode::SUCCESS)
            }
            Commands::Logout { server } => {
                let registry = server_name(server.as_deref());
                let mut config = DockerConfig::load_default()?;
                if config.erase(&registry)? {
                    println!(
                        "Removing login credentials for {}",
                        hoist_registry::auth::auth_key(&registry)
                    );
                } else {
                    println!("Not logged in to {registry}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
