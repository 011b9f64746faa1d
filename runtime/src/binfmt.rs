//! QEMU user emulation through binfmt_misc, for RUN steps of a foreign platform.
//!
//! Owns: deciding whether an OCI architecture runs natively, finding the kernel's binfmt_misc entry
//! for it, and registering Debian's `qemu-user-static` interpreter (mounting binfmt_misc first) when
//! hoist is root. Must not touch: the sandbox itself (the caller runs the step; [`Emulation::check_rootfs`]
//! says whether an entry without the `F` flag can work in a given root filesystem).
//!
//! Registration data comes from the package's own files, `/usr/lib/binfmt.d/qemu-<qarch>.conf`
//! (systemd's `:name:type:offset:magic:mask:interpreter:flags`) or `/usr/share/binfmts/qemu-<qarch>`
//! (update-binfmts' `key value` lines); a small built-in table (QEMU's `qemu-binfmt-conf.sh` values)
//! is the fallback when only `/usr/bin/qemu-<qarch>-static` is installed.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the kernel's binfmt_misc file system is mounted.
const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// The Debian package that ships the interpreters.
const PACKAGE: &str = "qemu-user-static";

/// How binaries of an architecture run on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    /// The kernel runs them itself: no QEMU.
    Native,
    /// binfmt_misc already had an enabled entry.
    Registered(Entry),
    /// hoist registered (or enabled) the entry just now; the CLI says so.
    RegisteredNow(Entry),
}

/// An enabled binfmt_misc entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name, `qemu-aarch64`.
    pub name: String,
    /// The interpreter path the kernel runs.
    pub interpreter: PathBuf,
    /// The entry's flags as the kernel lists them (`POF`).
    pub flags: String,
}

impl Entry {
    /// Whether the kernel opened the interpreter at registration (`F`): it then works in any
    /// root filesystem; otherwise the path must exist inside the sandbox.
    pub fn fix_binary(&self) -> bool {
        self.flags.contains('F')
    }
}

impl Emulation {
    /// The entry in use, if binaries are emulated.
    pub fn entry(&self) -> Option<&Entry> {
        match self {
            Emulation::Native => None,
            Emulation::Registered(e) | Emulation::RegisteredNow(e) => Some(e),
        }
    }

    /// The line the CLI prints after registering, `registered qemu-aarch64 (binfmt_misc, F)`.
    pub fn announcement(&self) -> Option<String> {
        match self {
            Emulation::RegisteredNow(e) => Some(format!(
                "registered {} (binfmt_misc, {})",
                e.name,
                if e.fix_binary() { "F" } else { "no F" }
            )),
            _ => None,
        }
    }

    /// An entry without `F` needs its interpreter at the same path inside the sandbox's root
    /// `rootfs`: errors when it is not there.
    pub fn check_rootfs(&self, rootfs: &Path) -> Result<(), BinfmtError> {
        match self.entry() {
            Some(e) if !e.fix_binary() => {
                let inside = rootfs.join(e.interpreter.strip_prefix("/").unwrap_or(&e.interpreter));
                if fs::symlink_metadata(&inside).is_ok() {
                    Ok(())
                } else {
                    Err(BinfmtError::InterpreterNotInRootfs { entry: e.clone() })
                }
            }
            _ => Ok(()),
        }
    }
}

/// Why foreign binaries cannot run; Display names the package and the admin's command.
#[derive(Debug)]
pub enum BinfmtError {
    /// Not an architecture QEMU emulates.
    UnknownArch(String),
    /// `qemu-user-static` is not installed.
    PackageMissing { qarch: String },
    /// The entry is missing or disabled and hoist may not change binfmt_misc.
    NotPermitted {
        qarch: String,
        why: String,
        register_line: Option<String>,
    },
    /// The entry has no `F` flag and its interpreter is not inside the root filesystem.
    InterpreterNotInRootfs { entry: Entry },
}

