//! Platforms (`os/arch[/variant]`): parsing, normalisation, formatting and matching with the
//! rules of containerd's `platforms` package, which Docker and BuildKit use for `--platform`.
//!
//! - [`Platform::parse`] is containerd's `Parse`: `arm64` alone means this OS, `linux` alone this
//!   machine's architecture, `aarch64`/`x86_64`/`armhf`/`i386` become `arm64`/`amd64`/`arm/v7`/`386`;
//!   a bad value is an error naming it, in containerd's words.
//! - [`Platform::normalize`] is containerd's `Normalize` (`linux/arm64/v8` ≡ `linux/arm64`,
//!   `linux/arm` ≡ `linux/arm/v7`).
//! - [`Platform::matches`] is containerd's `Only`: a wanted platform also runs what older
//!   variants of its architecture were built for (`arm/v7` runs `arm/v6` and `arm/v5`, `arm64`
//!   runs `arm/v8` down to `arm/v5`, `amd64` runs `386`); [`Platform::select`] prefers the closest.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An OS/architecture(/variant), as in an index entry's `platform` or `--platform linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// Operating systems Go knows (containerd's `isKnownOS`).
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

/// Architectures Go knows (containerd's `isKnownArch`).
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

fn invalid(msg: String) -> Error {
    Error::Other(format!("{msg}: invalid argument"))
}

