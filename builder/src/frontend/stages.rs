//! Stages: which stages the target needs, their `FROM` lines expanded in the global scope, and
//! lowering each into a plan chain.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow, bail};
use hoist_image::{ContainerConfig, ImageConfig, Platform};
use hoist_parser::instructions::{self as ins, Command, Dockerfile, Instruction, Source};
use hoist_parser::lint::BaseEnv;

use super::state::{Scope, StageState};
use super::{
    Budget, FrontendOptions, ImageResolver, Lowered, NamedInput, line_error, named_context,
};
use crate::frontend::snippet::Located;
use crate::plan::{Base, Chain, Input, Plan};

/// BuildKit's error for stage `i` (named `name`, else `stage-N`) reading from itself.
pub(super) fn circular(name: Option<&str>, i: usize) -> String {
    let name = name.map_or_else(|| format!("stage-{i}"), str::to_string);
    format!("circular dependency detected on stage: {name}")
}

/// BuildKit's check of an image a stage starts from (`FROM x`, `COPY --from=x`): Go's
/// `reference.ParseNormalizedNamed`, its failure as `failed to parse stage name "x": ...`.
pub(super) fn check_stage_name(name: &str) -> Result<()> {
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
pub(super) fn reads_from(i: &Instruction) -> Vec<String> {
    match i {
        Instruction::Copy(a) => a.from.iter().cloned().collect(),
        Instruction::Run { mounts, .. } => mounts
            .iter()
            .filter_map(|m| ins::parse_mount(m, None).ok().and_then(|m| m.from))
            .collect(),
        _ => Vec::new(),
    }
}

/// A platform string of the options (normalised already; the host's if it does not parse).
pub(super) fn parse_platform(platform: &str) -> Platform {
    Platform::parse(platform)
        .map(|p| p.normalize())
        .unwrap_or_else(|_| Platform::host())
}

/// The platform stage `s` is built for: its `FROM --platform=…` expanded in the global scope and
/// parsed as containerd does, else the build's target platform. Errors in BuildKit's words.
pub(super) fn stage_platform(
    s: &ins::Stage,
    global: &[(String, String)],
    esc: char,
    target: &Platform,
) -> std::result::Result<Platform, String> {
    let Some(v) = &s.platform else {
        return Ok(target.clone());
    };
    let word = ins::expand(v, global, esc)
        .map_err(|e| format!("failed to process arguments for platform {v}: {e}"))?;
    if word.is_empty() {
        return Err(format!("empty platform value from expression {v}"));
    }
    Platform::parse(&word)
        .map(|p| p.normalize())
        .map_err(|e| format!("failed to parse platform {v}: {e}"))
}

/// The scope `FROM` lines are expanded in: the predefined platform ARGs (in PLATFORM_ARGS order),
/// then the global ARGs (a build arg wins over the default).
pub(super) fn global_scope(
    df: &Dockerfile,
    opts: &FrontendOptions,
    budget: &Budget,
) -> Result<Vec<(String, String)>> {
    let t = parse_platform(&opts.platform);
    let b = Platform::host();
    let platform_values = [
        t.to_string(),
        t.os.clone(),
        t.architecture.clone(),
        t.variant.clone().unwrap_or_default(),
        b.to_string(),
        b.os.clone(),
        b.architecture.clone(),
        b.variant.clone().unwrap_or_default(),
    ];
    // As BuildKit's `defaultArgs`, a build arg of the same name replaces a predefined value.
    let mut global: Vec<(String, String)> = ins::PLATFORM_ARGS
        .iter()
        .map(|k| k.to_string())
        .zip(platform_values)
        .map(|(k, v)| {
            let v = opts.build_args.get(&k).cloned().unwrap_or(v);
            (k, v)
        })
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
        let v = opts.build_args.get(k).cloned().unwrap_or(v);
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
    let target_platform = parse_platform(&opts.platform);
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
        let platform =
            stage_platform(s, &global, esc, &target_platform).map_err(|e| err(&s.source, e))?;
        // BuildKit's empty image: working directory `/` (PATH is added below, as for any stage).
        let scratch = || ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            config: Some(ContainerConfig {
                working_dir: Some("/".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut image_base = |name: &str| -> Result<(Base, ImageConfig)> {
            let img = check_stage_name(name)
                .and_then(|()| resolve(name, &platform))
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
                    .and_then(|()| resolve(&image, &platform))
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
            platform: platform.to_string(),
            steps,
            config: cfg,
            history,
        });
        chain_of.insert(i, chains.len() - 1);
    }
    if opts.platform_explicit {
        // BuildKit: an asked-for platform is the result's, whatever its stage was built for.
        let c = &mut chains[chain_of[&target]].config;
        let same = c.os == target_platform.os && c.architecture == target_platform.architecture;
        c.os = target_platform.os.clone();
        c.architecture = target_platform.architecture.clone();
        if target_platform.variant.is_some() || !same {
            c.variant = target_platform.variant.clone();
        }
    }
    Ok(Lowered {
        plan: Plan {
            target: chain_of[&target],
            chains,
        },
        base_env,
    })
}