impl fmt::Display for BinfmtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinfmtError::UnknownArch(a) => write!(
                f,
                "no QEMU emulation for architecture {a:?} (expected amd64, 386, arm64, arm, riscv64, ppc64le, s390x, mips64le, loong64)"
            ),
            BinfmtError::PackageMissing { qarch } => write!(
                f,
                "cannot run {qarch} binaries: binfmt_misc has no qemu-{qarch} entry and the {PACKAGE} package is not installed; an administrator runs: apt-get install {PACKAGE} && update-binfmts --enable qemu-{qarch}"
            ),
            BinfmtError::NotPermitted {
                qarch,
                why,
                register_line,
            } => {
                write!(
                    f,
                    "cannot run {qarch} binaries: binfmt_misc has no enabled qemu-{qarch} entry and hoist cannot register one ({why}); an administrator runs: apt-get install {PACKAGE} && update-binfmts --enable qemu-{qarch}"
                )?;
                if let Some(line) = register_line {
                    write!(f, " (or: echo '{line}' > {BINFMT_DIR}/register)")?;
                }
                Ok(())
            }
            BinfmtError::InterpreterNotInRootfs { entry } => write!(
                f,
                "binfmt_misc entry {} has no F flag, so its interpreter {} must exist inside the build container, and it does not; re-register it with the F flag: update-binfmts --disable {} && echo ':{}:M::…:{}F' > {BINFMT_DIR}/register (Debian's {PACKAGE} does this)",
                entry.name,
                entry.interpreter.display(),
                entry.name,
                entry.name,
                entry.flags
            ),
        }
    }
}

impl std::error::Error for BinfmtError {}

/// QEMU's name for an OCI architecture (`arm64` → `aarch64`); a `/variant` and a leading `linux/`
/// are accepted and ignored (every ARM variant runs under `qemu-arm`).
pub fn qemu_arch(arch: &str) -> Option<&'static str> {
    let arch = arch.strip_prefix("linux/").unwrap_or(arch);
    let base = arch.split('/').next().unwrap_or(arch);
    Some(match base {
        "amd64" | "x86_64" => "x86_64",
        "386" | "i386" => "i386",
        "arm64" | "aarch64" => "aarch64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "ppc64le" => "ppc64le",
        "ppc64" => "ppc64",
        "s390x" => "s390x",
        "mips64le" => "mips64el",
        "mips64" => "mips64",
        "mipsle" => "mipsel",
        "mips" => "mips",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// Whether a host whose `uname -m` is `machine` runs `qarch` binaries without QEMU.
/// `arm_el0_32` says whether an arm64 kernel runs AArch32 code.
pub fn native(machine: &str, qarch: &str, arm_el0_32: bool) -> bool {
    match machine {
        "x86_64" => matches!(qarch, "x86_64" | "i386"),
        "aarch64" => qarch == "aarch64" || (qarch == "arm" && arm_el0_32),
        "i686" | "i586" | "i386" => qarch == "i386",
        m if m.starts_with("armv") => qarch == "arm",
        m => m == qarch,
    }
}

/// What registering an interpreter needs: one binfmt_misc rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Offset of the magic in the file.
    pub offset: u32,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
    pub interpreter: PathBuf,
    pub flags: String,
}

impl Rule {
    /// The line written to binfmt_misc's `register` file.
    pub fn register_line(&self) -> String {
        format!(
            ":{}:M:{}:{}:{}:{}:{}",
            self.name,
            if self.offset == 0 {
                String::new()
            } else {
                self.offset.to_string()
            },
            escape(&self.magic),
            escape(&self.mask),
            self.interpreter.display(),
            self.flags
        )
    }
}

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

/// Decodes `\x7f\x45…` (and plain characters) as binfmt_misc and update-binfmts write magic.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'x') {
                let hex = s.get(i + 2..i + 4)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            } else {
                out.push(*b.get(i + 1)?);
                i += 2;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Parses systemd's binfmt.d line `:name:M:offset:magic:mask:interpreter:flags` (comments skipped).
pub fn parse_binfmt_d(text: &str) -> Option<Rule> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))?;
    let sep = line.chars().next()?;
    let f: Vec<&str> = line[sep.len_utf8()..].split(sep).collect();
    if f.len() < 6 || f[1] != "M" {
        return None;
    }
    Some(Rule {
        name: f[0].to_string(),
        offset: if f[2].is_empty() {
            0
        } else {
            f[2].parse().ok()?
        },
        magic: unescape(f[3])?,
        mask: unescape(f[4])?,
        interpreter: PathBuf::from(f[5]),
        flags: f.get(6).copied().unwrap_or("").trim().to_string(),
    })
}

