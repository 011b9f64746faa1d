//! Benchmark driver (used by bench/layer-commit.sh): commits DIR as a layer into a fresh store.
//!
//! usage: layer_commit DIR STORE none|gzip|zstd|push-gzip|push-zstd
//! `push-*` commits DIR uncompressed first (not timed), then times compressing the stored layer as a
//! push does (`Store::compressed_layer`).
//! Prints: `<mode> <diff_id> <uncompressed bytes> <blob bytes> <seconds>`.

use std::path::PathBuf;
use std::time::Instant;

use hoist_image::Store;
use hoist_image::layer::{Compression, LayerOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: layer_commit DIR STORE none|gzip|zstd|push-gzip|push-zstd".into());
    }
    let (dir, store) = (PathBuf::from(&args[1]), Store::open(&args[2])?);
    let (push, mode) = match args[3].strip_prefix("push-") {
        Some(m) => (true, m),
        None => (false, args[3].as_str()),
    };
    let c = match mode {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        other => return Err(format!("unknown compression {other}").into()),
    };
    let opts = LayerOptions::default();
    if push {
        let info = store.commit_dir(&dir, &opts)?;
        let t = Instant::now();
        let desc = store.compressed_layer(&info.diff_id, c)?;
        println!(
            "push-{} {} {} {} {:.3}",
            c.name(),
            info.diff_id,
            info.size,
            desc.size(),
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let t = Instant::now();
    let (info, blob) = if c == Compression::None {
        let info = store.commit_dir(&dir, &opts)?;
        let size = info.size;
        (info, size)
    } else {
        let (info, desc) = store.commit_dir_compressed(&dir, &opts, c)?;
        (info, desc.size())
    };
    println!(
        "{} {} {} {} {:.3}",
        c.name(),
        info.diff_id,
        info.size,
        blob,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
