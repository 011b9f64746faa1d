//! Step cache keys: an explicit, versioned encoding built only from content.
//!
//! A key is `sha256:` + the SHA-256 of this byte stream, in this order:
//! 1. [`CACHE_VERSION`], then the op kind (`exec`, `file`, `mkdir`);
//! 2. `parent`: the key of the result the step builds on (a base image's id, a stage's result),
//!    then `platform`: the platform the step's stage is built for (`linux/arm64`), as BuildKit's
//!    ops carry theirs: an arm64 step never reuses an amd64 result, while a stage built
//!    `FROM --platform=$BUILDPLATFORM` has the same keys whatever the target platform;
//! 3. the op's semantic fields, in the fixed order [`exec_fields`], [`file_fields`] and
//!    [`mkdir_fields`] write them;
//! 4. `source-date-epoch` when set;
//! 5. `inputs`: the digests of what the step reads (COPY/ADD sources, bound mount paths), in order.
//!
//! Each field is its name, a type byte and its value: `s` + u64-LE length + bytes for a string,
//! `n` for an absent value, `l` + u64-LE count + length-prefixed items for a list. Nothing here
//! names a stage by index, position or name: a stage input is represented by its result digest
//! among the `inputs`, so adding a stage elsewhere in a Dockerfile leaves other keys unchanged.
//! Bump [`CACHE_VERSION`] whenever the encoding or what a step produces for the same key changes.

use sha2::{Digest as _, Sha256};

use crate::plan::{CacheMount, ExecMount, ExecOp, FileOp, Input, MkdirOp, Op, Sharing, Source};

/// v4: the step's platform follows its parent. v3: the explicit field encoding of this module
/// (v2 hashed the op's JSON, stage indexes included).
pub const CACHE_VERSION: &str = "hoist-build-cache-v4";

/// Appends typed, length-prefixed fields to a SHA-256.
pub struct KeyEncoder(Sha256);

impl KeyEncoder {
    /// Starts a key of `kind` under [`CACHE_VERSION`].
    pub fn new(kind: &str) -> KeyEncoder {
        let mut k = KeyEncoder(Sha256::new());
        k.str("version", CACHE_VERSION);
        k.str("kind", kind);
        k
    }

    fn name(&mut self, name: &str) {
        self.0.update(name.as_bytes());
        self.0.update([0]);
    }

    fn bytes(&mut self, v: &str) {
        self.0.update((v.len() as u64).to_le_bytes());
        self.0.update(v.as_bytes());
    }

    pub fn str(&mut self, name: &str, v: &str) {
        self.name(name);
        self.0.update(b"s");
        self.bytes(v);
    }

    pub fn opt(&mut self, name: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(name, v),
            None => {
                self.name(name);
                self.0.update(b"n");
            }
        }
    }

    pub fn list<S: AsRef<str>>(&mut self, name: &str, items: &[S]) {
        self.name(name);
        self.0.update(b"l");
        self.0.update((items.len() as u64).to_le_bytes());
        for i in items {
            self.bytes(i.as_ref());
        }
    }

    pub fn bool(&mut self, name: &str, v: bool) {
        self.str(name, if v { "true" } else { "false" });
    }

    pub fn num<N: ToString>(&mut self, name: &str, v: Option<N>) {
        self.opt(name, v.map(|n| n.to_string()).as_deref());
    }

    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

/// The key of a step: see the module doc for the order.
pub fn step_key(
    parent: &str,
    platform: &str,
    op: &Op,
    epoch: Option<i64>,
    inputs: &[String],
) -> String {
    let mut k = KeyEncoder::new(match op {
        Op::Exec(_) => "exec",
        Op::File(_) => "file",
        Op::Mkdir(_) => "mkdir",
    });
    k.str("parent", parent);
    k.str("platform", platform);
    match op {
        Op::Exec(e) => exec_fields(&mut k, e),
        Op::File(f) => file_fields(&mut k, f),
        Op::Mkdir(m) => mkdir_fields(&mut k, m),
    }
    k.num("source-date-epoch", epoch);
    k.list("inputs", inputs);
    k.finish()
}

