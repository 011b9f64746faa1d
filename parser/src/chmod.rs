//! `COPY/ADD --chmod` values as BuildKit's Dockerfile frontend (1.14+) takes them: octal bits
//! (`0755`), or a symbolic mode as chmod(1) writes it (`u=rwx,go=rx`, `+x`, `go-w`, `g=u-w`),
//! parsed like BSD `setmode(3)` with a zero umask (the Go port BuildKit uses: so `+x` is `a+x`, and
//! `X` only counts with `+`), then applied to each copied file's own mode.

use serde::{Serialize, Serializer};

const SUID: u32 = 0o4000;
const SGID: u32 = 0o2000;
const STICKY: u32 = 0o1000;
const RWXU: u32 = 0o700;
const RWXG: u32 = 0o070;
const RWXO: u32 = 0o007;
/// What `a` and a bare `=` cover: every bit but the sticky one.
const STANDARD: u32 = SUID | SGID | RWXU | RWXG | RWXO;

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// `0755`: these exact bits for every copied file.
    Octal(u32),
    /// `u=rwx,go=rx`: changes to each file's own mode.
    Symbolic(ModeSet),
}

impl Chmod {
    /// The bits of an octal value (None for a symbolic one).
    pub fn octal(&self) -> Option<u32> {
        match self {
            Chmod::Octal(n) => Some(*n),
            Chmod::Symbolic(_) => None,
        }
    }

    /// The mode a file with `mode` gets (`is_dir` for `X`).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(n) => *n,
            Chmod::Symbolic(s) => s.apply(mode, is_dir),
        }
    }
}

/// An octal value serializes as its number, a symbolic one as its text.
impl Serialize for Chmod {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Chmod::Octal(n) => s.serialize_u32(*n),
            Chmod::Symbolic(m) => s.serialize_str(&m.text),
        }
    }
}

/// One step of a symbolic mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Clear(u32),
    Set(u32),
    /// `+X`: set when the file is a directory or was executable by anyone.
    SetIfExec(u32),
    /// `g=u`, `o+g`: the class at `from` (a bit shift: 6, 3, 0) copied onto the classes in `to`.
    Copy {
        from: u32,
        to: [bool; 3],
        clear: bool,
        set: bool,
    },
}

/// A symbolic mode: its text and the steps it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeSet {
    text: String,
    ops: Vec<Op>,
}

/// `+`, `-` or `=` of `perm` for the classes in `who` (all when empty).
fn push_op(ops: &mut Vec<Op>, op: u8, who: u32, perm: u32) {
    let bits = if who != 0 { who & perm } else { perm };
    match op {
        b'=' => {
            ops.push(Op::Clear(if who != 0 { who } else { STANDARD }));
            ops.push(Op::Set(bits));
        }
        b'+' => ops.push(Op::Set(bits)),
        b'-' => ops.push(Op::Clear(bits)),
        _ => ops.push(Op::SetIfExec(bits)),
    }
}