/// A component after the OS: `[A-Za-z0-9_.-]+`.
fn valid_component(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn normalize_os(os: &str) -> String {
    match os.to_ascii_lowercase().as_str() {
        "" => "linux".into(),
        "macos" => "darwin".into(),
        o => o.into(),
    }
}

/// containerd's `normalizeArch`: canonical architecture and variant ("" for none).
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = (arch.to_ascii_lowercase(), variant.to_ascii_lowercase());
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".into(),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

fn opt(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

impl Platform {
    /// A platform from its parts, as given (not normalised).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
            os_version: None,
        }
    }

    /// Parses a `--platform` value as containerd's `Parse` does (see the module docs).
    pub fn parse(specifier: &str) -> Result<Platform> {
        if specifier.contains('*') {
            return Err(invalid(format!(
                "{specifier:?}: wildcards not yet supported"
            )));
        }
        let parts: Vec<&str> = specifier.splitn(4, '/').collect();
        let os_part = parts[0];
        // `os(version)`: only the name matters on Linux; keep the version as given.
        let (os_name, os_version) = match os_part.split_once('(') {
            Some((name, rest)) if rest.ends_with(')') => {
                (name, opt(rest[..rest.len() - 1].to_string()))
            }
            _ => (os_part, None),
        };
        if os_name.is_empty()
            || !os_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(invalid(format!(
                "{os_part:?} is an invalid OS component of {specifier:?}: OSAndVersion specifier component must match \"^([A-Za-z0-9_-]+)(?:\\\\(([A-Za-z0-9_.%-]*)((?:\\\\+[A-Za-z0-9_.%-]+)*)\\\\))?$\""
            )));
        }
        for part in &parts[1..] {
            if !valid_component(part) {
                return Err(invalid(format!(
                    "{part:?} is an invalid component of {specifier:?}: platform specifier component must match \"^[A-Za-z0-9_.-]+$\""
                )));
            }
        }
        let os = normalize_os(os_name);
        let mut p = Platform {
            os,
            architecture: String::new(),
            variant: None,
            os_version,
        };
        match parts.len() {
            1 => {
                if KNOWN_OS.contains(&p.os.as_str()) {
                    let host = Platform::host();
                    p.architecture = host.architecture;
                    p.variant = host.variant.filter(|v| v != "v7");
                    return Ok(p);
                }
                let (arch, variant) = normalize_arch(parts[0], "");
                if !KNOWN_ARCH.contains(&arch.as_str()) {
                    return Err(invalid(format!(
                        "{specifier:?}: unknown operating system or architecture"
                    )));
                }
                p.os = Platform::host().os;
                p.variant = opt(variant).filter(|v| !(arch == "arm" && v == "v7"));
                p.architecture = arch;
            }
            2 => {
                let (arch, variant) = normalize_arch(parts[1], "");
                p.variant = opt(variant).filter(|v| !(arch == "arm" && v == "v7"));
                p.architecture = arch;
            }
            3 => {
                let (arch, variant) = normalize_arch(parts[1], parts[2]);
                p.variant = if arch == "arm64" && variant.is_empty() {
                    Some("v8".into())
                } else {
                    opt(variant)
                };
                p.architecture = arch;
            }
            _ => {
                return Err(invalid(format!(
                    "{specifier:?}: cannot parse platform specifier"
                )));
            }
        }
        Ok(p)
    }

    /// Parses a comma-separated list (`--platform linux/amd64,linux/arm64`), each as [`Platform::parse`].
    pub fn parse_list(s: &str) -> Result<Vec<Platform>> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Platform::parse)
            .collect()
    }

    /// The canonical form (containerd's `Normalize`): lower case, `arm64/v8` → `arm64`,
    /// `arm` → `arm/v7`, `x86_64` → `amd64`.
    pub fn normalize(&self) -> Platform {
        let (arch, variant) =
            normalize_arch(&self.architecture, self.variant.as_deref().unwrap_or(""));
        Platform {
            os: normalize_os(&self.os),
            architecture: arch,
            variant: opt(variant),
            os_version: self.os_version.clone(),
        }
    }

    /// The platform this binary runs on, normalised (`linux/amd64`, `linux/arm64`, `linux/arm/v7`).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            "loongarch64" => ("loong64", None),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
            other => (other, None),
        };
        Platform::new("linux", arch, variant)
    }

    /// The platforms that can serve a request for `self`, best first (containerd's `platformVector`).
    fn compatible(&self) -> Vec<Platform> {
        let me = self.normalize();
        let with = |arch: &str, variant: Option<String>| Platform {
            os: me.os.clone(),
            architecture: arch.into(),
            variant,
            os_version: me.os_version.clone(),
        };
        let num =
            |v: &Option<String>| -> Option<u32> { v.as_deref()?.strip_prefix('v')?.parse().ok() };
        let mut out = vec![me.clone()];
        match me.architecture.as_str() {
            "amd64" => {
                if let Some(n) = num(&me.variant).filter(|n| *n > 1) {
                    out.extend((1..n).rev().map(|k| {
                        with(
                            "amd64",
                            opt(if k == 1 {
                                String::new()
                            } else {
                                format!("v{k}")
                            }),
                        )
                    }));
                }
                out.push(with("386", None));
            }
            "arm" => {
                if let Some(n) = num(&me.variant).filter(|n| *n > 5) {
                    out.extend((5..n).rev().map(|k| with("arm", Some(format!("v{k}")))));
                }
            }
            "arm64" => {
                // v9.x runs v9.x..v9 and v8.(x+5)..v8; v8.x runs v8.x..v8; then 32-bit arm v8..v5.
                let variant = me.variant.clone().unwrap_or_else(|| "v8".into());
                let parse = |v: &str| -> Option<(u32, u32)> {
                    let v = v.strip_prefix('v')?;
                    let (maj, min) = v.split_once('.').unwrap_or((v, "0"));
                    Some((maj.parse().ok()?, min.parse().ok()?))
                };
                out.clear();
                if let Some((maj, min)) =
                    parse(&variant).filter(|(m, n)| (*m == 8 || *m == 9) && *n <= 9)
                {
                    let mut ranges = vec![(maj, min)];
                    if maj == 9 {
                        ranges.push((8, (min + 5).min(9)));
                    }
                    for (major, top) in ranges {
                        for minor in (0..=top).rev() {
                            let v = if minor == 0 {
                                format!("v{major}")
                            } else {
                                format!("v{major}.{minor}")
                            };
                            out.push(with("arm64", Some(v)).normalize());
                        }
                    }
                }
                let arm_variant = if variant.starts_with("v8") || variant.starts_with("v9") {
                    "v8".to_string()
                } else {
                    variant
                };
                out.extend(with("arm", Some(arm_variant)).compatible());
            }
            _ => {}
        }
        out
    }

    /// Whether an image built for `candidate` serves a request for `self` (containerd's `Only`).
    pub fn matches(&self, candidate: &Platform) -> bool {
        let c = candidate.normalize();
        self.compatible()
            .iter()
            .any(|p| p.os == c.os && p.architecture == c.architecture && p.variant == c.variant)
    }

    /// Whether `candidate` is exactly this platform once both are normalised (containerd's
    /// `OnlyStrict`/`NewMatcher`): `linux/arm64/v8` ≡ `linux/arm64`, but `arm/v7` ≠ `arm/v6`.
    pub fn matches_strict(&self, candidate: &Platform) -> bool {
        let (a, b) = (self.normalize(), candidate.normalize());
        a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
    }

    /// The index of the best match for `self` among `candidates` (the closest compatible
    /// platform; the first one listed among equals), or `None`.
    pub fn select<'a>(&self, candidates: impl IntoIterator<Item = &'a Platform>) -> Option<usize> {
        let order = self.compatible();
        let rank = |c: &Platform| {
            let c = c.normalize();
            order.iter().position(|p| {
                p.os == c.os && p.architecture == c.architecture && p.variant == c.variant
            })
        };
        candidates
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| rank(c).map(|r| (r, i)))
            .min()
            .map(|(_, i)| i)
    }
}

