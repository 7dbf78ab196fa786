//! Names that come from NetBackup (storage servers, LSUs, images) and how they are checked
//! before they touch storage. A name that passes here is safe as one path component and as
//! one S3 key segment: nothing a caller sends can escape its LSU.

use crate::error::{Error, ErrorKind, Result};

/// The storage-server prefix this plug-in claims.
pub const PREFIX: &str = "VastData:";

/// Longest LSU or image name (one file-name component; S3 keys have room to spare).
pub const MAX_NAME: usize = 240;

/// Split `VastData:<cluster>` into its cluster part. Names without our prefix are not ours.
pub fn parse_server_name(name: &str) -> Result<&str> {
    let host = name.strip_prefix(PREFIX).ok_or_else(|| {
        Error::new(ErrorKind::NotClaimed, format!("storage server '{name}' does not start with '{PREFIX}'"))
    })?;
    if host.is_empty() || host.len() > MAX_NAME {
        return Err(Error::invalid(format!(
            "storage server '{name}': the cluster part must be 1 to {MAX_NAME} bytes"
        )));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(Error::invalid(format!(
            "storage server '{name}': the cluster part may not hold spaces, control characters or '/'"
        )));
    }
    Ok(host)
}

/// Check an LSU or image name. `what` names it in the error ("LSU", "image").
///
/// Allowed: 1..=MAX_NAME bytes of printable ASCII other than `/` and `\`, not starting with
/// `.` (dot names are the plug-in's own: temp files and reserved directories). NetBackup's
/// names (`client1_1638486030_C1_F2`, `..._HDR`) and VAST view names all fit.
pub fn validate(what: &str, name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid(format!("{what} name '{}' {why}", name.escape_debug())));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME {
        return Err(Error::new(
            ErrorKind::TooLong,
            format!("{what} name is {} bytes, the limit is {MAX_NAME}", name.len()),
        ));
    }
    if name.starts_with('.') {
        return bad("starts with '.' (reserved, and '.'/'..' would leave the LSU)");
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii_graphic() || *c == '/' || *c == '\\') {
        return bad(&format!("holds {:?}: only printable ASCII without '/' and '\\' is allowed", c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert_eq!(parse_server_name("VastData:c1").unwrap(), "c1");
        assert_eq!(parse_server_name("vastdata:c1").unwrap_err().kind(), ErrorKind::NotClaimed);
        assert_eq!(parse_server_name("PureDisk:c1").unwrap_err().kind(), ErrorKind::NotClaimed);
        assert_eq!(parse_server_name("VastData:").unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert!(parse_server_name("VastData:a/b").is_err());
    }

    #[test]
    fn image_names() {
        for ok in ["client1_1638486030_C1_F2", "c_1_C1_HDR", "a", "x-y.z@1"] {
            validate("image", ok).unwrap();
        }
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a b", "a\nb", "é"] {
            assert!(validate("image", bad).is_err(), "{bad:?} passed");
        }
        assert_eq!(validate("image", &"a".repeat(241)).unwrap_err().kind(), ErrorKind::TooLong);
    }
}