/// What kind of input a step reads; its content is among the step's `inputs`. A named local
/// context reads like the main one (content without owners), so both are `context`.
fn input_kind(i: &Input) -> &'static str {
    match i {
        Input::Context | Input::Local(_) => "context",
        Input::Chain(_) => "stage",
        Input::Image(_) => "image",
        Input::Inline(_) => "inline",
    }
}

/// args, env, cwd, user, network, mounts (each: type, then its fields), then the sandbox:
/// `--add-host` names (not addresses, as BuildKit), shm size, ulimits, host name.
pub fn exec_fields(k: &mut KeyEncoder, e: &ExecOp) {
    k.list("args", &e.args);
    k.list("env", &e.env);
    k.str("cwd", &e.cwd);
    k.opt("user", e.user.as_deref());
    k.str(
        "network",
        match e.network {
            crate::plan::NetworkMode::Host => "host",
            crate::plan::NetworkMode::None => "none",
        },
    );
    k.num("mounts", Some(e.mounts.len()));
    for m in &e.mounts {
        mount_fields(k, m);
    }
    let hosts: Vec<&str> = e
        .sandbox
        .extra_hosts
        .iter()
        .map(|h| h.split_once('\t').map_or(h.as_str(), |(_, n)| n))
        .collect();
    k.list("extra-hosts", &hosts);
    k.num("shm-size", e.sandbox.shm_size);
    let ulimits: Vec<String> = e
        .sandbox
        .ulimits
        .iter()
        .map(|u| format!("{}:{}:{}", u.resource, u.soft, u.hard))
        .collect();
    k.list("ulimits", &ulimits);
    k.opt("hostname", e.sandbox.hostname.as_deref());
}

/// One mount: what it reads (by kind: the content is among the step's inputs) and its spec. Cache
/// directories, secret values and SSH sockets never enter a key; a cache id that only repeats the
/// target is left out.
fn mount_fields(k: &mut KeyEncoder, m: &ExecMount) {
    match m {
        ExecMount::Cache(CacheMount {
            target,
            id,
            sharing,
            mode,
            uid,
            gid,
            from,
            source,
            readonly,
        }) => {
            k.str("mount", "cache");
            k.str("target", target);
            let shared = *sharing == Sharing::Shared;
            k.str("id", if id == target && shared { "" } else { id });
            k.str(
                "sharing",
                match sharing {
                    Sharing::Shared => "shared",
                    Sharing::Private => "private",
                    Sharing::Locked => "locked",
                },
            );
            k.num("mode", mode.map(|m| format!("{m:o}")));
            k.num("uid", *uid);
            k.num("gid", *gid);
            k.opt("from", from.as_ref().map(input_kind));
            k.str("source", source);
            k.bool("readonly", *readonly);
        }
        ExecMount::Secret(s) => {
            k.str("mount", "secret");
            k.str("id", &s.id);
            k.opt("target", s.target.as_deref());
            k.opt("env", s.env.as_deref());
            k.bool("required", s.required);
            k.str("mode", &format!("{:o}", s.mode));
            k.num("uid", Some(s.uid));
            k.num("gid", Some(s.gid));
        }
        ExecMount::Ssh(s) => {
            k.str("mount", "ssh");
            k.str("id", &s.id);
            k.str("target", &s.target);
            k.bool("required", s.required);
        }
        ExecMount::Tmpfs { target, size } => {
            k.str("mount", "tmpfs");
            k.str("target", target);
            k.num("size", *size);
        }
        ExecMount::Bind {
            target,
            from,
            source,
            readwrite,
        } => {
            k.str("mount", "bind");
            k.str("target", target);
            k.str("from", input_kind(from));
            k.str("source", source);
            k.bool("readwrite", *readwrite);
        }
    }
}