/// Parses update-binfmts' `/usr/share/binfmts/<name>` format (`interpreter …`, `magic …`,
/// `fix_binary yes`…), with flags as Debian's binfmt-support derives them.
pub fn parse_binfmts(name: &str, text: &str) -> Option<Rule> {
    let mut rule = Rule {
        name: name.to_string(),
        offset: 0,
        magic: Vec::new(),
        mask: Vec::new(),
        interpreter: PathBuf::new(),
        flags: String::new(),
    };
    let (mut preserve, mut credentials, mut fix) = (false, false, false);
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once(char::is_whitespace) else {
            continue;
        };
        let value = value.trim();
        match key {
            "interpreter" => rule.interpreter = PathBuf::from(value),
            "magic" => rule.magic = unescape(value)?,
            "mask" => rule.mask = unescape(value)?,
            "offset" => rule.offset = value.parse().ok()?,
            "preserve" => preserve = value == "yes",
            "credentials" => credentials = value == "yes",
            "fix_binary" => fix = value == "yes",
            _ => {}
        }
    }
    if rule.magic.is_empty() || rule.interpreter.as_os_str().is_empty() {
        return None;
    }
    // binfmt-support writes O with P (the -binfmt-P wrappers need the open descriptor) and C.
    if preserve || credentials {
        rule.flags.push('O');
    }
    if preserve {
        rule.flags.push('P');
    }
    if credentials {
        rule.flags.push('C');
    }
    if fix {
        rule.flags.push('F');
    }
    Some(rule)
}

