//! The Dockerfile frontend: typed instructions ([`hoist_parser::instructions`], flags and arguments
//! already parsed and validated there) -> a [`Plan`]. Resolves stages and what the target needs, ARG
//! scoping (global, per stage, predefined), variable expansion where Docker expands (values checked
//! after expansion with [`hoist_parser::values`]), ONBUILD triggers of base images, and computes the
//! image config and history each stage produces.

pub mod lint;
pub mod mount;
pub mod named_context;
pub mod snippet;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow, bail};
use hoist_image::{ContainerConfig, Healthcheck, History, ImageConfig};
use hoist_parser::ast::Heredoc;
use hoist_parser::gofmt::{go_duration, go_quote_list};
use hoist_parser::instructions::{
    self as ins, Command, CopyArgs, Dockerfile, Instruction, ShellOrExec, Source,
};
use hoist_parser::lint::BaseEnv;
use hoist_parser::values;
use serde_json::Value;

use crate::frontend::snippet::Located;
use crate::paths::clean;
use crate::plan::{
    Base, Chain, ExecMount, ExecOp, FileOp, Input, MkdirOp, NetworkMode, Op, Plan, RunOptions,
    Source as CopySource, Step,
};

/// Build-wide frontend settings.
#[derive(Debug, Clone)]
pub struct FrontendOptions {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub network: NetworkMode,
    /// `os/arch[/variant]` of the result.
    pub platform: String,
    /// The Dockerfile's display name in locations (`Dockerfile`).
    pub file_name: String,
    /// The Dockerfile's text, for the excerpt a failed step shows ([`crate::frontend::snippet`]).
    pub text: String,
    /// `--build-context`s by normalised name ([`crate::frontend::named_context::context_name`]).
    pub contexts: BTreeMap<String, NamedInput>,
    /// `--no-cache-filter`: stages (by name, any case) whose steps run even when cached.
    pub no_cache_filter: Vec<String>,
    /// `--add-host`, `--shm-size`, `--ulimit`: what every RUN gets.
    pub run: RunOptions,
}

impl FrontendOptions {
    /// Defaults for `file_name`: no build args, target, labels or contexts; the host's platform.
    pub fn new(file_name: &str) -> FrontendOptions {
        FrontendOptions {
            build_args: BTreeMap::new(),
            target: None,
            labels: BTreeMap::new(),
            network: NetworkMode::Host,
            platform: format!("linux/{}", hoist_image::config::host_arch()),
            file_name: file_name.into(),
            text: String::new(),
            contexts: BTreeMap::new(),
            no_cache_filter: Vec::new(),
            run: RunOptions::default(),
        }
    }
}

/// A named context (`--build-context`) as the frontend uses it. As in BuildKit, one replaces a
/// stage of its name (whose instructions then do not run) and an image of its name, in `FROM`,
/// `COPY --from` and `RUN --mount=from=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedInput {
    /// An image, resolved (pulled when missing) through the [`ImageResolver`].
    Image(String),
    /// A local directory the solver holds under the context's name ([`Input::Local`]).
    Local,
    /// Nothing (`docker-image://scratch`).
    Scratch,
}

/// The named context `name` refers to, with its normalised name.
fn named_context<'a>(opts: &'a FrontendOptions, name: &str) -> Option<(String, &'a NamedInput)> {
    if opts.contexts.is_empty() {
        return None;
    }
    let key = crate::frontend::named_context::context_name(name).ok()?;
    opts.contexts.get(&key).map(|n| (key, n))
}

/// Resolves a base image name to an image of the store.
pub type ImageResolver<'a> = dyn FnMut(&str) -> Result<hoist_image::Image> + 'a;

/// What lowering produced.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub plan: Plan,
    /// Per stage, in file order, for the `UndefinedVar` check: the environment its base image
    /// starts it with (empty for scratch; a stage base passes its own on), or `Skip` for the
    /// stages the target does not need.
    pub base_env: Vec<BaseEnv>,
}

const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The most bytes one build's frontend may produce from expansion (values, RUN environments,
/// history text), in total. One expanded word is bounded by [`hoist_parser::shell::MAX_EXPANSION`];
/// this bounds their sum, so a file repeating a 4 MiB value (`ARG B1=$A`, `ARG B2=$A`, ... or
/// RUNs that each carry it in their environment and history) cannot eat the memory either. Real
/// files use well under 1 MiB.
const MAX_FRONTEND_BYTES: usize = 64 << 20;

/// What expansion produced so far in one lowering, against [`MAX_FRONTEND_BYTES`].
#[derive(Debug, Default)]
struct Budget(std::cell::Cell<usize>);

impl Budget {
    fn charge(&self, bytes: usize) -> Result<()> {
        let total = self.0.get().saturating_add(bytes);
        self.0.set(total);
        if total > MAX_FRONTEND_BYTES {
            bail!(
                "the Dockerfile expands to more than {} MiB of values, RUN environments and history (the limit on one build)",
                MAX_FRONTEND_BYTES >> 20
            );
        }
        Ok(())
    }
}

/// An error of the instruction at `src`, with its excerpt, as BuildKit reports it.
fn line_error(opts: &FrontendOptions, src: &Source, message: String) -> anyhow::Error {
    Located {
        excerpt: crate::frontend::snippet::render(
            &opts.file_name,
            &opts.text,
            src.start_line,
            src.end_line,
        ),
        message,
    }
    .into()
}

/// BuildKit's check of an image a stage starts from (`FROM x`, `COPY --from=x`): Go's
/// `reference.ParseNormalizedNamed`, its failure as `failed to parse stage name "x": ...`.
/// BuildKit's error for stage `i` (named `name`, else `stage-N`) reading from itself.
fn circular(name: Option<&str>, i: usize) -> String {
    let name = name.map_or_else(|| format!("stage-{i}"), str::to_string);
    format!("circular dependency detected on stage: {name}")
}

fn check_stage_name(name: &str) -> Result<()> {
    let why = if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("invalid repository name ({name}), cannot specify 64-byte hexadecimal strings")
    } else {
        // Go's `splitDockerDomain`: a first component with `.` or `:`, `localhost`, or upper
        // case is a registry; the rest is the repository path (`library/` for one component).
        let remainder = match name.split_once('/') {
            Some((d, rest))
                if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d =>
            {
                rest.to_string()
            }
            Some(_) => name.to_string(),
            None => format!("library/{name}"),
        };
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            format!("invalid reference format: repository name ({remote}) must be lowercase")
        } else if hoist_image::Reference::parse(name).is_err() {
            "invalid reference format".to_string()
        } else {
            return Ok(());
        }
    };
    bail!(
        "failed to parse stage name {}: {why}",
        hoist_parser::dump::go_quote(name)
    )
}

/// The stages an instruction reads files from (`COPY --from`, `RUN --mount=from=`).
fn reads_from(i: &Instruction) -> Vec<String> {
    match i {
        Instruction::Copy(a) => a.from.iter().cloned().collect(),
        Instruction::Run { mounts, .. } => mounts
            .iter()
            .filter_map(|m| ins::parse_mount(m, None).ok().and_then(|m| m.from))
            .collect(),
        _ => Vec::new(),
    }
}

