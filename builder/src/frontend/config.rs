//! Instruction dispatch and image-config changes (ENV, LABEL, CMD, HEALTHCHECK, ONBUILD...).

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use hoist_image::Healthcheck;
use hoist_parser::gofmt::{go_duration, go_quote_list};
use hoist_parser::instructions::{self as ins, Command, Instruction, ShellOrExec};
use hoist_parser::values;
use serde_json::Value;

use super::state::{NON_ENV_ARGS, StageState};
use crate::plan::{Input, NetworkMode};

impl StageState<'_> {
    pub(super) fn apply(
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
}

/// The image config's healthcheck from the typed one (zero durations and retries: unset).
pub(super) fn healthcheck(h: &ins::Healthcheck) -> Healthcheck {
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
pub(super) fn healthcheck_history(h: &Healthcheck) -> String {
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