/// QEMU's own magic and mask (scripts/qemu-binfmt-conf.sh), for when only the static binary is
/// installed (little-endian architectures only; x86's mask also accepts any OS ABI byte).
fn builtin(qarch: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    // ELF header of a little-endian executable: class (1: 32-bit, 2: 64-bit) and e_machine.
    let elf = |class: u8, machine: u8| -> Vec<u8> {
        let mut m = vec![
            0x7f, b'E', b'L', b'F', class, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        m.extend_from_slice(&[2, 0, machine, 0]);
        m
    };
    let le = vec![
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xfe, 0xff, 0xff, 0xff,
    ];
    let x86 = vec![
        0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfe, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xfe, 0xff, 0xff, 0xff,
    ];
    Some(match qarch {
        "aarch64" => (elf(2, 0xb7), le),
        "arm" => (elf(1, 0x28), le),
        "riscv64" => (elf(2, 0xf3), le),
        "x86_64" => (elf(2, 0x3e), x86),
        "i386" => (elf(1, 0x03), x86),
        _ => return None,
    })
}

/// The rule Debian's package would register for `qarch`, read from its files under `root` (`/`).
pub fn package_rule(root: &Path, qarch: &str) -> Option<Rule> {
    let name = format!("qemu-{qarch}");
    let rel = |p: &str| root.join(p.trim_start_matches('/'));
    if let Ok(text) = fs::read_to_string(rel(&format!("/usr/lib/binfmt.d/{name}.conf"))) {
        if let Some(rule) = parse_binfmt_d(&text) {
            return Some(rule);
        }
    }
    if let Ok(text) = fs::read_to_string(rel(&format!("/usr/share/binfmts/{name}"))) {
        if let Some(rule) = parse_binfmts(&name, &text) {
            return Some(rule);
        }
    }
    let wrapper = format!("/usr/libexec/qemu-binfmt/{qarch}-binfmt-P");
    let fixed = format!("/usr/bin/qemu-{qarch}-static");
    let (magic, mask) = builtin(qarch)?;
    let (interpreter, flags) = if rel(&wrapper).exists() {
        (wrapper, "OPF")
    } else if rel(&fixed).exists() {
        (fixed, "CF")
    } else {
        return None;
    };
    Some(Rule {
        name,
        offset: 0,
        magic,
        mask,
        interpreter: PathBuf::from(interpreter),
        flags: flags.to_string(),
    })
}

/// Parses a binfmt_misc entry file (`enabled`, `interpreter …`, `flags: …`); `None` for a
/// malformed file, `Some((enabled, entry))` otherwise.
pub fn parse_entry(name: &str, text: &str) -> Option<(bool, Entry)> {
    let mut lines = text.lines();
    let enabled = lines.next()?.trim() == "enabled";
    let mut entry = Entry {
        name: name.to_string(),
        interpreter: PathBuf::new(),
        flags: String::new(),
    };
    for line in lines {
        if let Some(i) = line.strip_prefix("interpreter ") {
            entry.interpreter = PathBuf::from(i.trim());
        } else if let Some(f) = line.strip_prefix("flags:") {
            entry.flags = f.trim().to_string();
        }
    }
    Some((enabled, entry))
}

/// Makes binaries of OCI architecture `arch` (`arm64`, `arm/v7`, `riscv64`…) runnable: see
/// [`Emulation`]. Registers Debian's interpreter with `F` when root and the entry is missing.
pub fn ensure(arch: &str) -> Result<Emulation, BinfmtError> {
    let machine = rustix::system::uname()
        .machine()
        .to_string_lossy()
        .into_owned();
    let host = Host {
        arm_el0_32: machine == "aarch64" && runs_aarch32(),
        machine,
        binfmt: PathBuf::from(BINFMT_DIR),
        package_root: PathBuf::from("/"),
        root: rustix::process::geteuid().is_root(),
    };
    ensure_on(&host, arch)
}

/// The facts [`ensure`] decides on.
#[derive(Debug, Clone)]
pub struct Host {
    /// `uname -m`.
    pub machine: String,
    /// Whether an arm64 kernel runs AArch32 code.
    pub arm_el0_32: bool,
    /// Where binfmt_misc is (or is to be) mounted.
    pub binfmt: PathBuf,
    /// Where the package's files are looked for (`/`).
    pub package_root: PathBuf,
    /// Whether hoist may mount and register (effective uid 0).
    pub root: bool,
}

/// [`ensure`] on the given host facts.
pub fn ensure_on(host: &Host, arch: &str) -> Result<Emulation, BinfmtError> {
    let qarch = qemu_arch(arch).ok_or_else(|| BinfmtError::UnknownArch(arch.to_string()))?;
    if native(&host.machine, qarch, host.arm_el0_32) {
        return Ok(Emulation::Native);
    }
    let dir = host.binfmt.as_path();
    let name = format!("qemu-{qarch}");
    let rule = package_rule(&host.package_root, qarch);
    let line = rule.as_ref().map(Rule::register_line);
    let refuse = |why: String| BinfmtError::NotPermitted {
        qarch: qarch.to_string(),
        why,
        register_line: line.clone(),
    };
    if !dir.join("register").exists() {
        if !host.root {
            return Err(refuse(format!(
                "binfmt_misc is not mounted on {} and hoist is not root",
                dir.display()
            )));
        }
        rustix::mount::mount(
            "binfmt_misc",
            dir,
            "binfmt_misc",
            rustix::mount::MountFlags::NOSUID
                | rustix::mount::MountFlags::NODEV
                | rustix::mount::MountFlags::NOEXEC,
            None,
        )
        .map_err(|e| refuse(format!("mounting binfmt_misc on {}: {e}", dir.display())))?;
    }
    // binfmt_misc as a whole can be switched off (`echo 0 > status`).
    let status = dir.join("status");
    if fs::read_to_string(&status).is_ok_and(|s| s.trim() == "disabled") {
        if !host.root {
            return Err(refuse(format!(
                "{} says disabled and hoist is not root",
                status.display()
            )));
        }
        fs::write(&status, "1")
            .map_err(|e| refuse(format!("enabling {}: {e}", status.display())))?;
    }
    let path = dir.join(&name);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let (enabled, entry) = parse_entry(&name, &text)
                .ok_or_else(|| refuse(format!("cannot parse {}", path.display())))?;
            if enabled {
                return Ok(Emulation::Registered(entry));
            }
            if !host.root {
                return Err(refuse(format!("{name} is disabled and hoist is not root")));
            }
            fs::write(&path, "1")
                .map_err(|e| refuse(format!("enabling {}: {e}", path.display())))?;
            return Ok(Emulation::RegisteredNow(entry));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(refuse(format!("reading {}: {e}", path.display()))),
    }
    let missing = || BinfmtError::PackageMissing {
        qarch: qarch.to_string(),
    };
    let rule = rule.ok_or_else(missing)?;
    // With F the kernel opens the interpreter at registration: it must be installed now.
    let interpreter = host.package_root.join(
        rule.interpreter
            .strip_prefix("/")
            .unwrap_or(&rule.interpreter),
    );
    if !interpreter.exists() {
        return Err(missing());
    }
    if !host.root {
        return Err(refuse("hoist is not root".to_string()));
    }
    match fs::write(dir.join("register"), rule.register_line()) {
        Ok(()) => {}
        // Registered concurrently (another hoist): use what the kernel has.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => {
            return Err(refuse(format!(
                "writing {}: {e}",
                dir.join("register").display()
            )));
        }
    }
    let text = fs::read_to_string(&path)
        .map_err(|e| refuse(format!("reading {} after registering: {e}", path.display())))?;
    let (_, entry) = parse_entry(&name, &text)
        .ok_or_else(|| refuse(format!("cannot parse {}", path.display())))?;
    Ok(Emulation::RegisteredNow(entry))
}