/// `os/arch[/variant]` (arch: the host's when missing).
fn split_platform(platform: &str) -> (String, String, String) {
    let mut parts = platform.split('/');
    let os = parts.next().unwrap_or("linux").to_string();
    let arch = parts.next().map_or_else(
        || hoist_image::config::host_arch().to_string(),
        String::from,
    );
    (os, arch, parts.next().unwrap_or("").to_string())
}

/// The scope `FROM` lines are expanded in: the predefined platform ARGs (in PLATFORM_ARGS order),
/// then the global ARGs (a build arg wins over the default).
fn global_scope(
    df: &Dockerfile,
    opts: &FrontendOptions,
    budget: &Budget,
) -> Result<Vec<(String, String)>> {
    let (os, arch, variant) = split_platform(&opts.platform);
    let host_arch = hoist_image::config::host_arch().to_string();
    let platform_values = [
        opts.platform.clone(),
        os,
        arch,
        variant,
        format!("linux/{host_arch}"),
        "linux".into(),
        host_arch,
        String::new(),
    ];
    let mut global: Vec<(String, String)> = ins::PLATFORM_ARGS
        .iter()
        .map(|k| k.to_string())
        .zip(platform_values)
        .collect();
    // BuildKit's other predefined FROM args.
    let target = opts
        .target
        .clone()
        .or_else(|| df.stages.last().and_then(|s| s.name.clone()))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "default".into());
    for (k, v) in [
        ("BUILDOSVERSION", String::new()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETSTAGE", target),
    ] {
        global.push((k.to_string(), v));
    }
    for c in &df.global_args {
        let Instruction::Arg(decls) = &c.instruction else {
            continue;
        };
        for d in decls {
            let val = match opts.build_args.get(&d.name) {
                Some(b) => Some(b.clone()),
                None => d
                    .default
                    .as_deref()
                    .map(|v| ins::expand(v, global.as_slice(), df.escape))
                    .transpose()
                    .map_err(|e| line_error(opts, &c.source, e.to_string()))?,
            };
            global.retain(|(k, _)| *k != d.name);
            if let Some(v) = val {
                budget
                    .charge(v.len())
                    .map_err(|e| line_error(opts, &c.source, e.to_string()))?;
                global.push((d.name.clone(), v));
            }
        }
    }
    Ok(global)
}

/// What each stage's `FROM` names once expanded (a stage, `scratch` or an image), as a build
/// resolves it; None where the expansion fails.
pub fn base_names(df: &Dockerfile, opts: &FrontendOptions) -> Result<Vec<Option<String>>> {
    Ok(expanded_bases(df, opts)?
        .into_iter()
        .map(Result::ok)
        .collect())
}

/// Each stage's `FROM` expanded with the global scope, or why it cannot be (the expansion's
/// error).
pub fn expanded_bases(
    df: &Dockerfile,
    opts: &FrontendOptions,
) -> Result<Vec<std::result::Result<String, String>>> {
    let global = global_scope(df, opts, &Budget::default())?;
    Ok(df
        .stages
        .iter()
        .map(|s| ins::expand(&s.base, global.as_slice(), df.escape).map_err(|e| e.to_string()))
        .collect())
}