/// from (kind), sources (count, then each: `path`; `http` and its checksum; `git`, keep-git-dir and
/// checksum), dest, chown, chmod (octal number or symbolic text), exclude, parents, link, unpack.
pub fn file_fields(k: &mut KeyEncoder, f: &FileOp) {
    k.str("from", input_kind(&f.from));
    k.num("sources", Some(f.sources.len()));
    for s in &f.sources {
        match s {
            Source::Path(p) => k.str("path", p),
            Source::Http { url, checksum } => {
                k.str("http", url);
                k.opt("checksum", checksum.as_deref());
            }
            Source::Git {
                url,
                keep_git_dir,
                checksum,
            } => {
                k.str("git", url);
                k.bool("keep-git-dir", *keep_git_dir);
                k.opt("checksum", checksum.as_deref());
            }
        }
    }
    k.str("dest", &f.dest);
    k.opt("chown", f.chown.as_deref());
    let chmod = f.chmod.as_ref().map(|c| match c.octal() {
        Some(n) => format!("octal:{n:o}"),
        None => format!("symbolic:{}", serde_json::to_string(c).unwrap_or_default()),
    });
    k.opt("chmod", chmod.as_deref());
    k.list("exclude", &f.exclude);
    k.bool("parents", f.parents);
    k.bool("link", f.link);
    k.bool("unpack", f.unpack);
}

