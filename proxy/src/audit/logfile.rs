//! The audit log's output: a file opened for appending (or standard output) that never
//! holds a torn line, and that can be reopened after logrotate moved it.
//!
//! A write that fails part-way (a full disk, an I/O error) leaves part of a batch in the
//! file; the file is then cut back to the end of the last whole write, so the next write
//! starts on a fresh line and every line of the file stays a complete event. If even the
//! cut fails, nothing more is written until a later cut succeeds: a line glued to half
//! another is worse than a line missing, which the failure counters report.
//!
//! Built-in rotation (`[audit] rotate_size`, `rotate_keep`) happens between whole writes:
//! once the file has reached the size, it is synced and renamed `LOG.1` (older files shift
//! up, the oldest beyond `rotate_keep` is deleted) and a new file is opened at the path.
//! Every event is in exactly one file; no line is split across two.

use std::fs::{File, OpenOptions};
use std::io::Write;

/// Built-in rotation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the file holds at least this many bytes.
    pub size: u64,
    /// Rotated files kept: `LOG.1` (newest) .. `LOG.keep`.
    pub keep: usize,
}

/// Where the events go.
pub enum LogFile {
    File {
        file: File,
        path: String,
        /// The file's length after the last whole write: where a failed one is cut back to.
        good_len: u64,
        /// A failed write could not be cut back yet.
        torn: bool,
        /// Built-in rotation, when configured.
        rotation: Option<Rotation>,
    },
    Stdout,
}

impl LogFile {
    /// Opens `path` for appending ("-" for standard output), creating it mode 0640.
    pub fn open(path: &str) -> std::io::Result<LogFile> {
        if path == "-" {
            return Ok(LogFile::Stdout);
        }
        let file = open_append(path)?;
        let good_len = file.metadata()?.len();
        Ok(LogFile::File {
            file,
            path: path.to_string(),
            good_len,
            torn: false,
            rotation: None,
        })
    }

    /// Turns on built-in rotation (no effect on standard output).
    pub fn with_rotation(mut self, r: Option<Rotation>) -> LogFile {
        if let LogFile::File { rotation, .. } = &mut self {
            *rotation = r;
        }
        self
    }

    /// Rotates the file if it has reached the configured size. Called between whole
    /// writes. A failure is logged and writing goes on in the current file (a rotation
    /// that cannot happen must not cost an event).
    pub fn rotate_if_due(&mut self) {
        let LogFile::File {
            file,
            path,
            good_len,
            torn,
            rotation: Some(rotation),
        } = self
        else {
            return;
        };
        if *good_len < rotation.size || *torn {
            return;
        }
        let _ = file.sync_data();
        let name = |n: usize| format!("{path}.{n}");
        // Make room: the oldest goes, the others shift up (a missing one is a gap, fine).
        let _ = std::fs::remove_file(name(rotation.keep));
        for n in (1..rotation.keep).rev() {
            match std::fs::rename(name(n), name(n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(error = %e, n, "cannot shift a rotated audit log"),
            }
        }
        if let Err(e) = std::fs::rename(&*path, name(1)) {
            tracing::error!(error = %e, "cannot rotate the audit log; writing on to it");
            return;
        }
        match open_append(path) {
            Ok(new) => {
                *file = new;
                *good_len = 0;
                tracing::info!(keep = rotation.keep, "audit log rotated");
            }
            Err(e) => {
                // Put the file back so the path keeps its events; the old handle writes on.
                let _ = std::fs::rename(name(1), &*path);
                tracing::error!(error = %e, "cannot open a new audit log after rotating; writing on to the old one");
            }
        }
    }

    /// Opens the configured path again (after logrotate moved the file away): events from
    /// now on go to a file at that path. The old handle is closed only once the new one is
    /// open, so a failure keeps writing where it did.
    pub fn reopen(&mut self) -> std::io::Result<()> {
        if let LogFile::File {
            file,
            path,
            good_len,
            torn,
            ..
        } = self
        {
            let new = open_append(path)?;
            *good_len = new.metadata()?.len();
            // Whatever is torn stays in the old file; the new one starts clean.
            *torn = false;
            let _ = file.sync_data();
            *file = new;
        }
        Ok(())
    }

    /// Appends `buf` (whole lines) entirely, or nothing: on failure the file is cut back to
    /// where it was.
    pub fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            LogFile::Stdout => {
                let mut s = std::io::stdout().lock();
                s.write_all(buf)?;
                s.flush()
            }
            LogFile::File {
                file,
                good_len,
                torn,
                ..
            } => {
                if *torn {
                    file.set_len(*good_len)?;
                    *torn = false;
                }
                match file.write_all(buf) {
                    Ok(()) => {
                        *good_len += buf.len() as u64;
                        Ok(())
                    }
                    Err(e) => {
                        *torn = file.set_len(*good_len).is_err();
                        Err(e)
                    }
                }
            }
        }
    }

    /// A second handle on the file, to fsync it without holding whatever guards this one
    /// (`None` for standard output).
    pub fn sync_handle(&self) -> Option<File> {
        match self {
            LogFile::File { file, .. } => file.try_clone().ok(),
            LogFile::Stdout => None,
        }
    }
}

fn open_append(path: &str) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o640);
    }
    opts.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_follows_a_moved_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let p = path.to_str().unwrap();
        let mut log = LogFile::open(p).unwrap();
        log.append(b"{\"a\":1}\n").unwrap();
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
        log.append(b"{\"a\":2}\n").unwrap();
        log.reopen().unwrap();
        log.append(b"{\"a\":3}\n").unwrap();
        let old = std::fs::read_to_string(dir.path().join("audit.jsonl.1")).unwrap();
        assert_eq!(old, "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":3}\n");
    }

    #[test]
    fn rotation_keeps_every_line_in_exactly_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let p = path.to_str().unwrap();
        let mut log = LogFile::open(p)
            .unwrap()
            .with_rotation(Some(Rotation { size: 100, keep: 2 }));
        // 30-byte lines: a rotation every 4 lines; 20 lines make 5 files, 3 kept.
        for i in 0..20 {
            log.append(format!("{{\"n\":{i:020}}}\n").as_bytes())
                .unwrap();
            log.rotate_if_due();
        }
        let read = |s: &str| std::fs::read_to_string(dir.path().join(s)).unwrap_or_default();
        let all = format!(
            "{}{}{}",
            read("audit.jsonl.2"),
            read("audit.jsonl.1"),
            read("audit.jsonl")
        );
        let lines: Vec<&str> = all.lines().collect();
        // The current file is empty (just rotated); .1 and .2 hold lines 12..20.
        assert_eq!(lines.len(), 8, "{all}");
        assert!(lines[0].contains(&format!("{:020}", 12)));
        assert!(lines[7].contains(&format!("{:020}", 19)));
        assert!(!dir.path().join("audit.jsonl.3").exists());
        assert!(lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')));
    }

    #[test]
    fn appends_continue_after_existing_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let mut log = LogFile::open(path.to_str().unwrap()).unwrap();
        log.append(b"{\"new\":1}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"old\":1}\n{\"new\":1}\n"
        );
    }
}