/// Lowers a parsed and validated Dockerfile into a plan.
pub fn lower(
    df: &Dockerfile,
    opts: &FrontendOptions,
    resolve: &mut ImageResolver<'_>,
) -> Result<Lowered> {
    let err = |src: &Source, msg: String| line_error(opts, src, msg);
    let esc = df.escape;
    let (os, arch, variant) = split_platform(&opts.platform);
    let budget = Budget::default();
    let global = global_scope(df, opts, &budget)?;

    let stages = &df.stages;
    let by_name = |name: &str, before: usize| -> Option<usize> {
        let lname = name.to_ascii_lowercase();
        stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(lname.as_str()))
    };
    let stage_index = |name: &str, before: usize| -> Option<usize> {
        by_name(name, before).or_else(|| name.parse::<usize>().ok().filter(|i| *i < before))
    };
    let target = match &opts.target {
        Some(t) => by_name(t, stages.len())
            .ok_or_else(|| anyhow!("target stage {t:?} could not be found"))?,
        None => stages.len() - 1,
    };

    // Stages a named context replaces.
    let overridden: Vec<Option<(String, &NamedInput)>> = stages
        .iter()
        .map(|s| s.name.as_deref().and_then(|n| named_context(opts, n)))
        .collect();
    // Base names (global args only) and dependencies.
    let mut base_names = Vec::new();
    let mut deps: Vec<BTreeSet<usize>> = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        let b = ins::expand(&s.base, global.as_slice(), esc)
            .map_err(|e| err(&s.source, e.to_string()))?;
        if overridden[i].is_some() {
            base_names.push(b);
            deps.push(BTreeSet::new());
            continue;
        }
        if b.is_empty() {
            return Err(err(
                &s.source,
                format!("base name ({}) should not be blank", s.base),
            ));
        }
        let mut d: BTreeSet<usize> = by_name(&b, i).into_iter().collect();
        for c in &s.commands {
            for from in reads_from(&c.instruction) {
                if let Some(j) = stage_index(&from, i) {
                    d.insert(j);
                } else if Some(i)
                    == match c.instruction {
                        Instruction::Copy(_) => stage_index(&from, i + 1),
                        // BuildKit finds mount sources by name only (`from=0` is an image).
                        _ => by_name(&from, i + 1),
                    }
                {
                    // A stage reading from itself, as BuildKit reports it.
                    return Err(err(&c.source, circular(s.name.as_deref(), i)));
                } else if by_name(&from, stages.len()).is_some()
                    && named_context(opts, &from).is_none()
                {
                    return Err(err(
                        &c.source,
                        format!(
                            "cannot copy from stage {from:?}, it needs to be defined before current stage {:?}",
                            s.name.clone().unwrap_or_else(|| format!("stage-{i}"))
                        ),
                    ));
                }
            }
        }
        base_names.push(b);
        deps.push(d);
    }
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(deps[i].iter().copied());
        }
    }

    let mut chains: Vec<Chain> = Vec::new();
    let mut chain_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut base_env = vec![BaseEnv::Skip; stages.len()];
    let mut scopes: BTreeMap<usize, Scope> = BTreeMap::new();
    let single = stages.len() == 1;
    for (i, s) in stages.iter().enumerate() {
        if !needed.contains(&i) {
            continue;
        }
        let base_name = &base_names[i];
        base_env[i] = BaseEnv::Known(Vec::new());
        // BuildKit's empty image: working directory `/` (PATH is added below, as for any stage).
        let scratch = || ImageConfig {
            architecture: arch.clone(),
            os: os.clone(),
            variant: (!variant.is_empty()).then(|| variant.clone()),
            config: Some(ContainerConfig {
                working_dir: Some("/".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut image_base = |name: &str| -> Result<(Base, ImageConfig)> {
            let img = check_stage_name(name)
                .and_then(|()| resolve(name))
                .map_err(|e| err(&s.source, format!("{e:#}")))?;
            let c = img.config.clone();
            base_env[i] = BaseEnv::Known(
                c.config
                    .as_ref()
                    .and_then(|cc| cc.env.clone())
                    .unwrap_or_default(),
            );
            let base = Base::Image {
                reference: name.to_string(),
                id: img.id().to_string(),
                diff_ids: c.rootfs.diff_ids.iter().map(|d| d.to_string()).collect(),
            };
            Ok((base, c))
        };
        // The named context this stage is, or starts from (never for `scratch` or a stage).
        let context = overridden[i].clone().or_else(|| {
            (base_name != "scratch" && by_name(base_name, i).is_none())
                .then(|| named_context(opts, base_name))
                .flatten()
        });
        // A local directory as the stage's root: laid down by the stage's first step.
        let mut local_root = None;
        // A stage built on an earlier stage inherits its variables (see [`Scope`]).
        let mut inherited = None;
        let (base, mut config) = match &context {
            Some((_, NamedInput::Image(r))) => image_base(r)?,
            Some((_, NamedInput::Scratch)) => (Base::Scratch, scratch()),
            Some((key, NamedInput::Local)) => {
                local_root = Some(key.clone());
                (Base::Scratch, scratch())
            }
            None if base_name == "scratch" => (Base::Scratch, scratch()),
            None => match by_name(base_name, i) {
                Some(j) => {
                    let c = chain_of[&j];
                    inherited = scopes.get(&j).cloned();
                    (Base::Chain(c), chains[c].config.clone())
                }
                None => image_base(base_name)?,
            },
        };
        let label = match &s.name {
            Some(n) => n.clone(),
            None if single => String::new(),
            None => format!("stage-{i}"),
        };
        let mut st = StageState::new(&mut config, opts, esc, &budget, inherited);
        st.no_cache = s.name.as_deref().is_some_and(|n| {
            opts.no_cache_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(n))
        });
        if let Some(key) = local_root {
            st.local_root(&key, &s.source);
        }
        // A stage a named context replaces runs none of its instructions.
        let commands: &[Command] = if overridden[i].is_some() {
            &[]
        } else {
            &s.commands
        };
        // ONBUILD triggers of the base image run first, located at the FROM line.
        let mut triggers = Vec::new();
        for t in st.cc.on_build.take().unwrap_or_default() {
            let mut c = ins::parse_onbuild_trigger(&t, &opts.file_name)
                .map_err(|e| err(&s.source, e.message))?;
            c.source.start_line = s.source.start_line;
            c.source.end_line = s.source.start_line;
            triggers.push(c);
        }
        if overridden[i].is_some() {
            triggers.clear();
        }
        // Images read by `--from` are resolved (pulled when missing) before any step runs.
        for c in triggers.iter().chain(commands) {
            for from in reads_from(&c.instruction) {
                if stage_index(&from, i).is_some()
                    || from.contains('$')
                    || from.parse::<usize>().is_ok()
                {
                    continue;
                }
                let image = match named_context(opts, &from) {
                    Some((_, NamedInput::Image(r))) => r.clone(),
                    Some(_) => continue,
                    None => from,
                };
                check_stage_name(&image)
                    .and_then(|()| resolve(&image))
                    .map_err(|e| err(&c.source, format!("{e:#}")))?;
            }
        }
        for c in triggers.iter().chain(commands) {
            st.apply(c, &global, &|from: &str| -> Result<Input> {
                if let Some(j) = stage_index(from, i) {
                    Ok(Input::Chain(chain_of[&j]))
                } else if by_name(from, i + 1) == Some(i) {
                    bail!(circular(stages[i].name.as_deref(), i))
                } else if from.contains('$') {
                    bail!("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
                } else if let Ok(k) = from.parse::<usize>() {
                    bail!("invalid stage index {k}")
                } else {
                    Ok(match named_context(opts, from) {
                        Some((_, NamedInput::Image(r))) => Input::Image(r.clone()),
                        Some((key, NamedInput::Local)) => Input::Local(key),
                        Some((_, NamedInput::Scratch)) => Input::Inline(Vec::new()),
                        None => Input::Image(from.to_string()),
                    })
                }
            })
            .map_err(|e| match e.downcast::<Located>() {
                Ok(le) => le.into(),
                Err(e) => err(&c.source, format!("{e:#}")),
            })?;
        }
        if i == target && !opts.labels.is_empty() {
            let labels = st.cc.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &opts.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        scopes.insert(i, st.scope.clone());
        let (steps, history) = st.finish();
        let mut cfg = config.clone();
        cfg.history.clear();
        chains.push(Chain {
            label,
            // The FROM expansion (what a named context stands for), as progress shows it.
            base_display: match &context {
                Some((_, NamedInput::Image(r))) => format!("FROM {r}"),
                Some(_) => "FROM scratch".into(),
                None => format!("FROM {base_name}"),
            },
            base,
            steps,
            config: cfg,
            history,
        });
        chain_of.insert(i, chains.len() - 1);
    }
    Ok(Lowered {
        plan: Plan {
            target: chain_of[&target],
            chains,
        },
        base_env,
    })
}

/// What `docker import --change` (and `docker commit --change`) accepts: dockerd's
/// `validCommitCommands`.
const CHANGE_COMMANDS: &[&str] = &[
    "cmd",
    "entrypoint",
    "env",
    "expose",
    "healthcheck",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Applies `docker import --change` values to `config` as dockerd's `BuildFromConfig` does: the
/// changes, one per line, are parsed as a Dockerfile; each must be one of [`CHANGE_COMMANDS`]
/// (else `<instruction> is not a valid change command`) and is applied through the frontend's own
/// instruction handling (expansion with the config's ENV, shell form with its SHELL, relative
/// WORKDIR, ENTRYPOINT resetting CMD...). Nothing runs and no history is added.
pub fn apply_changes(config: &mut ImageConfig, changes: &[String]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    const FILE: &str = "Dockerfile";
    let text = changes.join("\n");
    let ast = hoist_parser::parse(text.as_bytes(), FILE).map_err(|e| anyhow!("{e}"))?;
    if let Some(n) = ast
        .children
        .iter()
        .find(|n| !CHANGE_COMMANDS.contains(&n.name().as_str()))
    {
        bail!("{} is not a valid change command", n.name());
    }
    let opts = FrontendOptions::new(FILE);
    // dockerd's CMD leaves ArgsEscaped alone (BuildKit's sets it).
    let args_escaped = config.config.as_ref().and_then(|c| c.args_escaped);
    let budget = Budget::default();
    let mut st = StageState::over(config, &opts, ast.directives.escape, &budget);
    for n in &ast.children {
        let c = ins::parse_instruction(n, FILE).map_err(|e| anyhow!(e.buildkit_message()))?;
        st.apply(&c, &[], &|_| bail!("no --from in a change"))?;
    }
    st.cc.args_escaped = args_escaped;
    st.finish();
    Ok(())
}

/// ARGs BuildKit never puts in the environment.
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// The variables of a stage as BuildKit's dispatch state keeps them. A stage built `FROM` another
/// starts from that stage's scope (its ARGs included, build-arg overrides and all), with the image
/// config's ENV applied again on top.
#[derive(Debug, Clone, Default)]
struct Scope {
    /// The environment expansion and RUN see: image ENV, ENV lines and ARG values, the latest
    /// setting of a name wins (so `ENV A=1` then `ARG A=2` gives 2), in order of last setting.
    env: Vec<(String, String)>,
    /// Every ARG declared so far (a base stage's first), with its value; None: declared without
    /// one. RUN's history lists them (`RUN |2 A=1 UNSET= ...`).
    args: Vec<(String, Option<String>)>,
}

impl Scope {
    fn set(&mut self, k: &str, v: &str) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.to_string()));
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// BuildKit's `runCommandString` prefix: each declared ARG once (first declaration's place),
    /// valued from the environment, else its own value, else empty.
    fn run_args(&self) -> Vec<String> {
        let mut shown: Vec<(String, String)> = Vec::new();
        for (k, own) in &self.args {
            let v = self
                .get(k)
                .map(String::from)
                .or_else(|| own.clone())
                .unwrap_or_default();
            match shown.iter_mut().find(|(key, _)| key == k) {
                Some(e) => e.1 = v,
                None => shown.push((k.clone(), v)),
            }
        }
        shown.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// The state of one stage while its instructions are applied.
struct StageState<'c> {
    cc: ContainerConfig,
    config: &'c mut ImageConfig,
    scope: Scope,
    shell: Vec<String>,
    workdir: String,
    cmd_set: bool,
    /// The stage is in `--no-cache-filter`.
    no_cache: bool,
    steps: Vec<Step>,
    history: Vec<History>,
    opts: &'c FrontendOptions,
    escape: char,
    budget: &'c Budget,
}

impl<'c> StageState<'c> {
    /// A stage over its base's `config`; `inherited`: the scope of the stage it is built on.
    fn new(
        config: &'c mut ImageConfig,
        opts: &'c FrontendOptions,
        escape: char,
        budget: &'c Budget,
        inherited: Option<Scope>,
    ) -> Self {
        let mut st = StageState::over(config, opts, escape, budget);
        // As BuildKit: every stage has a PATH.
        let env = st.cc.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        if let Some(mut scope) = inherited {
            for e in st.cc.env.iter().flatten() {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                scope.set(k, v);
            }
            st.scope = scope;
        }
        st
    }

    /// The state over `config` as it is.
    fn over(
        config: &'c mut ImageConfig,
        opts: &'c FrontendOptions,
        escape: char,
        budget: &'c Budget,
    ) -> Self {
        let cc = config.config.clone().unwrap_or_default();
        let shell = cc
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        let workdir = cc
            .working_dir
            .as_deref()
            .filter(|w| !w.is_empty())
            .map_or_else(|| "/".into(), |w| clean(&format!("/{w}")));
        let env = cc
            .env
            .iter()
            .flatten()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        StageState {
            cc,
            config,
            scope: Scope {
                env,
                args: Vec::new(),
            },
            shell,
            workdir,
            cmd_set: false,
            no_cache: false,
            steps: Vec::new(),
            history: Vec::new(),
            opts,
            escape,
            budget,
        }
    }

    /// Writes the container config back and returns the steps and history entries.
    fn finish(self) -> (Vec<Step>, Vec<History>) {
        self.config.config = Some(self.cc);
        (self.steps, self.history)
    }

    /// Variables for expansion: the stage's environment ([`Scope::env`]).
    fn vars(&self) -> Vec<(String, String)> {
        self.scope.env.clone()
    }

    fn expand(&self, word: &str, vars: &[(String, String)]) -> Result<String> {
        let v = ins::expand(word, vars, self.escape).map_err(|e| anyhow!("{e}"))?;
        self.budget.charge(v.len())?;
        Ok(v)
    }

    fn set_env(&mut self, k: &str, v: &str) {
        self.scope.set(k, v);
        let env = self.cc.env.get_or_insert_with(Vec::new);
        let prefix = format!("{k}=");
        if let Some(e) = env.iter_mut().find(|e| e.starts_with(&prefix)) {
            *e = format!("{k}={v}");
        } else {
            env.push(format!("{k}={v}"));
        }
    }

    /// The first step of a stage whose root is the named local context `key`: its files, as one
    /// layer (BuildKit's exporter names such a layer after its source, outside the frontend's
    /// history entries).
    fn local_root(&mut self, key: &str, from: &Source) {
        self.history.push(History {
            created_by: Some(format!("local source for {key}")),
            comment: Some("buildkit.exporter.image.v0".into()),
            ..Default::default()
        });
        self.steps.push(Step {
            display: format!("COPY --from={key} . /"),
            location: self.excerpt(from),
            no_cache: self.no_cache,
            op: Op::File(FileOp {
                from: Input::Local(key.to_string()),
                sources: vec![CopySource::Path(".".into())],
                dest: "/".into(),
                chown: None,
                chmod: None,
                exclude: Vec::new(),
                parents: false,
                link: false,
                unpack: false,
                checksum: None,
                keep_git_dir: false,
            }),
        });
    }

    /// A history entry, as BuildKit's `commitToHistory`: `layer` when the step adds one.
    fn commit(&mut self, created_by: String, layer: bool) -> Result<()> {
        self.budget.charge(created_by.len())?;
        self.history.push(History {
            created_by: Some(created_by),
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: !layer,
            ..Default::default()
        });
        Ok(())
    }

    /// The Dockerfile excerpt a failure of the instruction at `src` shows.
    fn excerpt(&self, src: &Source) -> String {
        crate::frontend::snippet::render(
            &self.opts.file_name,
            &self.opts.text,
            src.start_line,
            src.end_line,
        )
    }

    /// A layer-producing step and its history entry.
    fn step(&mut self, c: &Command, op: Op, created_by: String) -> Result<()> {
        self.commit(created_by, true)?;
        self.steps.push(Step {
            display: display_of(&c.source),
            location: self.excerpt(&c.source),
            op,
            no_cache: self.no_cache,
        });
        Ok(())
    }

    fn apply(
        &mut self,
        c: &Command,
        global: &[(String, String)],
        input_of: &dyn Fn(&str) -> Result<Input>,
    ) -> Result<()> {
        match &c.instruction {
            Instruction::Env(kvs) | Instruction::Label(kvs) => {
                let is_env = matches!(c.instruction, Instruction::Env(_));
                let kw = if is_env { "ENV" } else { "LABEL" };
                // Pairs on one line see the environment from before the line.
                let vars = self.vars();
                let mut shown = Vec::new();
                for kv in kvs {
                    let k = self.expand(&kv.key, &vars)?;
                    let v = self.expand(&kv.value, &vars)?;
                    if k.is_empty() {
                        bail!("{kw} names can not be blank");
                    }
                    if is_env {
                        self.set_env(&k, &v);
                    } else {
                        self.cc
                            .labels
                            .get_or_insert_with(BTreeMap::new)
                            .insert(k.clone(), v.clone());
                    }
                    shown.push(format!("{k}={v}"));
                }
                self.commit(format!("{kw} {}", shown.join(" ")), false)?;
            }
            Instruction::Arg(decls) => {
                let mut shown = Vec::new();
                for d in decls {
                    let val = match self.opts.build_args.get(&d.name) {
                        Some(b) => Some(b.clone()),
                        None => match &d.default {
                            Some(v) => Some(self.expand(v, &self.vars())?),
                            None => global
                                .iter()
                                .rev()
                                .find(|(k, _)| *k == d.name)
                                .map(|(_, v)| v.clone()),
                        },
                    };
                    shown.push(match &val {
                        Some(v) => format!("{}={v}", d.name),
                        None => d.name.clone(),
                    });
                    if let Some(v) = &val
                        && !NON_ENV_ARGS.contains(&d.name.as_str())
                    {
                        self.scope.set(&d.name, v);
                    }
                    self.scope.args.push((d.name.clone(), val));
                }
                self.commit(format!("ARG {}", shown.join(" ")), false)?;
            }
            Instruction::Workdir(w) => self.workdir(c, w)?,
            Instruction::User(u) => {
                let u = self.expand(u, &self.vars())?;
                self.cc.user = Some(u.clone());
                self.commit(format!("USER {u}"), false)?;
            }
            Instruction::Cmd(cmd) | Instruction::Entrypoint(cmd) => {
                let v = match cmd {
                    ShellOrExec::Exec(argv) => argv.clone(),
                    ShellOrExec::Shell(text) if text.is_empty() => Vec::new(),
                    ShellOrExec::Shell(text) => {
                        let mut s = self.shell.clone();
                        s.push(text.clone());
                        s
                    }
                };
                let kw = if matches!(c.instruction, Instruction::Cmd(_)) {
                    self.cc.cmd = Some(v.clone());
                    // As BuildKit's dispatchCmd, whatever the form (Docker's legacy field).
                    self.cc.args_escaped = Some(true);
                    self.cmd_set = true;
                    "CMD"
                } else {
                    self.cc.entrypoint = Some(v.clone());
                    if !self.cmd_set {
                        self.cc.cmd = None;
                    }
                    "ENTRYPOINT"
                };
                self.commit(format!("{kw} {}", go_quote_list(&v)), false)?;
            }
            Instruction::Shell(argv) => {
                self.shell = argv.clone();
                self.cc.shell = Some(argv.clone());
                self.commit(format!("SHELL [{}]", argv.join(" ")), false)?;
            }
            Instruction::Expose(words) => {
                let vars = self.vars();
                // As BuildKit: the words as written are sorted, then each is expanded and parsed
                // (a range gives one entry per port); history lists them all, duplicates kept.
                let mut sorted = words.clone();
                sorted.sort();
                let mut ports = Vec::new();
                for w in &sorted {
                    let expanded = ins::expand_words(w, vars.as_slice(), self.escape)
                        .map_err(|e| anyhow!("{e}"))?;
                    self.budget.charge(expanded.iter().map(String::len).sum())?;
                    for p in expanded {
                        ports.extend(values::parse_expose(&p).map_err(|e| anyhow!(e))?);
                    }
                }
                let map = self.cc.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in &ports {
                    map.insert(p.clone(), Value::Object(Default::default()));
                }
                self.commit(format!("EXPOSE [{}]", ports.join(" ")), false)?;
            }
            Instruction::Volume(paths) => {
                let vars = self.vars();
                let mut vols = Vec::new();
                for p in paths {
                    let v = self.expand(p, &vars)?;
                    if v.is_empty() {
                        bail!("VOLUME specified can not be an empty string");
                    }
                    vols.push(v);
                }
                let map = self.cc.volumes.get_or_insert_with(BTreeMap::new);
                for v in &vols {
                    map.insert(v.clone(), Value::Object(Default::default()));
                }
                self.commit(format!("VOLUME [{}]", vols.join(" ")), false)?;
            }
            Instruction::StopSignal(s) => {
                let s = self.expand(s, &self.vars())?;
                values::parse_signal(&s).map_err(|e| anyhow!(e))?;
                self.cc.stop_signal = Some(s.clone());
                self.commit(format!("STOPSIGNAL {s}"), false)?;
            }
            Instruction::Healthcheck(h) => {
                let hc = healthcheck(h);
                self.commit(format!("HEALTHCHECK {}", healthcheck_history(&hc)), false)?;
                self.cc.healthcheck = Some(hc);
            }
            // As BuildKit: a trigger in the config, no history entry.
            Instruction::OnBuild { expression, .. } => self
                .cc
                .on_build
                .get_or_insert_with(Vec::new)
                .push(expression.clone()),
            Instruction::Maintainer(m) => {
                self.config.author = Some(m.clone());
                self.commit(format!("MAINTAINER {m}"), false)?;
            }
            Instruction::Run {
                mounts,
                network,
                devices,
                cmd,
                heredocs,
                ..
            } => {
                if !devices.is_empty() {
                    // `--device` is a labs-channel flag; the stable frontend does not know it.
                    bail!("unknown flag: --device");
                }
                let network = match network {
                    ins::NetworkMode::Default => self.opts.network,
                    ins::NetworkMode::None => NetworkMode::None,
                    ins::NetworkMode::Host => NetworkMode::Host,
                };
                self.run(c, mounts, network, cmd, heredocs, input_of)?;
            }
            Instruction::Copy(a) => self.copy(c, a, false, input_of)?,
            Instruction::Add(a) => self.copy(c, a, true, input_of)?,
        }
        Ok(())
    }

    /// WORKDIR: the config's working directory, and (as BuildKit's dispatchWorkdir) a step that
    /// creates it with its missing parents, mode 0755, owned by the current USER (BuildKit's mkdir
    /// gets `llb.WithUser(USER)`; root when no USER is set), so the directory exists even when
    /// nothing later writes to it. Like BuildKit's, the step always adds a layer, an empty one when
    /// the directory already exists (the 32-byte `4f4fb700ef54...` layer of many official images);
    /// `WORKDIR /` adds none.
    ///
    /// As BuildKit's `NormalizeWorkdir`, an absolute path is kept as written (`/usr/src/` keeps
    /// its slash in the config and history), a relative one is joined to the current directory
    /// and cleaned, an empty one is the current directory.
    fn workdir(&mut self, c: &Command, w: &str) -> Result<()> {
        let w = self.expand(w, &self.vars())?;
        let wd = if w.starts_with('/') {
            w
        } else if w.is_empty() {
            self.cc
                .working_dir
                .clone()
                .filter(|d| d.starts_with('/'))
                .unwrap_or_else(|| self.workdir.clone())
        } else {
            clean(&format!("{}/{w}", self.workdir))
        };
        self.workdir = clean(&wd);
        self.cc.working_dir = Some(wd.clone());
        let created_by = format!("WORKDIR {wd}");
        if wd == "/" {
            self.commit(created_by, false)?;
            return Ok(());
        }
        let op = Op::Mkdir(MkdirOp {
            path: self.workdir.clone(),
            user: self.cc.user.clone().filter(|u| !u.is_empty()),
        });
        self.step(c, op, created_by)?;
        Ok(())
    }

    fn run(
        &mut self,
        c: &Command,
        mount_specs: &[String],
        network: NetworkMode,
        cmd: &ShellOrExec,
        heredocs: &[Heredoc],
        input_of: &dyn Fn(&str) -> Result<Input>,
    ) -> Result<()> {
        let mut script_mount = None;
        // What history shows when it is not `args`.
        let mut shown_args = None;
        let args: Vec<String> = match cmd {
            ShellOrExec::Exec(argv) => argv.clone(),
            ShellOrExec::Shell(text) => {
                let mut s = self.shell.clone();
                if heredocs.len() == 1 && is_lone_heredoc(text) {
                    let body = heredocs[0].body();
                    if let Some(line) = body.strip_prefix("#!") {
                        // A script with its own interpreter (as BuildKit): the file is mounted at
                        // /dev/pipes/NAME (never in the layer) and the shebang's interpreter runs it.
                        let name = heredocs[0].name.clone();
                        let target = format!("/dev/pipes/{name}");
                        s = line
                            .lines()
                            .next()
                            .unwrap_or("")
                            .split_whitespace()
                            .map(String::from)
                            .collect();
                        if s.is_empty() {
                            bail!("heredoc {name}: empty shebang line");
                        }
                        // BuildKit runs `SHELL /dev/pipes/NAME` (its history says so); the
                        // interpreter is what that shell ends up running.
                        let mut buildkit_args = self.shell.clone();
                        buildkit_args.push(target.clone());
                        shown_args = Some(buildkit_args);
                        s.push(target.clone());
                        script_mount = Some(ExecMount::Bind {
                            target,
                            from: Input::Inline(vec![(name.clone(), body.clone())]),
                            source: name,
                            readwrite: false,
                        });
                    } else {
                        s.push(body);
                    }
                } else if !heredocs.is_empty() {
                    let mut full = text.clone();
                    for h in heredocs {
                        full.push('\n');
                        full.push_str(&h.content);
                        full.push_str(&h.name);
                    }
                    s.push(full);
                } else {
                    s.push(text.clone());
                }
                s
            }
        };
        // Environment: the stage's (image ENV, ENV lines, ARG values), then proxy build args.
        let mut env: Vec<String> = self
            .scope
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.budget.charge(env.iter().map(String::len).sum())?;
        let used_args = self.scope.run_args();
        for p in ins::PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(p) {
                env.push(format!("{p}={v}"));
            }
        }
        let vars = self.vars();
        let mut mounts: Vec<ExecMount> = script_mount.into_iter().collect();
        for (i, m) in mount_specs.iter().enumerate() {
            mounts.push(mount::lower_mount(
                m,
                self.escape,
                &vars,
                &self.workdir,
                i,
                input_of,
            )?);
        }
        let mut created_by = String::from("RUN ");
        if !used_args.is_empty() {
            created_by.push_str(&format!("|{} {} ", used_args.len(), used_args.join(" ")));
        }
        created_by.push_str(&shown_args.as_ref().unwrap_or(&args).join(" "));
        created_by.push_str(" # buildkit");
        let op = Op::Exec(ExecOp {
            args,
            env,
            cwd: self.workdir.clone(),
            user: self.cc.user.clone().filter(|u| !u.is_empty()),
            network,
            mounts,
            sandbox: self.opts.run.clone(),
        });
        self.step(c, op, created_by)?;
        Ok(())
    }

    fn copy(
        &mut self,
        c: &Command,
        a: &CopyArgs,
        add: bool,
        input_of: &dyn Fn(&str) -> Result<Input>,
    ) -> Result<()> {
        let kw = if add { "ADD" } else { "COPY" };
        let vars = self.vars();
        let x = |s: &str| self.expand(s, &vars);
        let mut from = match &a.from {
            Some(f) => input_of(f)?,
            None => Input::Context,
        };
        let mut sources = Vec::new();
        let mut shown_sources = Vec::new();
        for s in &a.sources {
            let v = x(s)?;
            shown_sources.push(v.clone());
            sources.push(source_of(v, add)?);
        }
        if !a.inline.is_empty() {
            if !sources.is_empty() {
                bail!("mixing heredoc and path sources is not supported");
            }
            let mut inline = Vec::new();
            for f in &a.inline {
                let body = if f.expand {
                    let v = ins::expand_heredoc(&f.data, vars.as_slice(), self.escape)
                        .map_err(|e| anyhow!("{e}"))?;
                    self.budget.charge(v.len())?;
                    v
                } else {
                    f.data.clone()
                };
                inline.push((f.name.clone(), body));
            }
            // History shows heredocs as `<<NAME`.
            sources = inline
                .iter()
                .map(|(n, _)| CopySource::Path(n.clone()))
                .collect();
            shown_sources = inline.iter().map(|(n, _)| format!("<<{n}")).collect();
            from = Input::Inline(inline);
        }
        let dest_word = x(&a.dest)?;
        let trailing = dest_word.ends_with('/') || dest_word.ends_with("/.") || dest_word == ".";
        let mut dest = if dest_word.starts_with('/') {
            clean(&dest_word)
        } else {
            clean(&format!("{}/{dest_word}", self.workdir))
        };
        if trailing && dest != "/" {
            dest.push('/');
        }
        let chown = a
            .chown
            .as_deref()
            .map(x)
            .transpose()?
            .filter(|c| !c.is_empty());
        let chmod_word = a.chmod.as_deref().map(x).transpose()?;
        let chmod = match chmod_word.as_deref() {
            Some(c) => hoist_parser::chmod::parse_chmod(c).map_err(|e| anyhow!(e))?,
            None => None,
        };
        let checksum = a.checksum.as_deref().map(x).transpose()?;
        if checksum.is_some() {
            if sources.len() != 1 {
                bail!("checksum can't be specified for multiple sources");
            }
            if matches!(sources[0], CopySource::Path(_)) {
                bail!("checksum requires HTTP(S) or Git sources");
            }
        }
        // As BuildKit's commit message: flags, sources, then the destination (all expanded).
        let mut created_by = kw.to_string();
        if a.parents {
            created_by.push_str(" --parents");
        }
        if let Some(c) = &chown {
            created_by.push_str(&format!(" --chown={c}"));
        }
        if let Some(c) = chmod_word.as_deref().filter(|c| !c.is_empty()) {
            created_by.push_str(&format!(" --chmod={c}"));
        }
        created_by.push_str(&format!(
            " {} {dest_word} # buildkit",
            shown_sources.join(" ")
        ));
        let op = Op::File(FileOp {
            from,
            sources,
            dest,
            chown,
            chmod,
            exclude: a.exclude.clone(),
            parents: a.parents,
            link: a.link,
            unpack: add && a.unpack.unwrap_or(true),
            checksum,
            keep_git_dir: a.keep_git_dir.unwrap_or(false),
        });
        self.step(c, op, created_by)?;
        Ok(())
    }
}

/// What a COPY/ADD source string is, as BuildKit's `dispatchCopy` decides: a git repository (ADD
/// only; `github.com/...` without a scheme reads as a path), an http(s) URL (ADD only), or a path.
fn source_of(v: String, add: bool) -> Result<CopySource> {
    let is_url = v.starts_with("http://") || v.starts_with("https://");
    if crate::context::git::is_git_url(&v) && (is_url || !v.starts_with("github.com/") || add) {
        if !add {
            if is_url {
                bail!("source can't be a URL for COPY");
            }
            bail!("source can't be a git ref for COPY");
        }
        return Ok(CopySource::Git { url: v });
    }
    if is_url {
        if !add {
            bail!("source can't be a URL for COPY");
        }
        return Ok(CopySource::Http { url: v });
    }
    Ok(CopySource::Path(v))
}

/// The image config's healthcheck from the typed one (zero durations and retries: unset).
fn healthcheck(h: &ins::Healthcheck) -> Healthcheck {
    match h {
        ins::Healthcheck::None => Healthcheck {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        },
        ins::Healthcheck::Cmd {
            test,
            interval_ns,
            timeout_ns,
            start_period_ns,
            start_interval_ns,
            retries,
        } => {
            let d = |ns: u64| (ns != 0).then_some(ns as i64);
            Healthcheck {
                test: Some(test.clone()),
                interval: d(*interval_ns),
                timeout: d(*timeout_ns),
                start_period: d(*start_period_ns),
                start_interval: d(*start_interval_ns),
                retries: (*retries != 0).then_some(i64::from(*retries)),
            }
        }
    }
}

/// A healthcheck as current BuildKit's history shows it: Go's `%+v` of the config value,
/// `{Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:2}`.
/// (BuildKit 0.25's frontend 1.19 printed `%q` of the pointer, `&{["CMD-SHELL" "true"] "5s" ...}`;
/// dockerfile2llb's dispatchHealthcheck has used `%+v` since.)
fn healthcheck_history(h: &Healthcheck) -> String {
    let d = |v: Option<i64>| go_duration(v.unwrap_or(0));
    format!(
        "{{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        h.test.as_deref().unwrap_or(&[]).join(" "),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        d(h.start_interval),
        h.retries.unwrap_or(0)
    )
}

/// The instruction as progress shows it: its first line, keyword upper-cased.
fn display_of(src: &Source) -> String {
    let first = src.original.lines().next().unwrap_or("").trim();
    let mut parts = first.splitn(2, char::is_whitespace);
    let kw = parts.next().unwrap_or("").to_uppercase();
    match parts.next() {
        Some(rest) => format!("{kw} {}", rest.trim()),
        None => kw,
    }
}

fn is_lone_heredoc(text: &str) -> bool {
    let t = text.trim();
    t.starts_with("<<") && !t.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_parser::chmod::Chmod;

    fn opts() -> FrontendOptions {
        FrontendOptions {
            platform: "linux/amd64".into(),
            ..FrontendOptions::new("Dockerfile")
        }
    }

    fn plan(text: &str, o: &FrontendOptions) -> Result<Plan> {
        let df = hoist_parser::parse_and_validate(text.as_bytes(), "Dockerfile").unwrap();
        lower(&df, o, &mut |n: &str| bail!("no image {n} in this test")).map(|l| l.plan)
    }

    #[test]
    fn only_needed_stages_are_lowered() {
        let df = "ARG X=1\nFROM scratch AS a\nFROM scratch AS b\nCOPY --from=a /x /x\nFROM scratch AS c\n";
        let p = plan(df, &opts()).unwrap();
        assert_eq!(p.chains.len(), 1, "only c");
        let mut o = opts();
        o.target = Some("B".into());
        let p = plan(df, &o).unwrap();
        assert_eq!(p.chains.len(), 2);
        assert_eq!(p.chains[p.target].label, "b");
        match &p.chains[p.target].steps[0].op {
            Op::File(f) => assert_eq!(f.from, Input::Chain(0)),
            other => panic!("{other:?}"),
        }
        // A mount's `from=` is a dependency too.
        let df =
            "FROM scratch AS a\nFROM scratch AS b\nRUN --mount=type=bind,from=a,target=/a true\n";
        assert_eq!(plan(df, &opts()).unwrap().chains.len(), 2);
        let e = plan(
            "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n",
            &{
                let mut o = opts();
                o.target = Some("a".into());
                o
            },
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains(
                "cannot copy from stage \"b\", it needs to be defined before current stage \"a\""
            ),
            "{e:#}"
        );
    }

    #[test]
    fn named_contexts_replace_stages_and_sources() {
        let mut o = opts();
        o.contexts.insert("tools".into(), NamedInput::Local);
        o.contexts.insert("empty".into(), NamedInput::Scratch);
        o.contexts.insert("src".into(), NamedInput::Local);
        let df = "FROM scratch AS tools\nRUN false\nFROM scratch\nCOPY --from=tools /a /a\nCOPY --from=empty /c /c\nRUN --mount=from=src,target=/m true\n";
        let p = plan(df, &o).unwrap();
        assert_eq!(p.chains.len(), 2);
        // The replaced stage runs none of its instructions: it is the context's files.
        let tools = &p.chains[0];
        assert_eq!(tools.steps.len(), 1);
        match &tools.steps[0].op {
            Op::File(f) => {
                assert_eq!(f.from, Input::Local("tools".into()));
                assert_eq!(
                    (f.sources.as_slice(), f.dest.as_str()),
                    (&[CopySource::Path(".".into())][..], "/")
                );
            }
            other => panic!("{other:?}"),
        }
        let last = &p.chains[1];
        let froms: Vec<Input> = last
            .steps
            .iter()
            .map(|s| match &s.op {
                Op::File(f) => f.from.clone(),
                Op::Exec(e) => match &e.mounts[0] {
                    ExecMount::Bind { from, .. } => from.clone(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            froms,
            [
                Input::Chain(0),
                Input::Inline(Vec::new()),
                Input::Local("src".into())
            ]
        );
        // `FROM src` starts from the directory.
        let p = plan("FROM src\nRUN true\n", &o).unwrap();
        assert_eq!(p.chains[0].steps.len(), 2);
        assert_eq!(
            p.chains[0].history[0].created_by.as_deref(),
            Some("local source for src")
        );
    }

    #[test]
    fn import_changes_go_through_the_frontend() {
        let mut c = ImageConfig::default();
        let changes: Vec<String> = [
            "ENV A=1 B=two",
            "ENV C=${A}-$B",
            "CMD echo $A",
            "WORKDIR /srv",
            "WORKDIR app",
            "EXPOSE 80 53/udp",
            "LABEL k=v",
            "USER nobody",
            "HEALTHCHECK --interval=5s CMD true",
            "ONBUILD RUN make",
            "STOPSIGNAL SIGTERM",
            "VOLUME /data",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut c, &changes).unwrap();
        let cc = c.config.unwrap();
        assert_eq!(
            cc.env.unwrap(),
            ["A=1", "B=two", "C=1-two"],
            "no PATH is added"
        );
        assert_eq!(cc.cmd.unwrap(), ["/bin/sh", "-c", "echo $A"]);
        assert_eq!(cc.working_dir.as_deref(), Some("/srv/app"));
        let ports: Vec<String> = cc.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(cc.labels.unwrap()["k"], "v");
        assert_eq!(cc.user.as_deref(), Some("nobody"));
        assert_eq!(cc.healthcheck.unwrap().interval, Some(5_000_000_000));
        assert_eq!(cc.on_build.unwrap(), ["RUN make"]);
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGTERM"));
        assert!(cc.volumes.unwrap().contains_key("/data"));
        assert!(c.history.is_empty());
        // ENTRYPOINT resets a CMD set before this build step, as in Docker.
        let mut c = ImageConfig::default();
        apply_changes(&mut c, &["CMD [\"a\"]".into()]).unwrap();
        apply_changes(&mut c, &["ENTRYPOINT [\"e\"]".into()]).unwrap();
        assert_eq!(c.config.as_ref().unwrap().cmd, None);
        let e = |ch: &str| {
            apply_changes(&mut ImageConfig::default(), &[ch.to_string()])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(e("RUN make"), "run is not a valid change command");
        assert_eq!(e("COPY a b"), "copy is not a valid change command");
        assert_eq!(e("FROM x"), "from is not a valid change command");
        assert!(
            e("EXPOSE 80/xyz").contains("invalid proto: xyz"),
            "{}",
            e("EXPOSE 80/xyz")
        );
        assert!(e("ENV").contains("ENV"), "{}", e("ENV"));
    }

    #[test]
    fn args_env_and_expansion() {
        let df = "ARG V=global\nFROM scratch\nARG V\nARG W=${V}-w\nENV A=$W B=${A:-unset}\nWORKDIR /x\nWORKDIR y\nRUN echo hi\n";
        let mut o = opts();
        o.build_args.insert("V".into(), "cli".into());
        let p = plan(df, &o).unwrap();
        let c = &p.chains[0];
        let env = c.config.config.as_ref().unwrap().env.clone().unwrap();
        assert!(env.contains(&"A=cli-w".to_string()), "{env:?}");
        // Pairs on one ENV line see the environment from before the line.
        assert!(env.contains(&"B=unset".to_string()), "{env:?}");
        let exec = c
            .steps
            .iter()
            .find_map(|s| match &s.op {
                Op::Exec(e) => Some(e),
                _ => None,
            })
            .unwrap();
        assert_eq!(exec.cwd, "/x/y");
        assert_eq!(exec.args, ["/bin/sh", "-c", "echo hi"]);
        assert!(exec.env.contains(&"V=cli".to_string()));
        let run = c
            .history
            .iter()
            .find(|h| h.created_by.as_deref().unwrap().starts_with("RUN"))
            .unwrap();
        assert_eq!(
            run.created_by.as_deref(),
            Some("RUN |2 V=cli W=cli-w /bin/sh -c echo hi # buildkit")
        );
        assert!(
            c.history
                .iter()
                .all(|h| h.comment.as_deref() == Some("buildkit.dockerfile.v0"))
        );
    }

    #[test]
    fn workdir_is_a_step_owned_by_the_user() {
        let df = "FROM scratch\nWORKDIR /\nUSER app:staff\nWORKDIR a/b\nWORKDIR /a/b\n";
        let c = &plan(df, &opts()).unwrap().chains[0];
        let dirs: Vec<(&str, Option<&str>)> = c
            .steps
            .iter()
            .map(|s| match &s.op {
                Op::Mkdir(m) => (m.path.as_str(), m.user.as_deref()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            dirs,
            [("/a/b", Some("app:staff")), ("/a/b", Some("app:staff"))]
        );
        let layers: Vec<(&str, bool)> = c
            .history
            .iter()
            .map(|h| (h.created_by.as_deref().unwrap(), h.empty_layer))
            .collect();
        assert_eq!(
            layers,
            [
                ("WORKDIR /", true),
                ("USER app:staff", true),
                ("WORKDIR /a/b", false),
                ("WORKDIR /a/b", false)
            ]
        );
        assert_eq!(c.steps[0].display, "WORKDIR a/b");
    }

    #[test]
    fn copy_flags_and_history() {
        let df = "FROM scratch\nARG OWNER=1:2 DIR=/dst\nCOPY --chown=$OWNER --chmod=0640 a $DIR/\n";
        let p = plan(df, &opts()).unwrap();
        let c = &p.chains[0];
        match &c.steps[0].op {
            Op::File(f) => {
                assert_eq!(f.chown.as_deref(), Some("1:2"));
                assert_eq!(f.chmod, Some(Chmod::Octal(0o640)));
                assert_eq!(f.dest, "/dst/");
                assert_eq!(f.from, Input::Context);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.history.last().unwrap().created_by.as_deref(),
            Some("COPY --chown=1:2 --chmod=0640 a /dst/ # buildkit")
        );
        let e = plan("FROM scratch\nCOPY https://example.com/x /x\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("source can't be a URL for COPY"));
        let e = plan("FROM scratch\nRUN --device=/dev/null true\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("unknown flag: --device"));
    }

    #[test]
    fn conversion_errors() {
        let e = plan("FROM scratch\nEXPOSE 80/xyz\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("invalid proto: xyz"), "{e:#}");
        let e = plan("FROM scratch\nSTOPSIGNAL NOPE\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("invalid signal: NOPE"));
        let e = plan("FROM scratch\nCOPY --chmod=999 a b\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("invalid chmod parameter: '999'"));
        let e = plan("FROM scratch\nCOPY --chmod=u=q a b\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("invalid chmod parameter: 'u=q': invalid syntax"));
        // The error carries the numbered excerpt of its instruction.
        let text = "FROM scratch\nARG P=80/xyz\nEXPOSE $P\n";
        let o = FrontendOptions {
            text: text.into(),
            ..opts()
        };
        let e = plan(text, &o).unwrap_err();
        let l = e.downcast_ref::<Located>().expect("a located error");
        assert_eq!(
            l.excerpt,
            "Dockerfile:3\n--------------------\n   1 |     FROM scratch\n   2 |     ARG P=80/xyz\n   3 | >>> EXPOSE $P\n   4 |     \n--------------------\n"
        );
        assert_eq!(
            e.to_string(),
            "failed to solve: invalid port: \"80/xyz\": invalid proto: xyz"
        );
        let mut o = opts();
        o.target = Some("zzz".into());
        let e = plan("FROM scratch\n", &o).unwrap_err();
        assert_eq!(e.to_string(), "target stage \"zzz\" could not be found");
    }

    #[test]
    fn metadata_instructions() {
        let df = "FROM scratch\nEXPOSE 8080 53/udp 8080\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --retries=2 CMD true\nSHELL [\"/bin/sh\", \"-ec\"]\nCMD echo hi\n";
        let p = plan(df, &opts()).unwrap();
        let c = &p.chains[0];
        let cc = c.config.config.as_ref().unwrap();
        let ports: Vec<&String> = cc.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["53/udp", "8080/tcp"]);
        let hc = cc.healthcheck.as_ref().unwrap();
        assert_eq!(
            (hc.interval, hc.retries, hc.timeout),
            (Some(5_000_000_000), Some(2), None)
        );
        assert_eq!(cc.cmd.as_deref().unwrap(), ["/bin/sh", "-ec", "echo hi"]);
        let by: Vec<&str> = c
            .history
            .iter()
            .map(|h| h.created_by.as_deref().unwrap())
            .collect();
        assert_eq!(by[0], "EXPOSE [53/udp 8080/tcp 8080/tcp]");
        assert_eq!(
            by[2],
            "HEALTHCHECK {Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:2}"
        );
        assert!(c.steps.is_empty());
    }

    #[test]
    fn sources_are_typed_by_the_frontend() {
        let src = |v: &str, add: bool| source_of(v.to_string(), add).map_err(|e| e.to_string());
        let git = "https://example.com/r.git#main:sub";
        assert_eq!(src(git, true), Ok(CopySource::Git { url: git.into() }));
        assert_eq!(
            src("git@host:r.git", true),
            Ok(CopySource::Git {
                url: "git@host:r.git".into()
            })
        );
        assert_eq!(
            src("https://example.com/f.tgz", true),
            Ok(CopySource::Http {
                url: "https://example.com/f.tgz".into()
            })
        );
        assert_eq!(src("a/*.txt", true), Ok(CopySource::Path("a/*.txt".into())));
        // COPY never fetches: URLs and git refs are refused, as BuildKit does.
        assert_eq!(
            src("https://example.com/f", false).unwrap_err(),
            "source can't be a URL for COPY"
        );
        assert_eq!(
            src("git@host:r.git", false).unwrap_err(),
            "source can't be a git ref for COPY"
        );
        assert_eq!(
            src("github.com/o/r", false),
            Ok(CopySource::Path("github.com/o/r".into()))
        );
        let p = plan("FROM scratch\nADD --checksum=sha256:00 a.txt /\n", &opts());
        assert!(
            format!("{:#}", p.unwrap_err()).contains("checksum requires HTTP(S) or Git sources")
        );
    }
}
