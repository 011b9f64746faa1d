//! Users and groups: `user`, `uid`, `user:group`, `uid:gid` resolved from the image's /etc/passwd and
//! /etc/group, as Docker does (numeric ids need not exist; names must).

use crate::error::{Error, Result};

/// A resolved identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership, plus `gid`).
    pub groups: Vec<u32>,
    /// Home directory from /etc/passwd, "/" if unknown.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// (name, gid, members) of each /etc/group line.
fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            return None;
        }
        let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// The gid of `group` (a number, or a name in the contents of /etc/group).
pub fn group_id(group: &str, group_file: &str) -> Result<u32> {
    match group.parse::<u32>() {
        Ok(gid) => Ok(gid),
        Err(_) => group_entries(group_file)
            .find(|(n, _, _)| *n == group)
            .map(|(_, gid, _)| gid)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unable to find group {group}: no matching entries in group file"
                ))
            }),
    }
}

/// Resolves `spec` (None = root) against the contents of /etc/passwd and /etc/group (empty if missing).
pub fn resolve(spec: Option<&str>, passwd: &str, group: &str) -> Result<User> {
    let spec = spec.filter(|s| !s.is_empty()).unwrap_or("0");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = passwd_entries(passwd).find(|e| match user_part.parse::<u32>() {
        Ok(uid) => e.uid == uid,
        Err(_) => e.name == user_part,
    });
    let (uid, mut gid, name, home) = match (entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name), e.home.to_string()),
        (None, Ok(uid)) => (uid, 0, None, "/".to_string()),
        (None, Err(_)) => {
            return Err(Error::Invalid(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            )));
        }
    };
    if let Some(g) = group_part {
        gid = group_id(g, group)?;
    }
    let mut groups = vec![gid];
    if let (None, Some(name)) = (group_part, name) {
        for (_, g, members) in group_entries(group) {
            if members.contains(&name) && !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app,root\n";

    #[test]
    fn names_and_numbers() {
        let root = resolve(None, PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        assert_eq!(root.groups, vec![0, 10]);
        let app = resolve(Some("app"), PASSWD, GROUP).unwrap();
        assert_eq!((app.uid, app.gid), (1000, 1000));
        assert_eq!(app.groups, vec![1000, 10]);
        let n = resolve(Some("1234:55"), PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid, n.groups.clone()), (1234, 55, vec![55]));
        let ng = resolve(Some("nobody:app"), PASSWD, GROUP).unwrap();
        assert_eq!((ng.uid, ng.gid), (65534, 1000));
        assert!(resolve(Some("ghost"), PASSWD, GROUP).is_err());
        assert!(resolve(Some("app:ghost"), PASSWD, GROUP).is_err());
        assert_eq!(group_id("wheel", GROUP).unwrap(), 10);
        assert_eq!(group_id("4242", GROUP).unwrap(), 4242);
        assert!(group_id("ghost", GROUP).is_err());
    }
}
