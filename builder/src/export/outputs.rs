//! Build outputs other than the store image (`--output`/`-o`, as buildx takes them): an OCI layout
//! tar (`type=oci`), a docker-archive tar (`type=docker`), the final filesystem as a tar
//! (`type=tar`) or a directory (`type=local`, `-o DIR`), to a file or stdout (`dest=-`, `-o -`).
//! Archives come from the image crate's `save`/`export`; nothing here writes a tar format itself.
//!
//! As with buildx, such outputs leave nothing in the image store unless asked ([`keeps_image`]):
//! the build writes its image, exports it, and removes it again.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use hoist_image::Store;
use hoist_image::archive::{SaveFormat, export, save};
use hoist_image::layer::{ApplyMode, apply_layer};
use hoist_image::outfile::write_file_atomically_with_mode;

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Oci,
    Docker,
    Tar,
    Local,
}

impl ExportKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ExportKind::Oci => "oci",
            ExportKind::Docker => "docker",
            ExportKind::Tar => "tar",
            ExportKind::Local => "local",
        }
    }
}

/// Where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    Path(PathBuf),
}

/// One `--output` that is not the store image or a registry push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub kind: ExportKind,
    pub dest: Dest,
}

impl Export {
    /// Parses an `--output` value. `None` for outputs handled elsewhere (`type=image`,
    /// `type=registry`, `type=cacheonly`, and `type=docker` without `dest`: buildx loads that into
    /// the Docker engine, hoist keeps it in its store).
    pub fn parse(spec: &str) -> Result<Option<Export>> {
        if !spec.contains('=') {
            // Shorthands: `-o -` is a tar on stdout, `-o DIR` the local exporter.
            return Ok(Some(if spec == "-" {
                Export {
                    kind: ExportKind::Tar,
                    dest: Dest::Stdout,
                }
            } else {
                Export {
                    kind: ExportKind::Local,
                    dest: Dest::Path(PathBuf::from(spec)),
                }
            }));
        }
        let mut kind = None;
        let mut dest = None;
        for field in spec.split(',') {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "type" => kind = Some(v.trim().to_ascii_lowercase()),
                "dest" => dest = Some(v.to_string()),
                _ => {}
            }
        }
        let kind = match kind.as_deref() {
            Some("oci") => ExportKind::Oci,
            Some("docker") => ExportKind::Docker,
            Some("tar") => ExportKind::Tar,
            Some("local") => ExportKind::Local,
            Some("image" | "registry" | "cacheonly") => return Ok(None),
            Some(other) => bail!("failed to find exporter {other:?}"),
            None if dest.is_some() => ExportKind::Local,
            None => bail!("invalid output {spec:?}: type is required"),
        };
        let dest = match dest.as_deref() {
            Some("-") if kind == ExportKind::Local => {
                bail!("output directory is required for local exporter")
            }
            Some("-") => Dest::Stdout,
            Some(p) if !p.is_empty() => Dest::Path(PathBuf::from(p)),
            _ if kind == ExportKind::Local => {
                bail!("output directory is required for local exporter")
            }
            _ if kind == ExportKind::Docker => return Ok(None),
            _ => Dest::Stdout,
        };
        Ok(Some(Export { kind, dest }))
    }

    /// The progress vertex of this export, as BuildKit names it.
    pub fn vertex_name(&self) -> &'static str {
        match self.kind {
            ExportKind::Local => "exporting to client directory",
            ExportKind::Tar => "exporting to client tarball",
            ExportKind::Oci => "exporting to oci image format",
            ExportKind::Docker => "exporting to docker image format",
        }
    }

    /// Writes the export of the stored image `image` (an id or name; `names` are recorded in
    /// archives that carry names).
    pub fn write(&self, store: &Store, image: &str, names: &[String]) -> Result<()> {
        if self.dest == Dest::Stdout && std::io::stdout().is_terminal() {
            bail!(
                "dest file is required for {} exporter. refusing to write to console",
                self.kind.name()
            );
        }
        match self.kind {
            ExportKind::Local => {
                let Dest::Path(dir) = &self.dest else {
                    bail!("output directory is required for local exporter");
                };
                write_local(store, image, dir)
            }
            ExportKind::Oci | ExportKind::Docker | ExportKind::Tar => {
                let refs: Vec<String> = if names.is_empty() {
                    vec![image.to_string()]
                } else {
                    names.to_vec()
                };
                let write = |w: &mut dyn Write| -> Result<()> {
                    match self.kind {
                        ExportKind::Oci => {
                            save(store, &refs, SaveFormat::Oci, w)?;
                        }
                        ExportKind::Docker => {
                            save(store, &refs, SaveFormat::Docker, w)?;
                        }
                        _ => {
                            export(store, &store.resolve(image)?, w)?;
                        }
                    }
                    Ok(())
                };
                match &self.dest {
                    Dest::Stdout => {
                        let mut out = std::io::stdout().lock();
                        write(&mut out)?;
                        out.flush()?;
                        Ok(())
                    }
                    Dest::Path(p) => write_atomic(p, write),
                }
            }
        }
    }
}

