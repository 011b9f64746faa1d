//! `hoist.toml`: where the service listens, where it keeps its state, which registry it pushes to, and
//! each repository's build rules (Docker Hub automated-build style).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use regex::Regex;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP service binds to.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Queue database, repository mirrors, checkouts and build logs live here.
    pub state_dir: PathBuf,
    /// Registry (and optional namespace) images are pushed to, e.g. `127.0.0.1:5000/team`.
    #[serde(default)]
    pub registry: Option<String>,
    /// Registries reached over plain http (loopback registries always are).
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Image store shared by every build (the build cache). Default: `hoist --root` or hoist's default.
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// At most this many builds run at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Shared secret for webhooks of repositories that set none.
    #[serde(default)]
    pub secret: Option<String>,
    /// When set, the status page (`/`) and API (`/api/*`) need it: `Authorization: Bearer <token>`, or
    /// the cookie the page sets after `/?token=<token>`. Webhooks are authenticated by their secrets.
    #[serde(default)]
    pub status_token: Option<String>,
    /// Builds kept in the status API/page (older finished builds are pruned).
    #[serde(default = "default_keep")]
    pub keep_builds: usize,
    /// What this process does: accept webhooks (`web`), run builds (`worker`), or both (`all`). Every
    /// role answers the status page and API.
    #[serde(default)]
    pub role: Role,
    /// Where builds are queued: unset for the embedded SQLite queue in `state_dir`, or
    /// `postgres://user:password@host/db` for a queue shared by any number of `hoist serve` processes.
    #[serde(default)]
    pub queue: Option<String>,
    /// This process's worker name in a shared queue (unique among them; stable, for sticky routing).
    /// Default: `<hostname>:<listen port>` (`<hostname>:pid<pid>` for port 0).
    #[serde(default)]
    pub worker_name: Option<String>,
    /// Free-form worker labels this process advertises (its platform, e.g. `linux/amd64`, is added).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Shared queue: seconds a running build's lease lasts without a heartbeat before another worker
    /// may take it over.
    #[serde(default = "default_lease")]
    pub lease_seconds: f64,
    /// Shared queue: seconds a build waits for the worker that last built its repository.
    #[serde(default = "default_sticky")]
    pub sticky_seconds: f64,
    /// Build cache through the registry (`--cache-from`/`--cache-to type=registry,ref=<image>:buildcache,
    /// mode=max`), so a build on a worker new to a repository still hits the cache. Default: on with a
    /// shared `queue`, off with the embedded one (its builds share one local store).
    #[serde(default)]
    pub registry_cache: Option<bool>,
    #[serde(default, rename = "repository")]
    pub repositories: Vec<Repository>,
}

/// What a `hoist serve` process does (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accepts webhooks and queues builds; runs none.
    Web,
    /// Runs builds from the queue; refuses webhooks.
    Worker,
    /// Both.
    #[default]
    All,
}

impl Role {
    /// Whether this role accepts webhooks.
    pub fn accepts_hooks(self) -> bool {
        self != Role::Worker
    }
    /// Whether this role runs builds.
    pub fn runs_builds(self) -> bool {
        self != Role::Web
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "web" => Ok(Role::Web),
            "worker" => Ok(Role::Worker),
            "all" => Ok(Role::All),
            _ => Err(format!("role {s:?}: expected web, worker or all")),
        }
    }
}

/// One source repository and the images built from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    /// Short name: the webhook path is `/hooks/<name>`; payloads naming `<name>` as their full name match too.
    pub name: String,
    /// Clone URL (https, ssh, file:// or a local path).
    pub url: String,
    /// Image name tags are applied to. Default: `<registry>/<name>`.
    #[serde(default)]
    pub image: Option<String>,
    /// Branch whose builds are tagged `latest` by default.
    #[serde(default = "default_branch")]
    pub default_branch: String,
    /// Webhook secret for this repository (overrides the top-level one).
    #[serde(default)]
    pub secret: Option<String>,
    /// Build rules. Default: the default branch -> `latest`, every tag -> `{sourceref}`.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

