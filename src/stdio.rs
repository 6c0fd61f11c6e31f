//! Output is never a reason to stop half way. When stdout or stderr is a pipe (`difyctl up
//! 2>&1 | head`), the reader may go away while difyctl still works; every later write would
//! fail with EPIPE and Rust's `println!` would panic, abandoning a reconcile with a service
//! removed. So each of them that is a pipe or socket is put behind a relay: difyctl writes into
//! a pipe of its own that a thread copies to the real one, and when the real one is gone the
//! thread keeps reading and drops the bytes. Terminals and files are left as they are (a
//! terminal stays a terminal for progress bars).

use std::os::fd::RawFd;
use std::sync::mpsc;
use std::time::Duration;

/// Restores nothing; at drop, flushes what is left to the real outputs (briefly).
pub struct Guard {
    relays: Vec<(RawFd, mpsc::Receiver<()>)>,
}

/// Puts stdout and stderr behind relays when they are pipes or sockets.
pub fn protect() -> Guard {
    let mut relays = Vec::new();
    for fd in [1, 2] {
        if let Some(done) = relay(fd) {
            relays.push((fd, done));
        }
    }
    Guard { relays }
}

fn is_pipe(fd: RawFd) -> bool {
    // SAFETY: fstat(2) on a descriptor number with a zeroed out struct; failure is checked.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    let kind = st.st_mode & libc::S_IFMT;
    kind == libc::S_IFIFO || kind == libc::S_IFSOCK
}

fn relay(fd: RawFd) -> Option<mpsc::Receiver<()>> {
    if !is_pipe(fd) {
        return None;
    }
    // SAFETY: plain descriptor calls; every result is checked before it is used.
    let real = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if real < 0 {
        return None;
    }
    let mut ends = [0; 2];
    // SAFETY: pipe2(2) fills the two-element array.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        unsafe { libc::close(real) };
        return None;
    }
    let (read, write) = (ends[0], ends[1]);
    // SAFETY: dup2 onto the standard descriptor; the pipe's write end is closed after.
    if unsafe { libc::dup2(write, fd) } < 0 {
        unsafe {
            libc::close(read);
            libc::close(write);
            libc::close(real);
        }
        return None;
    }
    unsafe { libc::close(write) };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        copy(read, real);
        let _ = tx.send(());
    });
    Some(rx)
}

/// Copies `from` to `to` until `from` ends; once `to` fails (its reader is gone), reads on and
/// drops.
fn copy(from: RawFd, to: RawFd) {
    let mut buf = [0u8; 16 << 10];
    let mut broken = false;
    loop {
        // SAFETY: read(2) into a buffer of the given length.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            break;
        }
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        let mut left = &buf[..n as usize];
        while !broken && !left.is_empty() {
            // SAFETY: write(2) of the bytes just read.
            let w = unsafe { libc::write(to, left.as_ptr().cast(), left.len()) };
            if w < 0 {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    broken = true;
                }
                continue;
            }
            left = &left[w as usize..];
        }
    }
    // SAFETY: both descriptors belong to this thread now.
    unsafe {
        libc::close(from);
        libc::close(to);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        for (fd, done) in self.relays.drain(..) {
            // Our end of the relay closes, so the thread sees the end once children that
            // inherited it are gone too (it is waited for only briefly).
            let null = std::ffi::CString::new("/dev/null").unwrap_or_default();
            // SAFETY: open(2) of /dev/null, dup2 over the descriptor, close.
            unsafe {
                let n = libc::open(null.as_ptr(), libc::O_WRONLY);
                if n >= 0 {
                    libc::dup2(n, fd);
                    libc::close(n);
                }
            }
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
    }
}
