//! The pseudo-terminal for `-t`: a pty pair whose slave is the command's stdio, proxied to the caller's
//! streams, with the caller's terminal in raw mode meanwhile.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread::JoinHandle;

/// An open pty pair.
pub struct Pty {
    pub master: File,
    pub slave: OwnedFd,
}

impl Pty {
    /// Opens a pair sized like `like` (a terminal fd), if it is one.
    pub fn open(like: RawFd) -> io::Result<Pty> {
        let (mut m, mut s) = (0, 0);
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let has_size = unsafe { libc::ioctl(like, libc::TIOCGWINSZ, &mut ws) } == 0;
        let r = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                if has_size { &ws } else { std::ptr::null() },
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        unsafe {
            libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(s, libc::F_SETFD, libc::FD_CLOEXEC);
            Ok(Pty {
                master: File::from_raw_fd(m),
                slave: OwnedFd::from_raw_fd(s),
            })
        }
    }
}

/// Restores a terminal's settings when dropped.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts `fd` in raw mode if it is a terminal.
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(fd) != 1 || libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// Copies `from` to `to` until EOF or an error (EIO when the pty's last slave closes).
pub fn pump(mut from: File, mut to: File) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let _ = to.flush();
                }
            }
        }
    })
}

/// A `File` on a duplicate of `fd` (so the original stays open).
pub fn dup_file(fd: &impl AsRawFd) -> io::Result<File> {
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { File::from_raw_fd(n) })
}