/// Whether a rule matches branches or tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    Branch,
    Tag,
}

/// One build rule, as Docker Hub's automated builds had them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub source_type: SourceType,
    /// A branch/tag name, or `/regex/` whose capture groups the tag template may use as `{\1}`.
    pub source: String,
    /// Tag template(s), comma separated: `latest`, `{sourceref}`, `{\1}`, `{sha}`, `{shortsha}`.
    /// Default: `latest` on the default branch, `{sourceref}` otherwise.
    #[serde(default)]
    pub tag: Option<String>,
    /// Dockerfile path, relative to the repository root.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// Build context, relative to the repository root.
    #[serde(default = "default_context")]
    pub context: String,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Worker labels a build needs (`linux/arm64`, `gpu`): with a shared queue only workers carrying
    /// all of them take it.
    #[serde(default)]
    pub labels: Vec<String>,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().unwrap()
}
fn default_lease() -> f64 {
    30.0
}
fn default_sticky() -> f64 {
    10.0
}
fn default_concurrency() -> usize {
    1
}
fn default_keep() -> usize {
    500
}
fn default_branch() -> String {
    "main".into()
}
fn default_dockerfile() -> String {
    "Dockerfile".into()
}
fn default_context() -> String {
    ".".into()
}

impl Config {
    /// Reads and validates a config file; relative `state_dir`/`store` are taken from the file's directory.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut config = Config::parse(&text).with_context(|| format!("in {}", path.display()))?;
        let abs =
            std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
        let base = abs.parent().unwrap_or(Path::new("/"));
        if config.state_dir.is_relative() {
            config.state_dir = base.join(&config.state_dir);
        }
        config.store = config.store.take().map(|s| base.join(s));
        Ok(config)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let mut config: Config = toml::from_str(text)?;
        if config.concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        if config
            .queue
            .as_deref()
            .is_some_and(|q| !(q.starts_with("postgres://") || q.starts_with("postgresql://")))
        {
            bail!(
                "queue: expected a postgres:// URL (or no `queue` for the embedded SQLite queue)"
            );
        }
        if !(config.lease_seconds >= 1.0 && config.lease_seconds.is_finite()) {
            bail!("lease_seconds must be at least 1");
        }
        if !(config.sticky_seconds >= 0.0 && config.sticky_seconds.is_finite()) {
            bail!("sticky_seconds must be 0 or more");
        }
        if config
            .status_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            bail!(
                "status_token is empty: set a long random token, or remove it to leave the status page open"
            );
        }
        let mut seen = std::collections::HashSet::new();
        for repo in &mut config.repositories {
            if repo.name.is_empty()
                || !repo
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
            {
                bail!(
                    "repository name {:?}: expected letters, digits, '.', '_', '-', '/'",
                    repo.name
                );
            }
            if !seen.insert(repo.name.clone()) {
                bail!("repository {:?} is defined twice", repo.name);
            }
            if repo.image.is_none() && config.registry.is_none() {
                bail!(
                    "repository {:?}: set `image`, or a top-level `registry`",
                    repo.name
                );
            }
            if repo.secret.is_none() && config.secret.is_none() {
                bail!(
                    "repository {:?}: no webhook secret (set `secret` on it or at the top level)",
                    repo.name
                );
            }
            if repo.rules.is_empty() {
                repo.rules = vec![
                    Rule {
                        source_type: SourceType::Branch,
                        source: repo.default_branch.clone(),
                        tag: Some("latest".into()),
                        dockerfile: default_dockerfile(),
                        context: default_context(),
                        build_args: BTreeMap::new(),
                        labels: Vec::new(),
                    },
                    Rule {
                        source_type: SourceType::Tag,
                        source: "/.*/".into(),
                        tag: Some("{sourceref}".into()),
                        dockerfile: default_dockerfile(),
                        context: default_context(),
                        build_args: BTreeMap::new(),
                        labels: Vec::new(),
                    },
                ];
            }
            for (i, rule) in repo.rules.iter().enumerate() {
                rule.matcher()
                    .with_context(|| format!("repository {:?} rule {}", repo.name, i + 1))?;
                if let Some(t) = &rule.tag {
                    crate::tag_template::check_template(t).map_err(|e| {
                        anyhow::anyhow!("repository {:?} rule {}: {e}", repo.name, i + 1)
                    })?;
                }
                for p in [&rule.dockerfile, &rule.context] {
                    if Path::new(p).is_absolute()
                        || Path::new(p)
                            .components()
                            .any(|c| c == std::path::Component::ParentDir)
                    {
                        bail!(
                            "repository {:?} rule {}: path {p:?} must stay inside the repository",
                            repo.name,
                            i + 1
                        );
                    }
                }
            }
        }
        Ok(config)
    }

    /// This process's worker name: `worker_name`, or `<hostname>:<listen port>` (`<hostname>:pid<pid>`
    /// when listening on port 0).
    pub fn worker_name(&self) -> String {
        self.worker_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            match self.listen.port() {
                // A port picked at bind time names nothing stable: the process id at least is unique.
                0 => format!("{host}:pid{}", std::process::id()),
                port => format!("{host}:{port}"),
            }
        })
    }

    /// The labels this process advertises: its platform, then the configured ones.
    pub fn worker_labels(&self) -> Vec<String> {
        let mut labels = vec![platform()];
        for l in &self.labels {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
        labels
    }

    /// Whether builds use the registry as their cache (see `registry_cache`).
    pub fn uses_registry_cache(&self) -> bool {
        self.registry_cache.unwrap_or(self.queue.is_some())
    }

    /// The repository named `name`.
    pub fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories.iter().find(|r| r.name == name)
    }

    /// The webhook secret of a repository.
    pub fn secret_for<'a>(&'a self, repo: &'a Repository) -> &'a str {
        repo.secret
            .as_deref()
            .or(self.secret.as_deref())
            .unwrap_or_default()
    }

    /// The image name a repository's tags are applied to.
    pub fn image_for(&self, repo: &Repository) -> String {
        match (&repo.image, &self.registry) {
            (Some(image), _) => image.clone(),
            (None, Some(reg)) => format!("{}/{}", reg.trim_end_matches('/'), repo.name),
            (None, None) => repo.name.clone(),
        }
    }
}

