//! `docker import --change`/`docker commit --change`: config changes through the frontend.

use anyhow::{Result, anyhow, bail};
use hoist_image::ImageConfig;
use hoist_parser::instructions::{self as ins};

use super::state::StageState;
use super::{Budget, FrontendOptions};

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
