//! The PostgreSQL wire protocol as the proxy needs it: framing with every length checked,
//! startup packets, and the few messages the proxy writes or reads itself.
//!
//! Everything here treats input as hostile: no panics, no unchecked arithmetic on lengths.

pub mod frame;
pub mod messages;
pub mod startup;

pub use frame::{FrameObserver, FrameScanner, FramedReader, Message, NoObserver};

/// Errors of the wire layer.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed by peer")]
    Eof,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid message length {len}")]
    BadLength { len: u64 },
    #[error("message length {len} exceeds the limit of {max}")]
    TooLong { len: u64, max: u64 },
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

impl WireError {
    /// Maps an unexpected EOF during an exact read to [`WireError::Eof`].
    pub fn from_read(e: std::io::Error) -> WireError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Eof
        } else {
            WireError::Io(e)
        }
    }

    /// Whether the peer simply went away.
    pub fn is_disconnect(&self) -> bool {
        match self {
            WireError::Eof => true,
            WireError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}
