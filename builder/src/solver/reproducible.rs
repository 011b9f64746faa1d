//! Reproducible builds (`SOURCE_DATE_EPOCH`, from the environment or `--build-arg`): layer mtimes
//! are clamped to it, and the image config's `created` and the history entries a build adds are
//! set to it, so two builds of the same sources on different days give the same image digest.

use hoist_image::{ImageConfig, LayerOptions};

use super::Solver;

/// RFC 3339 for seconds since the epoch.
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// `SOURCE_DATE_EPOCH` from build args, else from the environment.
pub fn source_date_epoch(
    build_args: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Option<i64>> {
    match build_args.get("SOURCE_DATE_EPOCH") {
        Some(v) if !v.is_empty() => v.trim().parse().map(Some).map_err(|_| {
            anyhow::anyhow!("invalid SOURCE_DATE_EPOCH {v:?}: expected seconds since the epoch")
        }),
        _ => Ok(hoist_image::layer::source_date_epoch()),
    }
}

/// Sets `created` of the config and of the history entries from `first_new` on to the epoch.
pub fn clamp_config(config: &mut ImageConfig, first_new: usize, epoch: i64) {
    let t = rfc3339(epoch);
    config.created = Some(t.clone());
    for h in config.history.iter_mut().skip(first_new) {
        h.created = Some(t.clone());
    }
}

impl Solver {
    /// Options for committing layers.
    pub(crate) fn layer_options(&self) -> LayerOptions {
        LayerOptions {
            source_date_epoch: self.source_date_epoch,
        }
    }

    /// The time stamped on a new layer.
    pub(crate) fn now(&self) -> String {
        match self.source_date_epoch {
            Some(t) => rfc3339(t),
            None => hoist_image::config::now_rfc3339(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_new_history_only() {
        let mut c = ImageConfig::default();
        for t in ["2020-01-01T00:00:00Z", "2026-11-23T10:00:00.123Z"] {
            c.history.push(hoist_image::History {
                created: Some(t.into()),
                ..Default::default()
            });
        }
        clamp_config(&mut c, 1, 0);
        assert_eq!(c.created.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            c.history[0].created.as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        assert_eq!(
            c.history[1].created.as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
    }
}
