//! The state of a stage while its instructions are applied: variables, image config, steps and
//! history; WORKDIR.

use anyhow::{Result, anyhow};
use hoist_image::{ContainerConfig, History, ImageConfig};
use hoist_parser::instructions::{self as ins, Command, Source};

use super::{Budget, FrontendOptions, HISTORY_COMMENT};
use crate::paths::clean;
use crate::plan::{FileOp, Input, MkdirOp, Op, Source as CopySource, Step};

/// ARGs BuildKit never puts in the environment.
pub(super) const NON_ENV_ARGS: [&str; 2] =
    ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// The variables of a stage as BuildKit's dispatch state keeps them. A stage built `FROM` another
/// starts from that stage's scope (its ARGs included, build-arg overrides and all), with the image
/// config's ENV applied again on top.
#[derive(Debug, Clone, Default)]
pub(super) struct Scope {
    /// The environment expansion and RUN see: image ENV, ENV lines and ARG values, the latest
    /// setting of a name wins (so `ENV A=1` then `ARG A=2` gives 2), in order of last setting.
    pub(super) env: Vec<(String, String)>,
    /// Every ARG declared so far (a base stage's first), with its value; None: declared without
    /// one. RUN's history lists them (`RUN |2 A=1 UNSET= ...`).
    pub(super) args: Vec<(String, Option<String>)>,
}

impl Scope {
    pub(super) fn set(&mut self, k: &str, v: &str) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.to_string()));
    }

    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// BuildKit's `runCommandString` prefix: each declared ARG once (first declaration's place),
    /// valued from the environment, else its own value, else empty.
    pub(super) fn run_args(&self) -> Vec<String> {
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
pub(super) struct StageState<'c> {
    pub(super) cc: ContainerConfig,
    pub(super) config: &'c mut ImageConfig,
    pub(super) scope: Scope,
    pub(super) shell: Vec<String>,
    pub(super) workdir: String,
    pub(super) cmd_set: bool,
    /// The stage is in `--no-cache-filter`.
    pub(super) no_cache: bool,
    pub(super) steps: Vec<Step>,
    pub(super) history: Vec<History>,
    pub(super) opts: &'c FrontendOptions,
    pub(super) escape: char,
    pub(super) budget: &'c Budget,
}

impl<'c> StageState<'c> {
    /// A stage over its base's `config`; `inherited`: the scope of the stage it is built on.
    pub(super) fn new(
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
    pub(super) fn over(
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
    pub(super) fn finish(self) -> (Vec<Step>, Vec<History>) {
        self.config.config = Some(self.cc);
        (self.steps, self.history)
    }

    /// Variables for expansion: the stage's environment ([`Scope::env`]).
    pub(super) fn vars(&self) -> Vec<(String, String)> {
        self.scope.env.clone()
    }

    pub(super) fn expand(&self, word: &str, vars: &[(String, String)]) -> Result<String> {
        let v = ins::expand(word, vars, self.escape).map_err(|e| anyhow!("{e}"))?;
        self.budget.charge(v.len())?;
        Ok(v)
    }

    pub(super) fn set_env(&mut self, k: &str, v: &str) {
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
    pub(super) fn local_root(&mut self, key: &str, from: &Source) {
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
            }),
        });
    }

    /// A history entry, as BuildKit's `commitToHistory`: `layer` when the step adds one.
    pub(super) fn commit(&mut self, created_by: String, layer: bool) -> Result<()> {
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
    pub(super) fn excerpt(&self, src: &Source) -> String {
        crate::frontend::snippet::render(
            &self.opts.file_name,
            &self.opts.text,
            src.start_line,
            src.end_line,
        )
    }

    /// A layer-producing step and its history entry.
    pub(super) fn step(&mut self, c: &Command, op: Op, created_by: String) -> Result<()> {
        self.commit(created_by, true)?;
        self.steps.push(Step {
            display: display_of(&c.source),
            location: self.excerpt(&c.source),
            op,
            no_cache: self.no_cache,
        });
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
    pub(super) fn workdir(&mut self, c: &Command, w: &str) -> Result<()> {
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
}

/// The instruction as progress shows it: its first line, keyword upper-cased.
pub(super) fn display_of(src: &Source) -> String {
    let first = src.original.lines().next().unwrap_or("").trim();
    let mut parts = first.splitn(2, char::is_whitespace);
    let kw = parts.next().unwrap_or("").to_uppercase();
    match parts.next() {
        Some(rest) => format!("{kw} {}", rest.trim()),
        None => kw,
    }
}

pub(super) fn is_lone_heredoc(text: &str) -> bool {
    let t = text.trim();
    t.starts_with("<<") && !t.contains(char::is_whitespace)
}
