//! `--chown` and `USER` names resolved against the image's own `/etc/passwd` and `/etc/group`.

use anyhow::{Result, bail};

use crate::union::Union;

fn find(file: &[u8], name: &str, field: usize) -> Option<Vec<String>> {
    String::from_utf8_lossy(file).lines().find_map(|l| {
        let f: Vec<String> = l.split(':').map(String::from).collect();
        (f.len() > field && f[0] == name).then_some(f)
    })
}

/// Resolves `user[:group]` (names or numeric ids) to `(uid, gid)` in the image `view`. A user
/// without a group gets the user's primary group (a numeric uid not in passwd: gid = uid).
pub fn resolve_chown(spec: &str, view: &Union) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = view.read("/etc/passwd").unwrap_or_default();
    let (uid, primary) = if let Ok(n) = user.parse::<u32>() {
        let primary = String::from_utf8_lossy(&passwd).lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[2] == user)
                .then(|| f[3].parse::<u32>().ok())
                .flatten()
        });
        (n, primary.unwrap_or(n))
    } else {
        match find(&passwd, user, 3) {
            Some(f) => (f[2].parse()?, f[3].parse()?),
            None => bail!(
                "unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: no such user: {user}"
            ),
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = view.read("/etc/group").unwrap_or_default();
                match find(&groups, g, 2) {
                    Some(f) => f[2].parse()?,
                    None => bail!(
                        "unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}"
                    ),
                }
            }
        },
    };
    Ok((uid, gid))
}
