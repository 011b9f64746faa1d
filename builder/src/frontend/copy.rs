//! COPY/ADD lowering: typed sources, heredoc files, flags, destination, history text.

use anyhow::{Result, anyhow, bail};
use hoist_parser::instructions::{self as ins, Command, CopyArgs};

use super::state::StageState;
use crate::paths::clean;
use crate::plan::{FileOp, Input, Op, Source as CopySource};

impl StageState<'_> {
    pub(super) fn copy(
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
        for s in &mut sources {
            match s {
                CopySource::Http { checksum: c, .. } => c.clone_from(&checksum),
                CopySource::Git {
                    checksum: c,
                    keep_git_dir,
                    ..
                } => {
                    c.clone_from(&checksum);
                    *keep_git_dir = a.keep_git_dir.unwrap_or(false);
                }
                CopySource::Path(_) => {}
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
        });
        self.step(c, op, created_by)?;
        Ok(())
    }
}

/// What a COPY/ADD source string is, as BuildKit's `dispatchCopy` decides: a git repository (ADD
/// only), an http(s) URL (ADD only), or a path. `github.com/...` without a scheme is a path for
/// both (dfgitutil's `IndistinguishableFromLocal`), unlike a build context argument.
pub(super) fn source_of(v: String, add: bool) -> Result<CopySource> {
    let is_url = v.starts_with("http://") || v.starts_with("https://");
    if crate::context::git::is_git_url(&v) && !v.starts_with("github.com/") {
        if !add {
            bail!("source can't be a git ref for COPY");
        }
        return Ok(CopySource::Git {
            url: v,
            keep_git_dir: false,
            checksum: None,
        });
    }
    if is_url {
        if !add {
            bail!("source can't be a URL for COPY");
        }
        return Ok(CopySource::Http {
            url: v,
            checksum: None,
        });
    }
    Ok(CopySource::Path(v))
}
