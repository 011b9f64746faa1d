//! The pseudo-terminal for `-t`: allocated inside the container (its own devpts, so `tty` names
//! /dev/pts/0), its slave the command's stdio and controlling terminal, its master passed back to
//! hoist and proxied to the caller's streams, with the caller's terminal in raw mode meanwhile and
//! its size followed (SIGWINCH).

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rustix::fs::{Mode, OFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::process::Uid;
use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Termios, Winsize};

/// The console of a `-t` sandbox, as runc's console socket: the command's process opens /dev/ptmx of
/// the container's own devpts (so the terminal is /dev/pts/0 inside), makes the slave its stdio and
/// controlling terminal, and sends the master back over `sock` (SCM_RIGHTS), which hoist then pumps.
#[derive(Debug)]
pub struct Console<'a> {
    /// The child's end of the socket pair.
    pub sock: BorrowedFd<'a>,
    /// Initial window size (the caller's terminal's), if any.
    pub size: Option<Winsize>,
}

impl Console<'_> {
    /// In the command's process, after `pivot_root`: opens the pty, sizes and unlocks it, gives the
    /// slave to `uid`, sends the master. Returns the slave. Raw system calls on stack data only (no
    /// allocation): usable in the child of a raw `clone`.
    pub fn open_in_container(&self, uid: Uid) -> rustix::io::Result<OwnedFd> {
        let master = rustix::fs::open(
            c"/dev/ptmx",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::pty::unlockpt(&master)?;
        if let Some(size) = self.size {
            let _ = rustix::termios::tcsetwinsize(&master, size);
        }
        let slave = rustix::pty::ioctl_tiocgptpeer(
            &master,
            OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
        )?;
        // As runc does for the process's stdio: the user owns its terminal.
        let _ = rustix::fs::fchown(&slave, Some(uid), None);
        send_fd(self.sock, master.as_fd())?;
        Ok(slave)
    }
}

/// Room for one SCM_RIGHTS control message with one descriptor.
const CONTROL: usize = rustix::cmsg_space!(ScmRights(1));

/// Sends `fd` over the unix socket `sock` (one byte of data, one SCM_RIGHTS descriptor). No allocation.
fn send_fd(sock: BorrowedFd, fd: BorrowedFd) -> rustix::io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// A connected unix socket pair (close-on-exec): (hoist's end, the child's end).
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Receives the descriptor [`Console::open_in_container`] sends; `None` if the child closed its end
/// first (it failed before opening the pty).
pub fn recv_fd(sock: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    if received.bytes == 0 {
        return Ok(None);
    }
    control
        .drain()
        .find_map(|msg| match msg {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .map(Some)
        .ok_or_else(|| io::Error::other("no descriptor in the console message"))
}

/// The window size of terminal `fd`, if it is one.
pub fn window_size(fd: impl AsFd) -> Option<Winsize> {
    rustix::termios::tcgetwinsize(fd).ok()
}

/// Copies the window size of terminal `from` to the pty master `to` (SIGWINCH).
pub fn copy_window_size(from: impl AsFd, to: impl AsFd) {
    if let Some(ws) = window_size(from) {
        let _ = rustix::termios::tcsetwinsize(to, ws);
    }
}

/// Restores a terminal's settings when dropped.
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Puts `fd` in raw mode if it is a terminal (through a duplicate, kept to restore it).
    pub fn enter(fd: impl AsFd) -> Option<RawMode> {
        if !rustix::termios::isatty(&fd) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(&fd).ok()?;
        let fd = rustix::io::fcntl_dupfd_cloexec(&fd, 3).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(&fd, OptionalActions::Now, &raw);
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(&self.fd, OptionalActions::Now, &self.saved);
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
pub fn dup_file(fd: impl AsFd) -> io::Result<File> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?.into())
}

/// The (terminal, pty master) pair SIGWINCH resizes; `None` when no `-t` run is active.
static FOLLOWED: Mutex<Option<(OwnedFd, OwnedFd)>> = Mutex::new(None);

/// While alive, [`resize`] (called on SIGWINCH) copies the caller's terminal size to the pty master.
/// The pair is held by [`FOLLOWED`] (duplicates, taken out on drop), so a late signal never
/// touches a closed or reused descriptor.
pub struct Follow(());

impl Follow {
    /// Follows `input` (or else `output`) if it is a terminal.
    pub fn start(input: &OwnedFd, output: &OwnedFd, master: &File) -> Option<Follow> {
        let term = [input, output]
            .into_iter()
            .find(|f| rustix::termios::isatty(f))?;
        let terminal: OwnedFd = dup_file(term).ok()?.into();
        let master: OwnedFd = dup_file(master).ok()?.into();
        *FOLLOWED.lock().unwrap_or_else(|e| e.into_inner()) = Some((terminal, master));
        Some(Follow(()))
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        FOLLOWED.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// SIGWINCH (taken by a thread, not a handler): gives the pty of the active `-t` run the caller's
/// new terminal size.
pub fn resize() {
    if let Some((terminal, master)) = &*FOLLOWED.lock().unwrap_or_else(|e| e.into_inner()) {
        copy_window_size(terminal, master);
    }
}
