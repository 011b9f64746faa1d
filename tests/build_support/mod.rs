//! Helpers shared by the `hoist build` test files (build_cli, build_advanced_cli): reading a built
//! image's files from the store and writing throwaway build contexts.

#![allow(dead_code)]

use std::path::Path;

use hoist_builder::union::Union;
use hoist_image::Store;

/// The merged view of image `name`'s layers in the store at `root`.
pub fn view(root: &Path, name: &str) -> Union {
    let store = Store::open(root).unwrap();
    let img = store.resolve(name).unwrap();
    Union::new(store.unpacked_layers(&img).unwrap())
}

/// A file of image `name` as text (panics when it is missing).
pub fn read(root: &Path, name: &str, path: &str) -> String {
    let bytes = view(root, name)
        .read(path)
        .unwrap_or_else(|| panic!("{path} missing in {name}"));
    String::from_utf8(bytes).unwrap()
}

/// Image `name`'s ID.
pub fn image_id(root: &Path, name: &str) -> String {
    Store::open(root)
        .unwrap()
        .resolve(name)
        .unwrap()
        .id()
        .to_string()
}

/// A context directory holding `dockerfile` as its Dockerfile and `files` (path, content).
pub fn context_with(dockerfile: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (p, content) in files {
        let path = ctx.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    ctx
}