impl ModeSet {
    /// Parses a symbolic mode (`[ugoa]*[+-=][rwxXstugo]*`, clauses joined by `,`).
    fn parse(text: &str) -> Option<ModeSet> {
        let b = text.as_bytes();
        let mut i = 0;
        let mut ops = Vec::new();
        let mut equal_done = false;
        loop {
            let mut who = 0;
            while let Some(c) = b.get(i) {
                who |= match c {
                    b'a' => STANDARD,
                    b'u' => SUID | RWXU,
                    b'g' => SGID | RWXG,
                    b'o' => RWXO,
                    _ => break,
                };
                i += 1;
            }
            // One or more operators for this `who`, as in `u+x-w`.
            loop {
                let op = *b.get(i)?;
                i += 1;
                match op {
                    b'+' | b'-' => {}
                    b'=' => equal_done = false,
                    _ => return None,
                }
                who &= !STICKY;
                let (mut perm, mut perm_x) = (0, 0);
                loop {
                    match b.get(i).copied().unwrap_or(0) {
                        b'r' => perm |= 0o444,
                        b'w' => perm |= 0o222,
                        b'x' => perm |= 0o111,
                        b'X' if op == b'+' => perm_x = 0o111,
                        b'X' => {}
                        // Set-id and sticky bits mean nothing for `o` alone.
                        b's' if who == 0 || who & !RWXO != 0 => perm |= SUID | SGID,
                        b't' if who == 0 || who & !RWXO != 0 => {
                            who |= STICKY;
                            perm |= STICKY;
                        }
                        b's' | b't' => {}
                        c @ (b'u' | b'g' | b'o') => {
                            if perm != 0 {
                                push_op(&mut ops, op, who, perm);
                                perm = 0;
                            }
                            if op == b'=' {
                                equal_done = true;
                            }
                            if perm_x != 0 {
                                push_op(&mut ops, b'X', who, perm_x);
                                perm_x = 0;
                            }
                            let to = if who != 0 {
                                [who & 0o400 != 0, who & 0o040 != 0, who & 0o004 != 0]
                            } else {
                                [true; 3]
                            };
                            ops.push(Op::Copy {
                                from: match c {
                                    b'u' => 6,
                                    b'g' => 3,
                                    _ => 0,
                                },
                                to,
                                clear: op != b'+',
                                set: op != b'-',
                            });
                        }
                        _ => {
                            if perm != 0 || (op == b'=' && !equal_done) {
                                equal_done |= op == b'=';
                                push_op(&mut ops, op, who, perm);
                            }
                            if perm_x != 0 {
                                push_op(&mut ops, b'X', who, perm_x);
                            }
                            break;
                        }
                    }
                    i += 1;
                }
                match b.get(i) {
                    None => {
                        return Some(ModeSet {
                            text: text.to_string(),
                            ops,
                        });
                    }
                    Some(b',') => {
                        i += 1;
                        break;
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// The mode a file with `mode` gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let orig = mode & 0o7777;
        let mut m = orig;
        for op in &self.ops {
            match *op {
                Op::Set(bits) => m |= bits,
                Op::Clear(bits) => m &= !bits,
                Op::SetIfExec(bits) => {
                    if is_dir || orig & 0o111 != 0 {
                        m |= bits;
                    }
                }
                Op::Copy {
                    from,
                    to,
                    clear,
                    set,
                } => {
                    let value = (m >> from) & 0o7;
                    for (on, shift) in to.into_iter().zip([6, 3, 0]) {
                        if !on {
                            continue;
                        }
                        if clear {
                            m &= !((if set { 0o7 } else { value }) << shift);
                        }
                        if set {
                            m |= value << shift;
                        }
                    }
                }
            }
        }
        m & 0o7777
    }
}

/// Parses an (expanded) `--chmod` value; an empty one sets nothing, as in BuildKit.
pub fn parse_chmod(v: &str) -> Result<Option<Chmod>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    if v.starts_with(|c: char| c.is_ascii_digit()) {
        return match u32::from_str_radix(v, 8) {
            Ok(n) if n <= 0o7777 => Ok(Some(Chmod::Octal(n))),
            _ => Err(format!(
                "invalid chmod parameter: '{v}'. it should be octal string and between 0 and 07777"
            )),
        };
    }
    ModeSet::parse(v).map(|m| Some(Chmod::Symbolic(m))).ok_or_else(|| {
        format!(
            "invalid chmod parameter: '{v}': invalid syntax (expected an octal mode such as 0755 or a symbolic one such as u=rwx,go=rx)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(text: &str, mode: u32, is_dir: bool) -> u32 {
        parse_chmod(text).unwrap().unwrap().apply(mode, is_dir)
    }

    #[test]
    fn symbolic_modes_as_bsd_chmod() {
        assert_eq!(sym("+x", 0o644, false), 0o755);
        assert_eq!(sym("u=rwx,go=rx", 0o600, false), 0o755);
        assert_eq!(sym("go-w", 0o777, false), 0o755);
        assert_eq!(sym("a+X", 0o644, false), 0o644);
        assert_eq!(sym("a+X", 0o644, true), 0o755);
        assert_eq!(sym("a+X", 0o744, false), 0o755);
        assert_eq!(sym("g=u-w", 0o700, false), 0o750);
        assert_eq!(sym("o=", 0o777, false), 0o770);
        assert_eq!(sym("u+s,+t", 0o755, true), 0o5755);
        assert_eq!(
            sym("o+s", 0o755, false),
            0o755,
            "set-id means nothing for o"
        );
        assert_eq!(sym("=rw,+X", 0o755, false), 0o777);
        assert_eq!(sym("=rw,+X", 0o644, false), 0o666);
        assert_eq!(
            sym("u=rwX", 0o600, true),
            0o600,
            "X counts with + only (BSD)"
        );
        assert_eq!(sym("u+x-w", 0o644, false), 0o544);
        assert_eq!(sym("a=r", 0o1777, true), 0o1444, "a leaves the sticky bit");
        assert_eq!(sym("0640", 0o777, false), 0o640);
    }

    #[test]
    fn values_and_errors() {
        assert_eq!(parse_chmod(""), Ok(None));
        assert_eq!(parse_chmod("755"), Ok(Some(Chmod::Octal(0o755))));
        assert_eq!(parse_chmod("7777").unwrap().unwrap().octal(), Some(0o7777));
        for v in ["10000", "8", "0o7", "9x"] {
            assert_eq!(
                parse_chmod(v).unwrap_err(),
                format!(
                    "invalid chmod parameter: '{v}'. it should be octal string and between 0 and 07777"
                )
            );
        }
        for v in ["rwx", "u=q", "a", "u+x,", "+x,,", "u", "+7"] {
            let e = parse_chmod(v).unwrap_err();
            assert!(
                e.starts_with(&format!("invalid chmod parameter: '{v}': invalid syntax")),
                "{v}: {e}"
            );
        }
        let s = serde_json::to_string(&[parse_chmod("0755").unwrap(), parse_chmod("+x").unwrap()]);
        assert_eq!(s.unwrap(), "[493,\"+x\"]");
    }
}