/// Whether this arm64 kernel runs AArch32 code: it accepts the `PER_LINUX32` personality only then.
fn runs_aarch32() -> bool {
    const QUERY: libc::c_ulong = 0xffff_ffff;
    // <linux/personality.h>'s PER_LINUX32.
    const PER_LINUX32: libc::c_ulong = 0x0008;
    // SAFETY: personality(2) only reads or sets this thread's execution domain; the previous one
    // is restored at once, and nothing runs in between that depends on it (it affects execve only).
    unsafe {
        let old = libc::personality(QUERY);
        if old == -1 {
            return false;
        }
        let ok = libc::personality(PER_LINUX32) != -1;
        libc::personality(old as libc::c_ulong);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64_CONF: &str = r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF
";

    #[test]
    fn oci_arches_map_to_qemu_names() {
        assert_eq!(qemu_arch("arm64"), Some("aarch64"));
        assert_eq!(qemu_arch("arm/v7"), Some("arm"));
        assert_eq!(qemu_arch("linux/arm/v6"), Some("arm"));
        assert_eq!(qemu_arch("386"), Some("i386"));
        assert_eq!(qemu_arch("amd64"), Some("x86_64"));
        assert_eq!(qemu_arch("ppc64le"), Some("ppc64le"));
        assert_eq!(qemu_arch("mips64le"), Some("mips64el"));
        assert_eq!(qemu_arch("loong64"), Some("loongarch64"));
        assert_eq!(qemu_arch("sparc"), None);
        assert!(
            ensure("sparc")
                .unwrap_err()
                .to_string()
                .contains("\"sparc\"")
        );
    }

    #[test]
    fn native_arches() {
        assert!(native("x86_64", "x86_64", false));
        assert!(native("x86_64", "i386", false));
        assert!(!native("x86_64", "aarch64", false));
        assert!(native("aarch64", "aarch64", false));
        assert!(native("aarch64", "arm", true));
        assert!(!native("aarch64", "arm", false));
        assert!(native("s390x", "s390x", false));
        assert!(!native("s390x", "ppc64le", false));
    }

    #[test]
    fn binfmt_d_conf_round_trips_to_the_register_line() {
        let rule = parse_binfmt_d(AARCH64_CONF).unwrap();
        assert_eq!(rule.name, "qemu-aarch64");
        assert_eq!(rule.magic.len(), 20);
        assert_eq!(&rule.magic[..4], b"\x7fELF");
        assert_eq!(rule.magic[18], 0xb7);
        assert_eq!(rule.mask[16], 0xfe);
        assert_eq!(
            rule.interpreter,
            Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
        );
        assert_eq!(rule.flags, "OPF");
        assert_eq!(rule.register_line(), AARCH64_CONF.trim_end());
        assert_eq!(parse_binfmt_d("# only a comment\n"), None);
        assert_eq!(parse_binfmt_d(":x:E::py::/usr/bin/python3:"), None);
    }

    #[test]
    fn update_binfmts_format_gives_debians_flags() {
        let text = r"package qemu-user-static
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
magic \x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00
offset 0
mask \xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff
credentials no
fix_binary yes
preserve yes
";
        let rule = parse_binfmts("qemu-aarch64", text).unwrap();
        assert_eq!(rule, parse_binfmt_d(AARCH64_CONF).unwrap());
    }

    #[test]
    fn package_files_and_the_builtin_fallback() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(package_rule(tmp.path(), "aarch64"), None);
        // Only the static binary: QEMU's own magic, flags C and F.
        fs::create_dir_all(tmp.path().join("usr/bin")).unwrap();
        fs::write(tmp.path().join("usr/bin/qemu-aarch64-static"), "").unwrap();
        let fallback = package_rule(tmp.path(), "aarch64").unwrap();
        let conf = parse_binfmt_d(AARCH64_CONF).unwrap();
        assert_eq!((&fallback.magic, &fallback.mask), (&conf.magic, &conf.mask));
        assert_eq!(fallback.flags, "CF");
        // The package's binfmt.d file wins.
        fs::create_dir_all(tmp.path().join("usr/lib/binfmt.d")).unwrap();
        fs::write(
            tmp.path().join("usr/lib/binfmt.d/qemu-aarch64.conf"),
            AARCH64_CONF,
        )
        .unwrap();
        assert_eq!(package_rule(tmp.path(), "aarch64").unwrap(), conf);
    }

    #[test]
    fn kernel_entry_and_the_f_flag() {
        let text = "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: OC\noffset 0\nmagic 7f454c46\nmask ffffffff\n";
        let (enabled, entry) = parse_entry("qemu-aarch64", text).unwrap();
        assert!(enabled);
        assert!(!entry.fix_binary());
        let tmp = tempfile::tempdir().unwrap();
        let emu = Emulation::Registered(entry.clone());
        let err = emu.check_rootfs(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("no F flag") && err.contains("/usr/bin/qemu-aarch64"),
            "{err}"
        );
        fs::create_dir_all(tmp.path().join("usr/bin")).unwrap();
        fs::write(tmp.path().join("usr/bin/qemu-aarch64"), "").unwrap();
        emu.check_rootfs(tmp.path()).unwrap();
        let with_f = Entry {
            flags: "POF".into(),
            ..entry
        };
        assert_eq!(
            Emulation::RegisteredNow(with_f).announcement().unwrap(),
            "registered qemu-aarch64 (binfmt_misc, F)"
        );
        let (disabled, _) = parse_entry("x", "disabled\n").unwrap();
        assert!(!disabled);
    }

    #[test]
    fn errors_name_the_package_and_the_command() {
        let e = BinfmtError::NotPermitted {
            qarch: "aarch64".into(),
            why: "hoist is not root".into(),
            register_line: Some(parse_binfmt_d(AARCH64_CONF).unwrap().register_line()),
        }
        .to_string();
        assert!(e.contains("apt-get install qemu-user-static"), "{e}");
        assert!(e.contains("update-binfmts --enable qemu-aarch64"), "{e}");
        assert!(
            e.contains(&format!(
                "echo '{}' > /proc/sys/fs/binfmt_misc/register",
                AARCH64_CONF.trim_end()
            )),
            "{e}"
        );
        let m = BinfmtError::PackageMissing {
            qarch: "riscv64".into(),
        }
        .to_string();
        assert!(m.contains("apt-get install qemu-user-static") && m.contains("qemu-riscv64"));
    }

    /// A fake host: binfmt_misc as a plain directory with `register`, the package under `pkg/`.
    fn fake_host(root: bool, package: bool) -> (tempfile::TempDir, Host) {
        let tmp = tempfile::tempdir().unwrap();
        let binfmt = tmp.path().join("binfmt");
        fs::create_dir(&binfmt).unwrap();
        fs::write(binfmt.join("register"), "").unwrap();
        fs::write(binfmt.join("status"), "enabled\n").unwrap();
        let package_root = tmp.path().join("pkg");
        if package {
            fs::create_dir_all(package_root.join("usr/lib/binfmt.d")).unwrap();
            fs::write(
                package_root.join("usr/lib/binfmt.d/qemu-aarch64.conf"),
                AARCH64_CONF,
            )
            .unwrap();
            fs::create_dir_all(package_root.join("usr/libexec/qemu-binfmt")).unwrap();
            fs::write(
                package_root.join("usr/libexec/qemu-binfmt/aarch64-binfmt-P"),
                "",
            )
            .unwrap();
        }
        let host = Host {
            machine: "x86_64".into(),
            arm_el0_32: false,
            binfmt,
            package_root,
            root,
        };
        (tmp, host)
    }

    #[test]
    fn decisions_on_a_fake_host() {
        let (_t, host) = fake_host(false, true);
        assert_eq!(ensure_on(&host, "amd64").unwrap(), Emulation::Native);
        assert_eq!(ensure_on(&host, "386").unwrap(), Emulation::Native);
        // Missing, not root: the admin's commands, with the exact register line.
        let e = ensure_on(&host, "arm64").unwrap_err().to_string();
        assert!(e.contains("hoist is not root"), "{e}");
        assert!(e.contains(AARCH64_CONF.trim_end()), "{e}");
        // Missing package.
        let (_t2, bare) = fake_host(true, false);
        let e = ensure_on(&bare, "arm64").unwrap_err();
        assert!(matches!(e, BinfmtError::PackageMissing { .. }), "{e}");
        // Registered and enabled: used as is, whoever registered it.
        let entry = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\n";
        fs::write(host.binfmt.join("qemu-aarch64"), entry).unwrap();
        let Emulation::Registered(e) = ensure_on(&host, "arm64").unwrap() else {
            panic!("not Registered")
        };
        assert!(e.fix_binary());
        assert_eq!(e.interpreter, Path::new("/usr/bin/qemu-aarch64-static"));
        // Disabled: not root gets update-binfmts --enable; root enables it.
        fs::write(host.binfmt.join("qemu-aarch64"), "disabled\nflags: F\n").unwrap();
        let e = ensure_on(&host, "arm64").unwrap_err().to_string();
        assert!(e.contains("update-binfmts --enable qemu-aarch64"), "{e}");
        let root = Host {
            root: true,
            ..host.clone()
        };
        assert!(matches!(
            ensure_on(&root, "arm64").unwrap(),
            Emulation::RegisteredNow(_)
        ));
        assert_eq!(
            fs::read_to_string(host.binfmt.join("qemu-aarch64")).unwrap(),
            "1"
        );
        // binfmt_misc switched off as a whole.
        fs::write(host.binfmt.join("status"), "disabled\n").unwrap();
        let e = ensure_on(&host, "arm64").unwrap_err().to_string();
        assert!(e.contains("status says disabled"), "{e}");
    }

    #[test]
    fn root_registration_writes_the_package_rule() {
        let (_t, host) = fake_host(true, true);
        // The fake register file does not create an entry, as the kernel would: the error says so
        // after the line was written.
        let e = ensure_on(&host, "arm64").unwrap_err().to_string();
        assert!(e.contains("after registering"), "{e}");
        assert_eq!(
            fs::read_to_string(host.binfmt.join("register")).unwrap(),
            AARCH64_CONF.trim_end()
        );
    }
}
