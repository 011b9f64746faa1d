//! A minimal tar stream writer: ustar headers plus PAX extended headers for long names, long link
//! targets and xattrs (`SCHILY.xattr.*`, as Docker, BuildKit and GNU tar write them).

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

/// One entry's metadata.
pub(crate) struct EntryMeta<'a> {
    pub path: &'a [u8],
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub link: Option<&'a [u8]>,
    pub dev: Option<(u32, u32)>,
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

pub(crate) struct TarWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            buf: vec![0; 256 * 1024],
        }
    }

    /// Writes one entry; `data` must yield exactly `meta.size` bytes.
    pub fn append(&mut self, meta: &EntryMeta<'_>, data: &mut dyn Read) -> io::Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut h = Header::new_ustar();
        if !set_name(&mut h, meta.path) {
            pax.push(("path".into(), meta.path.to_vec()));
        }
        if let Some(link) = meta.link {
            if link.len() <= 100 {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            } else {
                pax.push(("linkpath".into(), link.to_vec()));
                h.as_old_mut().linkname.copy_from_slice(&link[..100]);
            }
        }
        for (k, v) in meta.xattrs {
            pax.push((
                format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)),
                v.clone(),
            ));
        }
        if meta.size >= 0o77777777777 {
            pax.push(("size".into(), meta.size.to_string().into_bytes()));
        }
        if meta.uid > 0o7777777 {
            pax.push(("uid".into(), meta.uid.to_string().into_bytes()));
        }
        if meta.gid > 0o7777777 {
            pax.push(("gid".into(), meta.gid.to_string().into_bytes()));
        }
        if !pax.is_empty() {
            self.write_pax(meta.path, &pax)?;
        }
        h.set_entry_type(meta.kind);
        h.set_mode(meta.mode);
        h.set_uid(meta.uid.min(0o7777777));
        h.set_gid(meta.gid.min(0o7777777));
        h.set_mtime(meta.mtime);
        h.set_size(meta.size);
        if let Some((maj, min)) = meta.dev {
            h.set_device_major(maj)?;
            h.set_device_minor(min)?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes())?;
        let n = copy_buf(&mut data.take(meta.size), &mut self.out, &mut self.buf)?;
        if n != meta.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} changed size while being archived",
                    String::from_utf8_lossy(meta.path)
                ),
            ));
        }
        self.pad(n)
    }

    fn write_pax(&mut self, path: &[u8], records: &[(String, Vec<u8>)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (k, v) in records {
            // "%d %s=%s\n" where the length counts itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let mut h = Header::new_ustar();
        let mut name = b"PaxHeaders.0/".to_vec();
        let base = path
            .rsplit(|b| *b == b'/')
            .find(|s| !s.is_empty())
            .unwrap_or(b"x");
        name.extend_from_slice(&base[..base.len().min(80)]);
        set_name(&mut h, &name);
        h.set_entry_type(EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(&body)?;
        self.pad(body.len() as u64)
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (512 - len % 512) % 512;
        self.out.write_all(&[0u8; 512][..rem as usize])
    }

    /// Writes the end-of-archive marker and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Puts `path` in the ustar name (or prefix + name) fields; false if it does not fit.
fn set_name(h: &mut Header, path: &[u8]) -> bool {
    let ustar = h.as_ustar_mut().expect("ustar header");
    if path.len() <= 100 {
        ustar.name[..path.len()].copy_from_slice(path);
        return true;
    }
    // Split at a '/' so that prefix <= 155 and name <= 100.
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    for (i, b) in trimmed.iter().enumerate().rev() {
        if *b == b'/' && i <= 155 && path.len() - i - 1 <= 100 {
            ustar.prefix[..i].copy_from_slice(&path[..i]);
            let name = &path[i + 1..];
            ustar.name[..name.len()].copy_from_slice(name);
            return true;
        }
    }
    ustar.name.copy_from_slice(&path[..100]);
    false
}

/// `io::copy` with a caller-provided (large) buffer: fewer syscalls and hash updates for big files.
pub(crate) fn copy_buf(r: &mut dyn Read, w: &mut dyn Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let k = match r.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}