/// This machine's platform as OCI names it (`linux/amd64`, `linux/arm64`).
pub fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// How a rule's `source` is matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Regex(Regex),
}

impl Rule {
    /// Compiles `source`: `/re/` is a regex, anything else an exact name.
    pub fn matcher(&self) -> anyhow::Result<Matcher> {
        let s = &self.source;
        if s.len() >= 2 && s.starts_with('/') && s.ends_with('/') {
            let re =
                Regex::new(&s[1..s.len() - 1]).with_context(|| format!("source regex {s:?}"))?;
            Ok(Matcher::Regex(re))
        } else if s.is_empty() {
            bail!("empty source: expected a branch/tag name or /regex/")
        } else {
            Ok(Matcher::Exact(s.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_defaults() {
        let c = Config::parse(
            r#"
            state_dir = "/tmp/x"
            registry = "127.0.0.1:5000/team"
            secret = "s3cret"
            concurrency = 2
            [[repository]]
            name = "app"
            url = "file:///srv/app.git"
            [[repository.rule]]
            source_type = "tag"
            source = '/^v([0-9]+)\.([0-9]+)$/'
            tag = '{\1}.{\2},{\1}'
            build_args = { MODE = "release" }
            [[repository]]
            name = "web"
            url = "/srv/web.git"
            "#,
        )
        .unwrap();
        assert_eq!(c.concurrency, 2);
        assert_eq!(c.repositories[0].rules.len(), 1);
        assert_eq!(c.repositories[0].rules[0].dockerfile, "Dockerfile");
        assert_eq!(c.repositories[1].rules.len(), 2, "default rules");
        assert_eq!(c.image_for(&c.repositories[1]), "127.0.0.1:5000/team/web");
        assert_eq!(c.secret_for(&c.repositories[0]), "s3cret");
    }

    #[test]
    fn example_config_parses() {
        let c = Config::parse(include_str!("../../testdata/serve/hoist.toml")).unwrap();
        assert_eq!(c.repositories.len(), 2);
        assert_eq!(c.repositories[0].rules.len(), 3);
        assert_eq!(c.repositories[1].rules.len(), 2);
        assert_eq!(c.image_for(&c.repositories[1]), "127.0.0.1:5000/team/docs");
        assert!(
            c.status_token.is_some(),
            "the example shows the status token"
        );
    }

    #[test]
    fn shared_queue_settings() {
        let base =
            "state_dir = \"/x\"\nregistry = \"r\"\nsecret = \"s\"\nlisten = \"127.0.0.1:9000\"\n";
        let c = Config::parse(base).unwrap();
        assert_eq!(c.role, Role::All);
        assert!(
            !c.uses_registry_cache(),
            "the embedded queue keeps its local cache only"
        );
        assert!(c.worker_name().ends_with(":9000"), "{}", c.worker_name());
        let c = Config::parse(&format!(
            "queue = \"postgres://h@db/q\"\nrole = \"worker\"\nworker_name = \"w1\"\nlabels = [\"gpu\", \"gpu\"]\n{base}"
        ))
        .unwrap();
        assert_eq!(c.role, Role::Worker);
        assert!(!c.role.accepts_hooks() && c.role.runs_builds());
        assert!(c.uses_registry_cache());
        assert_eq!(c.worker_name(), "w1");
        assert_eq!(c.worker_labels(), [platform(), "gpu".to_string()]);
        assert_eq!("web".parse::<Role>(), Ok(Role::Web));
        assert!(
            "boss"
                .parse::<Role>()
                .unwrap_err()
                .contains("web, worker or all")
        );
    }

    #[test]
    fn rejects_bad_input() {
        let base = "state_dir = \"/x\"\nregistry = \"r\"\nsecret = \"s\"\n[[repository]]\nname = \"a\"\nurl = \"u\"\n";
        let bad_re =
            format!("{base}[[repository.rule]]\nsource_type = \"tag\"\nsource = \"/(/\"\n");
        let e = format!("{:#}", Config::parse(&bad_re).unwrap_err());
        assert!(e.contains("rule 1") && e.contains("regex"), "{e}");
        let escape = format!(
            "{base}[[repository.rule]]\nsource_type = \"branch\"\nsource = \"main\"\ndockerfile = \"../x\"\n"
        );
        assert!(Config::parse(&escape).is_err());
        let no_secret =
            "state_dir = \"/x\"\nregistry = \"r\"\n[[repository]]\nname = \"a\"\nurl = \"u\"\n";
        assert!(format!("{:#}", Config::parse(no_secret).unwrap_err()).contains("secret"));
        assert!(Config::parse("state_dir = \"/x\"\nbogus = 1\n").is_err());
        for (bad, says) in [
            ("queue = \"mysql://db/q\"\n", "postgres://"),
            ("lease_seconds = 0\n", "lease_seconds"),
            ("sticky_seconds = -1\n", "sticky_seconds"),
            ("role = \"boss\"\n", "role"),
        ] {
            let e = format!("{:#}", Config::parse(&format!("{bad}{base}")).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
        let empty_token = format!("status_token = \" \"\n{base}");
        let e = format!("{:#}", Config::parse(&empty_token).unwrap_err());
        assert!(e.contains("status_token"), "{e}");
    }
}
