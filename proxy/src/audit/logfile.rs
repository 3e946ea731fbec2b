//! The audit log's output: a file opened for appending (or standard output) that never
//! holds a torn line, and that can be reopened after logrotate moved it.
//!
//! A write that fails part-way (a full disk, an I/O error) leaves part of a batch in the
//! file; the file is then cut back to the end of the last whole write, so the next write
//! starts on a fresh line and every line of the file stays a complete event. If even the
//! cut fails, nothing more is written until a later cut succeeds: a line glued to half
//! another is worse than a line missing, which the failure counters report.

use std::fs::{File, OpenOptions};
use std::io::Write;

/// Where the events go.
pub enum LogFile {
    File {
        file: File,
        path: String,
        /// The file's length after the last whole write: where a failed one is cut back to.
        good_len: u64,
        /// A failed write could not be cut back yet.
        torn: bool,
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
        })
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
