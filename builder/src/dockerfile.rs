//! The Dockerfile frontend: parsed instructions -> a [`Plan`]. Resolves stages and what the target
//! needs, ARG scoping (global, per stage, predefined), variable expansion where Docker expands,
//! ONBUILD triggers of base images, and computes the image config and history each stage produces.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow, bail};
use hoist_image::{ContainerConfig, Healthcheck, History, ImageConfig};
use hoist_parser::ast::{Ast, Node};
use hoist_parser::shell::Lexer;
use serde_json::Value;

use crate::paths::clean;
use crate::plan::{Base, Chain, ExecOp, FileOp, Input, NetworkMode, Op, Plan, Step};

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
}

/// An error tied to a Dockerfile line.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}\n--------------------\n{snippet}\n--------------------\n{message}")]
pub struct LineError {
    pub file: String,
    pub line: usize,
    pub snippet: String,
    pub message: String,
}

/// Resolves a base image name to an image of the store.
pub type ImageResolver<'a> = dyn FnMut(&str) -> Result<hoist_image::Image> + 'a;

const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

struct StageSrc<'a> {
    name: Option<String>,
    from: &'a Node,
    nodes: Vec<&'a Node>,
}

/// Lowers a parsed Dockerfile into a plan.
pub fn lower(ast: &Ast, opts: &FrontendOptions, resolve: &mut ImageResolver<'_>) -> Result<Plan> {
    let lex = Lexer::new(ast.directives.escape);
    let err = |n: &Node, msg: String| -> anyhow::Error {
        LineError {
            file: opts.file_name.clone(),
            line: n.start_line,
            snippet: format!(">>> {}", n.original.trim()),
            message: msg,
        }
        .into()
    };
    if ast.children.is_empty() {
        bail!("the Dockerfile cannot be empty");
    }
    // Predefined platform args.
    let mut parts = opts.platform.split('/');
    let os = parts.next().unwrap_or("linux").to_string();
    let arch = parts
        .next()
        .map(String::from)
        .unwrap_or_else(|| hoist_image::config::host_arch().to_string());
    let variant = parts.next().unwrap_or("").to_string();
    let host = format!("linux/{}", hoist_image::config::host_arch());
    let mut global: Vec<(String, String)> = vec![
        ("TARGETPLATFORM".into(), opts.platform.clone()),
        ("TARGETOS".into(), os.clone()),
        ("TARGETARCH".into(), arch.clone()),
        ("TARGETVARIANT".into(), variant.clone()),
        ("BUILDPLATFORM".into(), host),
        ("BUILDOS".into(), "linux".into()),
        ("BUILDARCH".into(), hoist_image::config::host_arch().into()),
        ("BUILDVARIANT".into(), String::new()),
    ];
    let predefined: BTreeSet<String> = global.iter().map(|(k, _)| k.clone()).collect();

    // Split into global ARGs and stages.
    let mut stages: Vec<StageSrc> = Vec::new();
    for n in &ast.children {
        match n.name().as_str() {
            "from" => {
                if n.args.len() != 1 && !(n.args.len() == 3 && n.args[1].eq_ignore_ascii_case("as"))
                {
                    return Err(err(n, "FROM requires either one or three arguments".into()));
                }
                let name = n.args.get(2).map(|s| s.to_ascii_lowercase());
                if let Some(nm) = &name {
                    let ok = nm.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && nm.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                        });
                    if !ok {
                        return Err(err(
                            n,
                            format!(
                                "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                                n.args[2]
                            ),
                        ));
                    }
                }
                stages.push(StageSrc {
                    name,
                    from: n,
                    nodes: Vec::new(),
                });
            }
            "arg" if stages.is_empty() => {
                for a in &n.args {
                    let (k, v) = split_arg(a);
                    let val = match opts.build_args.get(&k) {
                        Some(b) => Some(b.clone()),
                        None => match v {
                            Some(d) => Some(
                                lex.process_word(&d, &global)
                                    .map_err(|e| err(n, e.to_string()))?,
                            ),
                            None => None,
                        },
                    };
                    global.retain(|(gk, _)| *gk != k);
                    if let Some(v) = val {
                        global.push((k, v));
                    }
                }
            }
            _ if stages.is_empty() => {
                return Err(err(n, "no build stage in current context".into()));
            }
            _ => stages.last_mut().unwrap().nodes.push(n),
        }
    }
    if stages.is_empty() {
        bail!("dockerfile contains no stages to build");
    }
    let stage_index = |name: &str, before: usize| -> Option<usize> {
        let lname = name.to_ascii_lowercase();
        if let Some(i) = stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(lname.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    };
    let target = match &opts.target {
        Some(t) => stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| anyhow!("target stage {t:?} could not be found"))?,
        None => stages.len() - 1,
    };

    // Base names (global args only) and dependencies.
    let mut base_names = Vec::new();
    let mut deps: Vec<BTreeSet<usize>> = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        let b = lex
            .process_word(&s.from.args[0], &global)
            .map_err(|e| err(s.from, e.to_string()))?;
        if b.is_empty() {
            return Err(err(
                s.from,
                format!("base name ({}) should not be blank", s.from.args[0]),
            ));
        }
        let mut d = BTreeSet::new();
        if let Some(j) = stages[..i]
            .iter()
            .position(|x| x.name.as_deref() == Some(b.to_ascii_lowercase().as_str()))
        {
            d.insert(j);
        }
        for n in &s.nodes {
            for f in &n.flags {
                let from = if let Some(v) = f.strip_prefix("--from=") {
                    Some(v.to_string())
                } else if let Some(m) = f.strip_prefix("--mount=") {
                    m.split(',')
                        .find_map(|kv| kv.strip_prefix("from=").map(String::from))
                } else {
                    None
                };
                if let Some(from) = from {
                    if let Some(j) = stage_index(&from, i) {
                        d.insert(j);
                    } else if stages
                        .iter()
                        .any(|x| x.name.as_deref() == Some(from.to_ascii_lowercase().as_str()))
                    {
                        return Err(err(
                            n,
                            format!(
                                "cannot copy from stage {from:?}, it needs to be defined before current stage {:?}",
                                s.name.clone().unwrap_or_else(|| format!("stage-{i}"))
                            ),
                        ));
                    }
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
    let single = stages.len() == 1;
    for (i, s) in stages.iter().enumerate() {
        if !needed.contains(&i) {
            continue;
        }
        let base_name = &base_names[i];
        let (base, mut config) = if base_name == "scratch" {
            let c = ImageConfig {
                architecture: arch.clone(),
                os: os.clone(),
                variant: (!variant.is_empty()).then(|| variant.clone()),
                ..Default::default()
            };
            (Base::Scratch, c)
        } else if let Some(j) = stages[..i]
            .iter()
            .position(|x| x.name.as_deref() == Some(base_name.to_ascii_lowercase().as_str()))
        {
            let c = chain_of[&j];
            (Base::Chain(c), chains[c].config.clone())
        } else {
            let img = resolve(base_name).map_err(|e| err(s.from, format!("{e:#}")))?;
            let c = img.config.clone();
            (
                Base::Image {
                    reference: base_name.clone(),
                    id: img.id().to_string(),
                    diff_ids: c.rootfs.diff_ids.iter().map(|d| d.to_string()).collect(),
                },
                c,
            )
        };
        let label = match &s.name {
            Some(n) => n.clone(),
            None if single => String::new(),
            None => format!("stage-{i}"),
        };
        let mut st = StageState::new(&mut config, opts);
        // ONBUILD triggers of the base image run first.
        let triggers = st.cc.on_build.take().unwrap_or_default();
        let mut trigger_nodes = Vec::new();
        for t in &triggers {
            let mut tn =
                hoist_parser::syntax::parse_line(t, ast.directives.escape).map_err(|e| {
                    err(
                        s.from,
                        format!("onbuild trigger should be a single expression: {e}"),
                    )
                })?;
            tn.start_line = s.from.start_line;
            tn.end_line = s.from.start_line;
            trigger_nodes.push(tn);
        }
        let nodes: Vec<&Node> = trigger_nodes
            .iter()
            .chain(s.nodes.iter().copied())
            .collect();
        for n in nodes {
            st.apply(n, &lex, &global, &predefined, &|from: &str| -> Result<Input> {
                if let Some(j) = stage_index(from, i) {
                    Ok(Input::Chain(chain_of[&j]))
                } else if from.contains('$') {
                    bail!("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
                } else if let Ok(k) = from.parse::<usize>() {
                    bail!("invalid stage index {k}")
                } else {
                    Ok(Input::Image(from.to_string()))
                }
            })
            .map_err(|e| match e.downcast::<LineError>() {
                Ok(le) => le.into(),
                Err(e) => err(n, format!("{e:#}")),
            })?;
        }
        if i == target && !opts.labels.is_empty() {
            let labels = st.cc.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &opts.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        let (steps, history) = st.finish();
        let mut cfg = config.clone();
        cfg.history.clear();
        chains.push(Chain {
            label,
            base_display: format!("FROM {}", s.from.args[0..].join(" ")),
            base,
            steps,
            config: cfg,
            history,
        });
        // Keep the FROM expansion visible in progress.
        let last = chains.len() - 1;
        chains[last].base_display = format!("FROM {base_name}");
        chain_of.insert(i, last);
    }
    Ok(Plan {
        target: chain_of[&target],
        chains,
    })
}

fn split_arg(a: &str) -> (String, Option<String>) {
    match a.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (a.to_string(), None),
    }
}

/// The state of one stage while its instructions are applied.
struct StageState<'c> {
    cc: ContainerConfig,
    config: &'c mut ImageConfig,
    /// Declared ARGs with their values (None: declared without value).
    args: Vec<(String, Option<String>)>,
    shell: Vec<String>,
    workdir: String,
    cmd_set: bool,
    steps: Vec<Step>,
    history: Vec<History>,
    opts: &'c FrontendOptions,
}

impl<'c> StageState<'c> {
    fn new(config: &'c mut ImageConfig, opts: &'c FrontendOptions) -> StageState<'c> {
        let mut cc = config.config.clone().unwrap_or_default();
        if cc.env.is_none() {
            cc.env = Some(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ]);
        }
        let shell = cc
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        let workdir = cc
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        StageState {
            cc,
            config,
            args: Vec::new(),
            shell,
            workdir,
            cmd_set: false,
            steps: Vec::new(),
            history: Vec::new(),
            opts,
        }
    }

    /// Writes the container config back and returns the steps and history entries.
    fn finish(self) -> (Vec<Step>, Vec<History>) {
        self.config.config = Some(self.cc);
        (self.steps, self.history)
    }

    fn env(&self) -> Vec<String> {
        self.cc.env.clone().unwrap_or_default()
    }

    /// Variables for expansion: declared args, then ENV (ENV wins).
    fn vars(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for e in self.env() {
            if let Some((k, val)) = e.split_once('=') {
                v.push((k.to_string(), val.to_string()));
            }
        }
        v
    }

    fn set_env(&mut self, k: &str, v: &str) {
        let env = self.cc.env.get_or_insert_with(Vec::new);
        let prefix = format!("{k}=");
        if let Some(e) = env.iter_mut().find(|e| e.starts_with(&prefix)) {
            *e = format!("{k}={v}");
        } else {
            env.push(format!("{k}={v}"));
        }
    }

    fn meta(&mut self, created_by: String) {
        self.history.push(History {
            created_by: Some(created_by),
            comment: None,
            empty_layer: true,
            ..Default::default()
        });
    }

    fn apply(
        &mut self,
        n: &Node,
        lex: &Lexer,
        global: &[(String, String)],
        predefined: &BTreeSet<String>,
        input_of: &dyn Fn(&str) -> Result<Input>,
    ) -> Result<()> {
        let kw = n.name();
        let x = |s: &str, vars: &Vec<(String, String)>| -> Result<String> {
            lex.process_word(s, vars).map_err(|e| anyhow!("{e}"))
        };
        let flags = Flags::parse(&n.flags);
        let no_flags = || -> Result<()> {
            if let Some(f) = n.flags.first() {
                bail!("unknown flag: {}", f.split('=').next().unwrap_or(f));
            }
            Ok(())
        };
        match kw.as_str() {
            "env" | "label" => {
                no_flags()?;
                if n.args.is_empty() {
                    bail!("{} requires at least one argument", kw.to_uppercase());
                }
                let vars = self.vars();
                let mut shown = Vec::new();
                for t in n.args.chunks(3) {
                    let k = x(&t[0], &vars)?;
                    let v = x(t.get(1).map(String::as_str).unwrap_or(""), &vars)?;
                    if k.is_empty() {
                        bail!("{} names can not be blank", kw.to_uppercase());
                    }
                    if kw == "env" {
                        self.set_env(&k, &v);
                    } else {
                        self.cc
                            .labels
                            .get_or_insert_with(BTreeMap::new)
                            .insert(k.clone(), v.clone());
                    }
                    shown.push(format!("{k}={v}"));
                }
                self.meta(format!("{} {}", kw.to_uppercase(), shown.join(" ")));
            }
            "arg" => {
                if n.args.is_empty() {
                    bail!("ARG requires at least one argument");
                }
                let mut shown = Vec::new();
                for a in &n.args {
                    let (k, d) = split_arg(a);
                    if k.is_empty() {
                        bail!("ARG names can not be blank");
                    }
                    let val = match self.opts.build_args.get(&k) {
                        Some(b) => Some(b.clone()),
                        None => match d {
                            Some(d) => Some(x(&d, &self.vars())?),
                            None => global
                                .iter()
                                .rev()
                                .find(|(gk, _)| *gk == k)
                                .map(|(_, v)| v.clone()),
                        },
                    };
                    let _ = predefined;
                    shown.push(match &val {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    });
                    self.args.retain(|(ak, _)| *ak != k);
                    self.args.push((k, val));
                }
                self.meta(format!("ARG {}", shown.join(" ")));
            }
            "workdir" => {
                no_flags()?;
                let w = n
                    .args
                    .first()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| anyhow!("WORKDIR requires exactly one argument"))?;
                let w = x(w, &self.vars())?;
                self.workdir = if w.starts_with('/') {
                    clean(&w)
                } else {
                    clean(&format!("{}/{w}", self.workdir))
                };
                self.cc.working_dir = Some(self.workdir.clone());
                self.meta(format!("WORKDIR {}", self.workdir));
            }
            "user" => {
                no_flags()?;
                let u = n
                    .args
                    .first()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| anyhow!("USER requires exactly one argument"))?;
                let u = x(u, &self.vars())?;
                self.cc.user = Some(u.clone());
                self.meta(format!("USER {u}"));
            }
            "cmd" | "entrypoint" => {
                no_flags()?;
                let v = if n.json {
                    n.args.clone()
                } else if n.args.is_empty() {
                    Vec::new()
                } else {
                    let mut s = self.shell.clone();
                    s.push(n.args.join(" "));
                    s
                };
                let shown = format!("{} {}", kw.to_uppercase(), go_quote_list(&v));
                if kw == "cmd" {
                    self.cc.cmd = Some(v);
                    self.cmd_set = true;
                } else {
                    self.cc.entrypoint = Some(v);
                    if !self.cmd_set {
                        self.cc.cmd = None;
                    }
                }
                self.meta(shown);
            }
            "shell" => {
                no_flags()?;
                if !n.json {
                    bail!("SHELL requires the arguments to be in JSON form");
                }
                if n.args.is_empty() {
                    bail!("SHELL requires at least one argument");
                }
                self.shell = n.args.clone();
                self.cc.shell = Some(n.args.clone());
                self.meta(format!("SHELL [{}]", n.args.join(" ")));
            }
            "expose" => {
                no_flags()?;
                if n.args.is_empty() {
                    bail!("EXPOSE requires at least one argument");
                }
                let vars = self.vars();
                let mut ports = Vec::new();
                for a in &n.args {
                    for w in lex.process_words(a, &vars).map_err(|e| anyhow!("{e}"))? {
                        ports.extend(parse_ports(&w)?);
                    }
                }
                let map = self.cc.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in &ports {
                    map.insert(p.clone(), Value::Object(Default::default()));
                }
                self.meta(format!(
                    "EXPOSE map[{}]",
                    ports
                        .iter()
                        .map(|p| format!("{p}:{{}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            "volume" => {
                no_flags()?;
                if n.args.is_empty() {
                    bail!("VOLUME requires at least one argument");
                }
                let vars = self.vars();
                let mut vols = Vec::new();
                for a in &n.args {
                    let v = x(a.trim(), &vars)?;
                    if v.is_empty() {
                        bail!("VOLUME specified can not be an empty string");
                    }
                    vols.push(v);
                }
                let map = self.cc.volumes.get_or_insert_with(BTreeMap::new);
                for v in &vols {
                    map.insert(v.clone(), Value::Object(Default::default()));
                }
                self.meta(format!("VOLUME [{}]", vols.join(" ")));
            }
            "stopsignal" => {
                let s = n
                    .args
                    .first()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| anyhow!("STOPSIGNAL requires exactly one argument"))?;
                let s = x(s, &self.vars())?;
                if !valid_signal(&s) {
                    bail!("invalid signal: {s}");
                }
                self.cc.stop_signal = Some(s.clone());
                self.meta(format!("STOPSIGNAL {s}"));
            }
            "healthcheck" => {
                let hc = parse_healthcheck(n, &flags, &self.shell)?;
                self.meta(format!(
                    "HEALTHCHECK {}",
                    go_quote_list(hc.test.as_deref().unwrap_or(&[]))
                ));
                self.cc.healthcheck = Some(hc);
            }
            "onbuild" => {
                no_flags()?;
                let sub = n
                    .sub
                    .as_ref()
                    .ok_or_else(|| anyhow!("ONBUILD requires at least one argument"))?;
                match sub.name().as_str() {
                    "onbuild" => bail!("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
                    "from" | "maintainer" => bail!(
                        "{} isn't allowed as an ONBUILD trigger",
                        sub.keyword.to_uppercase()
                    ),
                    _ => {}
                }
                let orig = n.original.trim();
                let text = orig[orig.find(char::is_whitespace).unwrap_or(orig.len())..]
                    .trim()
                    .to_string();
                self.cc
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(text.clone());
                self.meta(format!("ONBUILD {text}"));
            }
            "maintainer" => {
                no_flags()?;
                let m = n.args.join(" ");
                self.config.author = Some(m.clone());
                self.meta(format!("MAINTAINER {m}"));
            }
            "run" => self.run(n, &flags, lex, input_of)?,
            "copy" | "add" => self.copy(n, &flags, lex, input_of)?,
            _ => bail!("unknown instruction: {}", n.keyword),
        }
        Ok(())
    }

    fn run(
        &mut self,
        n: &Node,
        flags: &Flags,
        lex: &Lexer,
        input_of: &dyn Fn(&str) -> Result<Input>,
    ) -> Result<()> {
        flags.only(&["mount", "network", "security"])?;
        let network = match flags.get("network").as_deref() {
            None | Some("default") => self.opts.network,
            Some("none") => NetworkMode::None,
            Some("host") => NetworkMode::Host,
            Some(v) => bail!("invalid network mode {v:?}"),
        };
        let mut script_mount = None;
        let args: Vec<String> = if n.json {
            n.args.clone()
        } else {
            let text = n.args.join(" ");
            let mut s = self.shell.clone();
            if n.heredocs.len() == 1 && is_lone_heredoc(&text) {
                let body = n.heredocs[0].body();
                if let Some(line) = body.strip_prefix("#!") {
                    // A script with its own interpreter (as BuildKit): the file is mounted at
                    // /dev/pipes/NAME (never in the layer) and the shebang's interpreter runs it.
                    let name = n.heredocs[0].name.clone();
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
                    s.push(target.clone());
                    script_mount = Some(crate::plan::ExecMount::Bind {
                        target,
                        from: Input::Inline(vec![(name.clone(), body.clone())]),
                        source: name,
                        readwrite: false,
                    });
                } else {
                    s.push(body);
                }
            } else if !n.heredocs.is_empty() {
                let mut full = text.clone();
                for h in &n.heredocs {
                    full.push('\n');
                    full.push_str(&h.content);
                    full.push_str(&h.name);
                }
                s.push(full);
            } else {
                s.push(text);
            }
            s
        };
        // Environment: image ENV, then declared ARGs ENV does not override, then proxy build args.
        let mut env = self.env();
        let mut used_args = Vec::new();
        for (k, v) in &self.args {
            if let Some(v) = v
                && !env.iter().any(|e| e.starts_with(&format!("{k}=")))
            {
                env.push(format!("{k}={v}"));
                used_args.push(format!("{k}={v}"));
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(*p) {
                env.push(format!("{p}={v}"));
            }
        }
        let vars = self.vars();
        let mut mounts: Vec<crate::plan::ExecMount> = script_mount.into_iter().collect();
        for (i, m) in flags.all("mount").iter().enumerate() {
            mounts.push(crate::mounts::lower_mount(
                m,
                lex,
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
        created_by.push_str(&args.join(" "));
        created_by.push_str(" # buildkit");
        self.history.push(History {
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            ..Default::default()
        });
        self.steps.push(Step {
            display: display_of(n),
            location: format!("{}:{}", self.opts.file_name, n.start_line),
            op: Op::Exec(ExecOp {
                args,
                env,
                cwd: self.workdir.clone(),
                user: self.cc.user.clone().filter(|u| !u.is_empty()),
                network,
                mounts,
            }),
        });
        Ok(())
    }

    fn copy(
        &mut self,
        n: &Node,
        flags: &Flags,
        lex: &Lexer,
        input_of: &dyn Fn(&str) -> Result<Input>,
    ) -> Result<()> {
        let add = n.name() == "add";
        let kw = if add { "ADD" } else { "COPY" };
        if n.args.len() < 2 {
            bail!(
                "{kw} requires at least two arguments, but only one was provided. Destination could not be determined"
            );
        }
        if add {
            flags.only(&[
                "chown",
                "chmod",
                "link",
                "exclude",
                "checksum",
                "keep-git-dir",
                "unpack",
            ])?;
        } else {
            flags.only(&["from", "chown", "chmod", "link", "exclude", "parents"])?;
        }
        let vars = self.vars();
        let x = |s: &str| lex.process_word(s, &vars).map_err(|e| anyhow!("{e}"));
        let (srcs, dest) = n.args.split_at(n.args.len() - 1);
        let dest_raw = &dest[0];
        if n.heredocs
            .iter()
            .any(|h| dest_raw.trim_start_matches("<<").trim_start_matches('-') == h.name)
        {
            bail!("{kw} cannot accept a heredoc as a destination");
        }
        let mut from = match flags.get("from") {
            Some(f) => input_of(&f)?,
            None => Input::Context,
        };
        let mut sources = Vec::new();
        let mut inline = Vec::new();
        for s in srcs {
            let hname = s
                .trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(|c| c == '"' || c == '\'');
            if s.starts_with("<<")
                && let Some(h) = n.heredocs.iter().find(|h| h.name == hname)
            {
                let mut body = h.body();
                if h.expand {
                    let mut l = *lex;
                    l.skip_process_quotes = true;
                    body = l.process_word(&body, &vars).map_err(|e| anyhow!("{e}"))?;
                }
                inline.push((h.name.clone(), body));
                continue;
            }
            let v = x(s)?;
            if !add && (v.starts_with("http://") || v.starts_with("https://")) {
                bail!("source can't be a URL for COPY");
            }
            sources.push(v);
        }
        if !inline.is_empty() {
            if !sources.is_empty() {
                bail!("mixing heredoc and path sources is not supported");
            }
            sources = inline.iter().map(|(n, _)| n.clone()).collect();
            from = Input::Inline(inline);
        }
        let mut dest = x(dest_raw)?;
        let trailing = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
        if !dest.starts_with('/') {
            dest = format!("{}/{}", self.workdir, dest);
        }
        let mut dest = clean(&dest);
        if trailing && dest != "/" {
            dest.push('/');
        }
        let chown = flags
            .get("chown")
            .map(|c| x(&c))
            .transpose()?
            .filter(|c| !c.is_empty());
        let chmod = match flags.get("chmod") {
            Some(c) => {
                let c = x(&c)?;
                Some(u32::from_str_radix(&c, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| {
                    anyhow!("invalid chmod parameter: '{c}'. it should be octal string and between 0 and 07777")
                })?)
            }
            None => None,
        };
        let checksum = flags.get("checksum").map(|c| x(&c)).transpose()?;
        if checksum.is_some() {
            if sources.len() != 1 {
                bail!("checksum can't be specified for multiple sources");
            }
            if !sources[0].starts_with("http://")
                && !sources[0].starts_with("https://")
                && !crate::git::is_git_url(&sources[0])
            {
                bail!("checksum requires HTTP(S) or Git sources");
            }
        }
        let unpack = add && flags.get("unpack").map(|v| v != "false").unwrap_or(true);
        let mut created_by = format!("{kw} ");
        if let Some(c) = &chown {
            created_by.push_str(&format!("--chown={c} "));
        }
        created_by.push_str(&format!("{} {} # buildkit", srcs.join(" "), dest_raw));
        self.history.push(History {
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            ..Default::default()
        });
        self.steps.push(Step {
            display: display_of(n),
            location: format!("{}:{}", self.opts.file_name, n.start_line),
            op: Op::File(FileOp {
                from,
                sources,
                dest,
                chown,
                chmod,
                exclude: flags.all("exclude").to_vec(),
                parents: flags.bool("parents"),
                link: flags.bool("link"),
                unpack,
                checksum,
                keep_git_dir: flags.bool("keep-git-dir"),
            }),
        });
        Ok(())
    }
}

fn display_of(n: &Node) -> String {
    let first = n.original.lines().next().unwrap_or("").trim();
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

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quote_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Leading `--name[=value]` flags.
struct Flags {
    items: Vec<(String, Option<String>)>,
    all: BTreeMap<String, Vec<String>>,
}

impl Flags {
    fn parse(raw: &[String]) -> Flags {
        let mut items = Vec::new();
        let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in raw {
            let f = f.trim_start_matches("--");
            let (k, v) = match f.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (f.to_string(), None),
            };
            if let Some(v) = &v {
                all.entry(k.clone()).or_default().push(v.clone());
            }
            items.push((k, v));
        }
        Flags { items, all }
    }

    fn only(&self, names: &[&str]) -> Result<()> {
        for (k, _) in &self.items {
            if !names.contains(&k.as_str()) {
                bail!("unknown flag: --{k}");
            }
        }
        Ok(())
    }

    fn get(&self, k: &str) -> Option<String> {
        self.items
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone().unwrap_or_default())
    }

    fn all(&self, k: &str) -> &[String] {
        self.all.get(k).map(Vec::as_slice).unwrap_or(&[])
    }

    fn bool(&self, k: &str) -> bool {
        match self.items.iter().rev().find(|(n, _)| n == k) {
            Some((_, None)) => true,
            Some((_, Some(v))) => v.eq_ignore_ascii_case("true"),
            None => false,
        }
    }
}

fn parse_ports(w: &str) -> Result<Vec<String>> {
    let (port, proto) = match w.split_once('/') {
        Some((p, pr)) => (p.to_string(), pr.to_ascii_lowercase()),
        None => (w.to_string(), "tcp".into()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid port: {w:?}: invalid proto: {proto}");
    }
    let port = port.rsplit(':').next().unwrap_or(&port).to_string();
    if port.is_empty() {
        bail!("invalid port: {w:?}: no port specified");
    }
    let (lo, hi) = match port.split_once('-') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (port.clone(), port.clone()),
    };
    let lo: u16 = lo
        .parse()
        .map_err(|_| anyhow!("invalid containerPort: {port}"))?;
    let hi: u16 = hi
        .parse()
        .map_err(|_| anyhow!("invalid containerPort: {port}"))?;
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<i64>() {
        return n > 0;
    }
    let u = s.to_ascii_uppercase();
    let name = u.strip_prefix("SIG").unwrap_or(&u);
    const SIGS: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    SIGS.contains(&name) || name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

/// Go's `time.ParseDuration` for the forms Dockerfiles use, in nanoseconds.
fn parse_duration(s: &str) -> Result<i64> {
    if s == "0" || s.is_empty() {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            bail!("time: invalid duration {s:?}");
        }
        let num: f64 = rest[..num_end]
            .parse()
            .map_err(|_| anyhow!("time: invalid duration {s:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mul = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => bail!("time: missing unit in duration {s:?}"),
            u => bail!("time: unknown unit {u:?} in duration {s:?}"),
        };
        total += num * mul;
        rest = &rest[unit_end..];
    }
    Ok(total as i64)
}

fn parse_healthcheck(n: &Node, flags: &Flags, shell: &[String]) -> Result<Healthcheck> {
    let typ = n
        .args
        .first()
        .ok_or_else(|| anyhow!("HEALTHCHECK requires at least one argument"))?;
    if typ.eq_ignore_ascii_case("none") {
        if n.args.len() > 1 {
            bail!("HEALTHCHECK NONE takes no arguments");
        }
        return Ok(Healthcheck {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    }
    if !typ.eq_ignore_ascii_case("cmd") {
        bail!(
            "Unknown type {:?} in HEALTHCHECK (try CMD)",
            typ.to_uppercase()
        );
    }
    flags.only(&[
        "interval",
        "timeout",
        "start-period",
        "start-interval",
        "retries",
    ])?;
    let rest = &n.args[1..];
    if rest.is_empty() {
        bail!("Missing command after HEALTHCHECK CMD");
    }
    let _ = shell;
    let test = if n.json {
        let mut t = vec!["CMD".to_string()];
        t.extend(rest.iter().cloned());
        t
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    let dur = |k: &str| -> Result<Option<i64>> {
        match flags.get(k) {
            None => Ok(None),
            Some(v) => {
                let d = parse_duration(&v)?;
                if d != 0 && d < 1_000_000 {
                    bail!("Interval {:?} cannot be less than 1ms", k);
                }
                Ok(Some(d).filter(|d| *d != 0))
            }
        }
    };
    let retries = match flags.get("retries") {
        None => None,
        Some(v) => {
            let r: i64 = v
                .parse()
                .map_err(|_| anyhow!("strconv.ParseInt: parsing {v:?}: invalid syntax"))?;
            if r < 0 {
                bail!("--retries cannot be negative ({r})");
            }
            Some(r).filter(|r| *r != 0)
        }
    };
    Ok(Healthcheck {
        test: Some(test),
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> FrontendOptions {
        FrontendOptions {
            build_args: BTreeMap::new(),
            target: None,
            labels: BTreeMap::new(),
            network: NetworkMode::Host,
            platform: "linux/amd64".into(),
            file_name: "Dockerfile".into(),
        }
    }

    fn plan(text: &str, o: &FrontendOptions) -> Result<Plan> {
        let ast = hoist_parser::parse(text.as_bytes(), "Dockerfile").unwrap();
        lower(&ast, o, &mut |n: &str| bail!("no image {n} in this test"))
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
        match &c.steps[0].op {
            Op::Exec(e) => {
                assert_eq!(e.cwd, "/x/y");
                assert_eq!(e.args, ["/bin/sh", "-c", "echo hi"]);
                assert!(e.env.contains(&"V=cli".to_string()));
            }
            other => panic!("{other:?}"),
        }
        let run = c.history.iter().find(|h| !h.empty_layer).unwrap();
        assert_eq!(
            run.created_by.as_deref(),
            Some("RUN |2 V=cli W=cli-w /bin/sh -c echo hi # buildkit")
        );
    }

    #[test]
    fn conversion_errors() {
        let e = plan("FROM scratch\nEXPOSE 80/xyz\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("invalid proto: xyz"), "{e:#}");
        let e = plan("FROM scratch\nSTOPSIGNAL NOPE\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("invalid signal: NOPE"));
        let e = plan("FROM scratch\nCOPY --chmod=999 a b\n", &opts()).unwrap_err();
        assert!(format!("{e:#}").contains("invalid chmod parameter: '999'"));
        let mut o = opts();
        o.target = Some("zzz".into());
        let e = plan("FROM scratch\n", &o).unwrap_err();
        assert_eq!(e.to_string(), "target stage \"zzz\" could not be found");
    }

    #[test]
    fn helpers() {
        assert_eq!(
            parse_ports("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(parse_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert!(parse_duration("5").is_err());
        assert!(
            valid_signal("SIGTERM")
                && valid_signal("kill")
                && valid_signal("9")
                && !valid_signal("0")
        );
    }
}
