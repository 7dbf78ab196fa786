//! LSU labels (`stspi_label_lsu`): one small record in the LSU itself (`.vast-ost/label`), so
//! every media server, and the LSU after a reinstall, shows the label NetBackup set.

use super::Server;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{LABEL, OWN};

/// Longest label, in bytes (its field holds one more for the NUL).
pub const MAX_LABEL: usize = ost_abi::STS_MAX_LSU_LABEL - 1;

/// A label is printable text (any language) without control characters, at most
/// [`MAX_LABEL`] bytes; empty removes the label.
pub fn check_label(label: &str) -> Result<()> {
    if label.len() > MAX_LABEL {
        return Err(Error::new(
            ErrorKind::TooLong,
            format!("LSU label is {} bytes, the limit is {MAX_LABEL}", label.len()),
        ));
    }
    if let Some(c) = label.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!("LSU label holds the control character {c:?}")));
    }
    Ok(())
}

impl Server {
    /// The label of `lsu`; empty when it has none.
    pub fn lsu_label(&self, lsu: &str) -> Result<String> {
        let store = self.store_for(lsu)?;
        Ok(match store.read_record(lsu, OWN, LABEL)? {
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
            None => String::new(),
        })
    }

    /// Set the label of `lsu` (empty: remove it). Two media servers labelling at once: one
    /// label wins whole, as the record is only created or compare-and-swapped.
    pub fn set_lsu_label(&self, lsu: &str, label: &str) -> Result<()> {
        check_label(label)?;
        let store = self.store_for(lsu)?;
        if label.is_empty() {
            return store.delete_record(lsu, OWN, LABEL);
        }
        // A concurrent labeller can win the race between our read and our write: read again.
        for _ in 0..8 {
            let res = match store.read_record(lsu, OWN, LABEL)? {
                Some(old) if old == label.as_bytes() => return Ok(()),
                Some(old) => store.replace_record(lsu, OWN, LABEL, label.as_bytes(), &old),
                None => store.create_record(lsu, OWN, LABEL, label.as_bytes()),
            };
            match res {
                Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::State) => continue,
                other => return other,
            }
        }
        Err(Error::new(
            ErrorKind::Busy,
            format!("LSU '{lsu}' label keeps changing under this writer: try again"),
        ))
    }
}
