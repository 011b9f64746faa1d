//! `--chown` and `USER` names resolved against the image's own `/etc/passwd` and `/etc/group`, as
//! BuildKit does: a numeric (or `root`, or empty) user is that id with the same gid; a user name
//! takes its uid and primary gid from passwd; a group (numeric, `root`, empty = 0, or a name from
//! /etc/group) replaces the gid. A name that is not found leaves the ids as they were (0 for a
//! user, the user's gid for a group): BuildKit does not fail on it.

use crate::copy::union::Union;

/// A user or group as BuildKit's LLB carries it: an id, or a name looked up in the image.
enum Id<'a> {
    Num(u32),
    Name(&'a str),
}

fn parse(s: &str) -> Id<'_> {
    if s == "root" || s.is_empty() {
        return Id::Num(0);
    }
    // Go's strconv.ParseInt(s, 10, 32): an optional sign, then digits; stored as a uint32.
    match s.parse::<i32>() {
        Ok(n) => Id::Num(n as u32),
        Err(_) => Id::Name(s),
    }
}

/// The first line of an `/etc/passwd`- or `/etc/group`-style file whose name is `name`: its
/// numeric fields `fields` (each None when not a number).
fn lookup(file: &[u8], name: &str, fields: &[usize]) -> Option<Vec<Option<u32>>> {
    String::from_utf8_lossy(file).lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        (f.len() > fields.iter().copied().max().unwrap_or(0) && f[0] == name)
            .then(|| fields.iter().map(|&i| f[i].trim().parse().ok()).collect())
    })
}

/// Resolves `user[:group]` (names or numeric ids) to `(uid, gid)` in the image `view`.
pub fn resolve_chown(spec: &str, view: &Union) -> anyhow::Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match parse(user) {
        Id::Num(n) => (n, n),
        Id::Name(name) => {
            let passwd = view.read("/etc/passwd").unwrap_or_default();
            match lookup(&passwd, name, &[2, 3]).as_deref() {
                Some([Some(u), Some(g)]) => (*u, *g),
                _ => (0, 0),
            }
        }
    };
    match group.map(parse) {
        None => {}
        Some(Id::Num(n)) => gid = n,
        Some(Id::Name(name)) => {
            let groups = view.read("/etc/group").unwrap_or_default();
            if let Some([Some(g)]) = lookup(&groups, name, &[2]).as_deref() {
                gid = *g;
            }
        }
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> (tempfile::TempDir, Union) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let u = Union::new(vec![d.path().to_path_buf()]);
        (d, u)
    }

    #[test]
    fn buildkit_chown_rules() {
        let (_d, v) = image();
        let r = |s: &str| resolve_chown(s, &v).unwrap();
        // A numeric user is its own group, even when passwd names it with another primary group.
        assert_eq!(r("1500"), (1500, 1500));
        assert_eq!(r("1234"), (1234, 1234));
        assert_eq!(r("app"), (1234, 4321));
        assert_eq!(r("app:staff"), (1234, 50));
        assert_eq!(r("1500:staff"), (1500, 50));
        assert_eq!(r("app:77"), (1234, 77));
        assert_eq!(r(":staff"), (0, 50));
        assert_eq!(r("1234:"), (1234, 0));
        assert_eq!(r("root"), (0, 0));
        // Unknown names are not errors: the user is 0, an unknown group keeps the user's gid.
        assert_eq!(r("nosuch"), (0, 0));
        assert_eq!(r("app:nosuch"), (1234, 4321));
        assert_eq!(r("nosuch:staff"), (0, 50));
        assert_eq!(r("-1"), (u32::MAX, u32::MAX));
    }
}
