//! The pseudo-terminal for `-t`: allocated inside the container (its own devpts, so `tty` names
//! /dev/pts/0), its slave the command's stdio and controlling terminal, its master passed back to
//! hoist and proxied to the caller's streams, with the caller's terminal in raw mode meanwhile and
//! its size followed (SIGWINCH).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

/// The console of a `-t` sandbox, as runc's console socket: the command's process opens /dev/ptmx of
/// the container's own devpts (so the terminal is /dev/pts/0 inside), makes the slave its stdio and
/// controlling terminal, and sends the master back over `sock` (SCM_RIGHTS), which hoist then pumps.
#[derive(Debug)]
pub struct Console {
    /// The child's end of the socket pair.
    pub sock: c_int,
    /// Initial window size (the caller's terminal's), if any.
    pub size: Option<libc::winsize>,
}

impl Console {
    /// In the command's process, after `pivot_root`: opens the pty, sizes and unlocks it, gives the
    /// slave to `uid`, sends the master and closes `sock`. Returns the slave, or -1 (errno set).
    ///
    /// # Safety
    /// Raw system calls only (no allocation): safe in the child of a raw `clone`.
    pub unsafe fn open_in_container(&self, uid: u32) -> c_int {
        unsafe {
            let master = libc::open(
                c"/dev/ptmx".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if master < 0 {
                return -1;
            }
            let unlock: c_int = 0;
            if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
                return -1;
            }
            if let Some(size) = &self.size {
                libc::ioctl(master, libc::TIOCSWINSZ, size);
            }
            let slave = libc::ioctl(
                master,
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if slave < 0 {
                return -1;
            }
            // As runc does for the process's stdio: the user owns its terminal.
            libc::fchown(slave, uid, u32::MAX);
            if send_fd(self.sock, master) != 0 {
                return -1;
            }
            libc::close(master);
            libc::close(self.sock);
            slave
        }
    }
}

/// Room for one SCM_RIGHTS control message, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 64]);

/// Sends `fd` over the unix socket `sock` (one byte of data, one SCM_RIGHTS descriptor). No allocation.
unsafe fn send_fd(sock: c_int, fd: c_int) -> c_int {
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = Control([0; 64]);
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            -1
        } else {
            0
        }
    }
}

/// A connected unix socket pair (close-on-exec): (hoist's end, the child's end).
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe { Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// Receives the descriptor [`Console::open_in_container`] sends; `None` if the child closed its end
/// first (it failed before opening the pty).
pub fn recv_fd(sock: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = Control([0; 64]);
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    loop {
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(None);
        }
        break;
    }
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other("no descriptor in the console message"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// The window size of terminal `fd`, if it is one.
pub fn window_size(fd: RawFd) -> Option<libc::winsize> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

/// Copies the window size of terminal `from` to the pty master `to` (SIGWINCH).
pub fn copy_window_size(from: RawFd, to: RawFd) {
    if let Some(ws) = window_size(from) {
        unsafe { libc::ioctl(to, libc::TIOCSWINSZ, &ws) };
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

/// The (terminal, pty master) pair SIGWINCH resizes, packed; `NONE` when no `-t` run is active.
static FOLLOWED: AtomicU64 = AtomicU64::new(NONE);
const NONE: u64 = u64::MAX;

/// While alive, [`resize`] (called on SIGWINCH) copies the caller's terminal size to the pty master.
/// Holds its own duplicates, so a late signal never touches a reused descriptor.
pub struct Follow {
    _terminal: OwnedFd,
    _master: OwnedFd,
}

impl Follow {
    /// Follows `input` (or else `output`) if it is a terminal.
    pub fn start(input: &OwnedFd, output: &OwnedFd, master: &File) -> Option<Follow> {
        let term = [input, output]
            .into_iter()
            .find(|f| unsafe { libc::isatty(f.as_raw_fd()) } == 1)?;
        let terminal: OwnedFd = dup_file(term).ok()?.into();
        let master: OwnedFd = dup_file(master).ok()?.into();
        let packed =
            ((terminal.as_raw_fd() as u32 as u64) << 32) | master.as_raw_fd() as u32 as u64;
        FOLLOWED.store(packed, Ordering::SeqCst);
        Some(Follow {
            _terminal: terminal,
            _master: master,
        })
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        FOLLOWED.store(NONE, Ordering::SeqCst);
    }
}

/// SIGWINCH: gives the pty of the active `-t` run the caller's new terminal size.
pub fn resize() {
    let packed = FOLLOWED.load(Ordering::SeqCst);
    if packed != NONE {
        copy_window_size((packed >> 32) as u32 as RawFd, packed as u32 as RawFd);
    }
}