/// Whether the build's image stays in the store: with `--load`, a `-t` name, no `--output`, or an
/// output that is the image (`type=image`, `type=registry`, `type=docker` without `dest`).
pub fn keeps_image(outputs: &[String], load: bool, tagged: bool) -> Result<bool> {
    if load || tagged || outputs.is_empty() {
        return Ok(true);
    }
    for o in outputs {
        if Export::parse(o)?.is_some() {
            continue;
        }
        if output_type(o).as_deref() == Some("docker")
            || crate::export::registry::parse_image_output(o)?.is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The `type=` of an `--output` value.
fn output_type(spec: &str) -> Option<String> {
    spec.split(',').find_map(|f| {
        let (k, v) = f.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("type")).then(|| v.trim().to_ascii_lowercase())
    })
}

/// Writes a file (0644, as BuildKit's exports) through hoist's one atomic writer.
fn write_atomic(path: &Path, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut failed = None;
    let written = write_file_atomically_with_mode(path, Some(0o644), |mut w| match f(&mut w) {
        Ok(()) => Ok((w, ())),
        Err(e) => {
            let text = format!("{e:#}");
            failed = Some(e);
            Err(hoist_image::Error::Other(text))
        }
    });
    match (written, failed) {
        (_, Some(e)) => Err(e),
        (r, None) => Ok(r?),
    }
}

/// Unpacks the image's layers, in order, into `dir` (created if missing).
fn write_local(store: &Store, image: &str, dir: &Path) -> Result<()> {
    let img = store.resolve(image)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (diff_id, _) in img.layers()? {
        let r = store.open_layer(&diff_id)?;
        let (got, _) = apply_layer(r, dir, ApplyMode::Merge)
            .with_context(|| format!("writing layer {diff_id} to {}", dir.display()))?;
        if got != diff_id {
            bail!("layer {diff_id} read back as {got}");
        }
    }
    let _ = File::open(dir)?.sync_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        let p = |s: &str| Export::parse(s).unwrap();
        assert_eq!(
            p("out"),
            Some(Export {
                kind: ExportKind::Local,
                dest: Dest::Path("out".into())
            })
        );
        assert_eq!(p("-").unwrap().kind, ExportKind::Tar);
        assert_eq!(p("type=oci,dest=a.tar").unwrap().kind, ExportKind::Oci);
        assert_eq!(p("type=tar,dest=-").unwrap().dest, Dest::Stdout);
        assert_eq!(p("dest=d").unwrap().kind, ExportKind::Local);
        assert_eq!(p("type=image"), None);
        assert_eq!(p("type=registry,name=x"), None);
        assert!(Export::parse("type=local").is_err());
        assert!(Export::parse("type=bogus,dest=x").is_err());
        // Loaded into the store, as buildx loads it into Docker.
        assert_eq!(p("type=docker"), None);
    }

    #[test]
    fn which_outputs_keep_the_image() {
        let k = |o: &[&str], load, tagged| {
            let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
            keeps_image(&o, load, tagged).unwrap()
        };
        assert!(k(&[], false, false));
        assert!(!k(&["type=local,dest=x"], false, false));
        assert!(!k(&["-", "type=oci,dest=a.tar"], false, false));
        assert!(!k(&["type=cacheonly"], false, false));
        assert!(k(&["type=local,dest=x"], true, false));
        assert!(k(&["type=local,dest=x"], false, true));
        assert!(k(&["type=local,dest=x", "type=image"], false, false));
        assert!(k(&["type=docker"], false, false));
        assert!(!k(&["type=docker,dest=d.tar"], false, false));
    }
}
