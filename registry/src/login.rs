//! `docker login`'s credential gathering: flags first, then the terminal (username with the saved
//! one as default, password without echo), with Docker's errors for the combinations it refuses.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::bail;

use crate::Credentials;

/// What the user passed on the command line.
#[derive(Clone, Debug, Default)]
pub struct LoginFlags {
    pub username: Option<String>,
    pub password: Option<String>,
    /// `--password-stdin`: the password is stdin's first line.
    pub password_stdin: bool,
}

/// Where prompts are read from and written to.
pub trait Terminal {
    /// Whether stdin is a terminal (prompting is possible).
    fn is_terminal(&self) -> bool;
    /// Prints `prompt` and reads a line, echoed.
    fn read_line(&mut self, prompt: &str) -> io::Result<String>;
    /// Prints `prompt` and reads a line without echoing it.
    fn read_secret(&mut self, prompt: &str) -> io::Result<String>;
    /// Reads stdin's first line (for `--password-stdin`).
    fn read_stdin_line(&mut self) -> io::Result<String>;
}

/// The process's stdin/stdout, with the password read from the controlling terminal with echo off.
pub struct Stdio;

impl Terminal for Stdio {
    fn is_terminal(&self) -> bool {
        io::stdin().is_terminal()
    }
    fn read_line(&mut self, prompt: &str) -> io::Result<String> {
        print!("{prompt}");
        io::stdout().flush()?;
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim().to_string())
    }
    fn read_secret(&mut self, prompt: &str) -> io::Result<String> {
        let secret = rpassword::prompt_password(prompt)?;
        Ok(secret)
    }
    fn read_stdin_line(&mut self) -> io::Result<String> {
        let mut s = String::new();
        io::stdin().lock().read_line(&mut s)?;
        Ok(s.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// The credentials to log in with, as `docker login` gathers them. `saved_username` is the one
/// already stored for this registry, offered as the default at the prompt.
pub fn gather(
    flags: LoginFlags,
    saved_username: Option<String>,
    term: &mut impl Terminal,
) -> anyhow::Result<Credentials> {
    if flags.password.is_some() && flags.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    if flags.password_stdin && flags.username.is_none() {
        bail!("Must provide --username with --password-stdin");
    }
    let mut password = match (flags.password, flags.password_stdin) {
        (Some(p), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => term.read_stdin_line()?,
        (None, false) => String::new(),
    };
    let mut username = flags.username.unwrap_or_default().trim().to_string();
    if (username.is_empty() || password.is_empty()) && !term.is_terminal() {
        bail!("Cannot perform an interactive login from a non TTY device");
    }
    if username.is_empty() {
        let default = saved_username.unwrap_or_default();
        let prompt = if default.is_empty() {
            "Username: ".to_string()
        } else {
            format!("Username ({default}): ")
        };
        username = term.read_line(&prompt)?;
        if username.is_empty() {
            username = default;
        }
        if username.is_empty() {
            bail!("Error: Non-null Username Required");
        }
    }
    if password.is_empty() {
        password = term.read_secret("Password: ")?;
        if password.is_empty() {
            bail!("Error: Password Required");
        }
    }
    Ok(Credentials { username, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripted answers; records the prompts.
    struct Script {
        tty: bool,
        lines: Vec<&'static str>,
        prompts: Vec<String>,
    }

    impl Terminal for Script {
        fn is_terminal(&self) -> bool {
            self.tty
        }
        fn read_line(&mut self, prompt: &str) -> io::Result<String> {
            self.prompts.push(prompt.into());
            Ok(self.lines.remove(0).into())
        }
        fn read_secret(&mut self, prompt: &str) -> io::Result<String> {
            self.prompts.push(format!("secret {prompt}"));
            Ok(self.lines.remove(0).into())
        }
        fn read_stdin_line(&mut self) -> io::Result<String> {
            Ok(self.lines.remove(0).into())
        }
    }

    fn script(tty: bool, lines: &[&'static str]) -> Script {
        Script {
            tty,
            lines: lines.to_vec(),
            prompts: Vec::new(),
        }
    }

    fn flags(u: Option<&str>, p: Option<&str>, stdin: bool) -> LoginFlags {
        LoginFlags {
            username: u.map(String::from),
            password: p.map(String::from),
            password_stdin: stdin,
        }
    }

    #[test]
    fn prompts_for_what_is_missing_with_the_saved_username_as_default() {
        let mut t = script(true, &["", "s3cret"]);
        let c = gather(flags(None, None, false), Some("bob".into()), &mut t).unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("bob", "s3cret")
        );
        assert_eq!(t.prompts, ["Username (bob): ", "secret Password: "]);

        let mut t = script(true, &["pw"]);
        let c = gather(flags(Some("al"), None, false), None, &mut t).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("al", "pw"));
        assert_eq!(t.prompts, ["secret Password: "]);
    }

    #[test]
    fn refuses_what_docker_refuses() {
        let err = |f, tty, lines: &[&'static str]| {
            gather(f, None, &mut script(tty, lines))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(flags(None, None, true), false, &["pw"]),
            "Must provide --username with --password-stdin"
        );
        assert_eq!(
            err(flags(Some("u"), Some("p"), true), false, &[]),
            "--password and --password-stdin are mutually exclusive"
        );
        assert_eq!(
            err(flags(Some("u"), None, false), false, &[]),
            "Cannot perform an interactive login from a non TTY device"
        );
        assert_eq!(
            err(flags(None, None, false), true, &["", ""]),
            "Error: Non-null Username Required"
        );
        assert_eq!(
            err(flags(Some("u"), None, false), true, &[""]),
            "Error: Password Required"
        );
        let c = gather(
            flags(Some("u"), None, true),
            None,
            &mut script(false, &["p"]),
        )
        .unwrap();
        assert_eq!(c.password, "p");
    }
}
