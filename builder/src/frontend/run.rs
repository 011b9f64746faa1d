//! RUN lowering: shell or exec form, heredocs, `--mount`, `--network`, the environment.

use anyhow::{Result, bail};
use hoist_parser::ast::Heredoc;
use hoist_parser::instructions::{self as ins, Command, ShellOrExec};

use super::mount;
use super::state::{StageState, is_lone_heredoc};
use crate::plan::{ExecMount, ExecOp, Input, NetworkMode, Op};

impl StageState<'_> {
    pub(super) fn run(
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
}
