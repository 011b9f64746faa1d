//! Matching a pushed ref against a repository's build rules: which builds it starts, with which tags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Matcher, Repository, SourceType};
use crate::tag_template::expand;

/// What was pushed: a full ref (`refs/heads/main`, `refs/tags/v1`) moved to `sha`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub git_ref: String,
    pub sha: String,
}

impl Push {
    /// The source type and short name of the ref, or `None` for other refs (notes, pull heads...).
    pub fn source(&self) -> Option<(SourceType, &str)> {
        if let Some(b) = self.git_ref.strip_prefix("refs/heads/") {
            Some((SourceType::Branch, b))
        } else {
            self.git_ref
                .strip_prefix("refs/tags/")
                .map(|t| (SourceType::Tag, t))
        }
    }
}

/// One build to run for a push: where the Dockerfile and context are, and the tags it gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPlan {
    pub dockerfile: String,
    pub context: String,
    pub build_args: BTreeMap<String, String>,
    /// Tags only (`latest`, `v1.2`); the image name is prepended when building.
    pub tags: Vec<String>,
    /// Worker labels the build needs (shared queues: only workers with all of them take it).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// The builds a push triggers: every matching rule, with rules sharing Dockerfile, context and build
/// args merged into one build carrying all their tags.
pub fn plan(repo: &Repository, push: &Push) -> Vec<BuildPlan> {
    let Some((kind, name)) = push.source() else {
        return Vec::new();
    };
    let mut plans: Vec<BuildPlan> = Vec::new();
    for rule in &repo.rules {
        if rule.source_type != kind {
            continue;
        }
        let captures: Vec<String> = match rule.matcher() {
            Ok(Matcher::Exact(s)) if s == name => Vec::new(),
            Ok(Matcher::Regex(re)) => match re.captures(name) {
                Some(c) => c
                    .iter()
                    .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
                    .collect(),
                None => continue,
            },
            _ => continue,
        };
        let default_tag = if kind == SourceType::Branch && name == repo.default_branch {
            "latest"
        } else {
            "{sourceref}"
        };
        let template = rule.tag.as_deref().unwrap_or(default_tag);
        let mut tags: Vec<String> = template
            .split(',')
            .map(|t| expand(t.trim(), name, &push.sha, &captures))
            .filter(|t| !t.is_empty())
            .collect();
        tags.dedup();
        if tags.is_empty() {
            continue;
        }
        match plans.iter_mut().find(|p| {
            p.dockerfile == rule.dockerfile
                && p.context == rule.context
                && p.build_args == rule.build_args
                && p.labels == rule.labels
        }) {
            Some(p) => {
                for t in tags {
                    if !p.tags.contains(&t) {
                        p.tags.push(t);
                    }
                }
            }
            None => plans.push(BuildPlan {
                dockerfile: rule.dockerfile.clone(),
                context: rule.context.clone(),
                build_args: rule.build_args.clone(),
                tags,
                labels: rule.labels.clone(),
            }),
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        Config::parse(
            r#"
            state_dir = "/x"
            registry = "r"
            secret = "s"
            [[repository]]
            name = "app"
            url = "u"
            default_branch = "main"
            [[repository.rule]]
            source_type = "branch"
            source = "main"
            [[repository.rule]]
            source_type = "branch"
            source = "main"
            tag = "edge-{shortsha}"
            [[repository.rule]]
            source_type = "branch"
            source = '/^feature\/(.+)$/'
            dockerfile = "docker/Dockerfile.dev"
            [[repository.rule]]
            source_type = "tag"
            source = '/^v([0-9]+)\.([0-9]+)\.[0-9]+$/'
            tag = '{sourceref},{\1}.{\2},{\1}'
            [[repository.rule]]
            source_type = "tag"
            source = '/^v/'
            tag = 'release-{sha}'
            context = "app"
            "#,
        )
        .unwrap()
    }

    fn push(r: &str) -> Push {
        Push {
            git_ref: r.into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
        }
    }

    #[test]
    fn default_branch_is_latest_and_rules_merge() {
        let c = config();
        let p = plan(&c.repositories[0], &push("refs/heads/main"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].tags, ["latest", "edge-0123456"]);
    }

    #[test]
    fn regex_branch_uses_sourceref_sanitized() {
        let c = config();
        let p = plan(&c.repositories[0], &push("refs/heads/feature/login"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].tags, ["feature-login"]);
        assert_eq!(p[0].dockerfile, "docker/Dockerfile.dev");
        assert!(plan(&c.repositories[0], &push("refs/heads/other")).is_empty());
    }

    #[test]
    fn tag_captures_and_several_rules() {
        let c = config();
        let p = plan(&c.repositories[0], &push("refs/tags/v1.2.3"));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].tags, ["v1.2.3", "1.2", "1"]);
        assert_eq!(
            p[1].tags,
            ["release-0123456789abcdef0123456789abcdef01234567"]
        );
        assert_eq!(p[1].context, "app");
        // A branch named like a tag does not match tag rules.
        assert!(plan(&c.repositories[0], &push("refs/heads/v1.2.3")).is_empty());
        assert!(plan(&c.repositories[0], &push("refs/notes/commits")).is_empty());
    }
}