/// path, user.
pub fn mkdir_fields(k: &mut KeyEncoder, m: &MkdirOp) {
    k.str("path", &m.path);
    k.opt("user", m.user.as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{NetworkMode, RunOptions};

    fn copy_from(from: Input) -> Op {
        Op::File(FileOp {
            from,
            sources: vec![Source::Path("/out".into())],
            dest: "/app/".into(),
            chown: None,
            chmod: None,
            exclude: vec![],
            parents: false,
            link: false,
            unpack: false,
        })
    }

    fn run(args: &[&str], mounts: Vec<ExecMount>) -> Op {
        Op::Exec(ExecOp {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: None,
            network: NetworkMode::Host,
            mounts,
            sandbox: RunOptions::default(),
        })
    }

    const P: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn golden_keys() {
        let inputs = vec!["sha256:aa".to_string()];
        assert_eq!(
            step_key(P, "linux/amd64", &copy_from(Input::Chain(1)), None, &inputs),
            "sha256:346779c6627539fca362f58cb08c0052b545219c2dce29ace00230f0bd8d6eec"
        );
        assert_eq!(
            step_key(
                P,
                "linux/amd64",
                &run(&["/bin/sh", "-c", "true"], vec![]),
                None,
                &[]
            ),
            "sha256:60d96cbe4e3b3d047d91c12f4e67f9c79065c9c53cab6f9a380d7962e532a451"
        );
        let mk = Op::Mkdir(MkdirOp {
            path: "/w".into(),
            user: Some("1:1".into()),
        });
        assert_eq!(
            step_key(P, "linux/amd64", &mk, Some(0), &[]),
            "sha256:c86aa73847d78bcf47becedc6ac1efb18245416a4efe24d0f057c030f17cbb53"
        );
        let mut add = copy_from(Input::Context);
        if let Op::File(f) = &mut add {
            f.sources = vec![Source::Git {
                url: "https://h/r.git#v1".into(),
                keep_git_dir: true,
                checksum: None,
            }];
            f.unpack = true;
        }
        let git = vec!["git:0123:sub:true".to_string()];
        assert_eq!(
            step_key(P, "linux/amd64", &add, None, &git),
            "sha256:86f515dbfa61b2f97ad2081911d69b31bc768da428bb3d6cbb307dee976d1f50"
        );
    }

    #[test]
    fn a_stage_counts_by_its_content_not_its_position() {
        let i = vec!["sha256:aa".to_string()];
        let k = |op: &Op, inputs: &[String]| step_key(P, "linux/amd64", op, None, inputs);
        assert_eq!(
            k(&copy_from(Input::Chain(1)), &i),
            k(&copy_from(Input::Chain(7)), &i)
        );
        assert_ne!(
            k(&copy_from(Input::Chain(1)), &i),
            k(&copy_from(Input::Chain(1)), &["sha256:bb".to_string()])
        );
        assert_ne!(
            k(&copy_from(Input::Chain(1)), &i),
            k(&copy_from(Input::Context), &i)
        );
        let bind = |c: usize| ExecMount::Bind {
            target: "/t".into(),
            from: Input::Chain(c),
            source: "a".into(),
            readwrite: false,
        };
        assert_eq!(
            k(&run(&["true"], vec![bind(1)]), &i),
            k(&run(&["true"], vec![bind(4)]), &i)
        );
    }

    #[test]
    fn every_field_and_the_boundaries_count() {
        let k = |op: &Op| step_key(P, "linux/amd64", op, None, &[]);
        // Moving a byte from one list item to the next is a different key.
        assert_ne!(k(&run(&["ab", "c"], vec![])), k(&run(&["a", "bc"], vec![])));
        assert_ne!(k(&run(&["a"], vec![])), k(&run(&["a", ""], vec![])));
        assert_ne!(
            step_key(P, "linux/amd64", &run(&["a"], vec![]), None, &[]),
            step_key(P, "linux/amd64", &run(&["a"], vec![]), Some(0), &[])
        );
        // The same step for another platform (or variant) is another key.
        for other in ["linux/arm64", "linux/arm/v7", "linux/arm/v6"] {
            assert_ne!(
                step_key(P, "linux/amd64", &run(&["a"], vec![]), None, &[]),
                step_key(P, other, &run(&["a"], vec![]), None, &[])
            );
        }
        let tmpfs = |size| ExecMount::Tmpfs {
            target: "/t".into(),
            size,
        };
        assert_ne!(
            k(&run(&["a"], vec![tmpfs(None)])),
            k(&run(&["a"], vec![tmpfs(Some(1))]))
        );
        let url = |s: Source| {
            let mut f = copy_from(Input::Context);
            if let Op::File(fo) = &mut f {
                fo.sources = vec![s];
            }
            k(&f)
        };
        let u = "https://h/r.git";
        let http = |checksum: Option<&str>| Source::Http {
            url: u.into(),
            checksum: checksum.map(String::from),
        };
        let git = |keep_git_dir, checksum: Option<&str>| Source::Git {
            url: u.into(),
            keep_git_dir,
            checksum: checksum.map(String::from),
        };
        let all = [
            url(Source::Path(u.into())),
            url(http(None)),
            url(http(Some("sha256:00"))),
            url(git(false, None)),
            url(git(true, None)),
            url(git(false, Some("abc"))),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let mut f = copy_from(Input::Context);
        let base = k(&f);
        if let Op::File(fo) = &mut f {
            fo.unpack = true;
        }
        assert_ne!(k(&f), base);
    }

    #[test]
    fn key_view_of_an_exec() {
        let op = |mounts: Vec<ExecMount>, hosts: Vec<String>| ExecOp {
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: None,
            network: NetworkMode::Host,
            mounts,
            sandbox: RunOptions {
                extra_hosts: hosts,
                ..Default::default()
            },
        };
        let bind = |from: Input, source: &str| ExecMount::Bind {
            target: "/t".into(),
            from,
            source: source.into(),
            readwrite: false,
        };
        let k = |e: &ExecOp| step_key(P, "linux/amd64", &Op::Exec(e.clone()), None, &[]);
        // A stage's position does not count (its content is keyed on its own); its source does.
        assert_eq!(
            k(&op(vec![bind(Input::Chain(1), "a")], vec![])),
            k(&op(vec![bind(Input::Chain(4), "a")], vec![]))
        );
        assert_ne!(
            k(&op(vec![bind(Input::Chain(1), "a")], vec![])),
            k(&op(vec![bind(Input::Chain(1), "b")], vec![]))
        );
        assert_ne!(
            k(&op(vec![bind(Input::Context, "a")], vec![])),
            k(&op(vec![bind(Input::Chain(1), "a")], vec![]))
        );
        assert_eq!(
            k(&op(vec![], vec!["10.0.0.1\tdb".into()])),
            k(&op(vec![], vec!["10.0.0.2\tdb".into()]))
        );
        assert_ne!(
            k(&op(vec![], vec!["10.0.0.1\tdb".into()])),
            k(&op(vec![], vec!["10.0.0.1\tcache".into()]))
        );
    }
}