impl fmt::Display for Platform {
    /// containerd's `Format`: `os/arch[/variant]`, `unknown` without an OS.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.os.is_empty() {
            return f.write_str("unknown");
        }
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Platform> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    /// containerd's `TestParseSelector` cases: input → (parsed, formatted).
    #[test]
    fn parses_as_containerd() {
        let host = Platform::host();
        let cases: &[(&str, &str)] = &[
            ("linux/arm64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64/v8"),
            ("linux/arm", "linux/arm"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/arm/v7", "linux/arm/v7"),
            ("arm", "linux/arm"),
            ("armel", "linux/arm/v6"),
            ("armhf", "linux/arm"),
            ("Aarch64", "linux/arm64"),
            ("x86_64", "linux/amd64"),
            ("Linux/x86_64", "linux/amd64"),
            ("x86-64", "linux/amd64"),
            ("i386", "linux/386"),
            ("s390x", "linux/s390x"),
            ("linux/s390x", "linux/s390x"),
            ("linux/aarch64/8", "linux/arm64/v8"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm64/9.0", "linux/arm64/v9"),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).to_string(), *want, "{input}");
        }
        assert_eq!(p("linux").to_string(), host.to_string());
        let mac = p("macOS");
        assert_eq!(
            (mac.os.as_str(), &mac.architecture),
            ("darwin", &host.architecture)
        );
        assert_eq!(p("windows").os, "windows");
    }

    #[test]
    fn rejects_as_containerd() {
        let cases: &[(&str, &str)] = &[
            (
                "foo",
                "\"foo\": unknown operating system or architecture: invalid argument",
            ),
            ("*", "\"*\": wildcards not yet supported: invalid argument"),
            (
                "linux/arm/v7/x",
                "\"linux/arm/v7/x\": cannot parse platform specifier: invalid argument",
            ),
            ("linux/", "\"\" is an invalid component of \"linux/\""),
            ("linux/am d64", "\"am d64\" is an invalid component"),
            ("", "\"\" is an invalid OS component of \"\""),
            ("/amd64", "is an invalid OS component"),
        ];
        for (input, want) in cases {
            let err = Platform::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
            assert!(err.ends_with(": invalid argument"), "{input}: {err}");
        }
    }

    #[test]
    fn normalizes() {
        assert_eq!(p("linux/arm64/v8").normalize(), p("linux/arm64"));
        assert_eq!(p("linux/arm").normalize().to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm/v7").normalize(), p("linux/arm").normalize());
        assert_eq!(
            Platform::new("linux", "x86_64", None).normalize(),
            p("linux/amd64")
        );
    }

    /// containerd's `TestOnly` cases: what each wanted platform accepts and refuses.
    #[test]
    fn matches_as_containerd_only() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "linux/amd64",
                &["linux/amd64", "linux/386", "linux/x86_64"],
                &["linux/arm64", "linux/arm/v7", "windows/amd64"],
            ),
            ("linux/386", &["linux/386"], &["linux/amd64"]),
            (
                "linux/arm/v8",
                &[
                    "linux/arm/v8",
                    "linux/arm/v7",
                    "linux/arm/v6",
                    "linux/arm/v5",
                ],
                &["linux/amd64", "linux/arm/v4", "linux/arm64"],
            ),
            (
                "linux/arm/v7",
                &["linux/arm", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"],
                &["linux/arm/v8", "linux/arm64"],
            ),
            (
                "linux/arm/v6",
                &["linux/arm/v6", "linux/arm/v5"],
                &["linux/arm/v7", "linux/arm"],
            ),
            (
                "linux/arm/v5",
                &["linux/arm/v5"],
                &["linux/arm/v6", "linux/arm/v7"],
            ),
            (
                "linux/arm64",
                &[
                    "linux/arm64",
                    "linux/arm64/v8",
                    "linux/arm/v8",
                    "linux/arm/v7",
                    "linux/arm/v6",
                    "linux/arm/v5",
                ],
                &["linux/amd64", "linux/arm64/v9"],
            ),
            (
                "linux/arm64/v8",
                &["linux/arm64", "linux/arm64/v8", "linux/arm/v7"],
                &["linux/arm64/v9", "linux/arm64/v8.1"],
            ),
            (
                "linux/arm64/v9",
                &[
                    "linux/arm64/v9",
                    "linux/arm64",
                    "linux/arm64/v8.5",
                    "linux/arm/v8",
                ],
                &["linux/arm64/v9.1", "linux/arm64/v8.6"],
            ),
        ];
        for (want, ok, no) in cases {
            for c in *ok {
                assert!(p(want).matches(&p(c)), "{want} should take {c}");
            }
            for c in *no {
                assert!(!p(want).matches(&p(c)), "{want} should not take {c}");
            }
        }
    }

    #[test]
    fn selects_closest() {
        let list: Vec<Platform> = [
            "linux/arm/v5",
            "linux/arm/v7",
            "linux/arm64/v8",
            "linux/amd64",
            "linux/386",
        ]
        .iter()
        .map(|s| p(s))
        .collect();
        assert_eq!(p("linux/arm/v7").select(&list), Some(1));
        assert_eq!(p("linux/arm/v6").select(&list), Some(0));
        assert_eq!(p("arm64").select(&list), Some(2));
        assert_eq!(p("linux/amd64").select(&list), Some(3));
        assert_eq!(p("linux/386").select(&list), Some(4));
        assert_eq!(p("linux/s390x").select(&list), None);
        assert!(p("linux/arm64").matches_strict(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v7").matches_strict(&p("linux/arm/v6")));
    }
}
