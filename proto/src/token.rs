//! Tokens: what a caller shows a coordinator, and the one check of a file that holds one.
//!
//! Every command that reads a token file (the coordinator, a worker, `submit`, `status` and the
//! other clients, `launch slurm`) reads it with [`read_token_file`], so a file is refused or
//! accepted the same way everywhere:
//!
//! - it is opened without following a symbolic link (`O_NOFOLLOW`), and everything after is
//!   checked on the opened descriptor (`fstat`), so the file checked is the file read: a link
//!   could be swapped for another file between a check by path and the read;
//! - it is a regular file (not a FIFO, which would block the reader, nor a device);
//! - it is owned by the user running the command, or by root (an administrator's file: a
//!   systemd credential, a Kubernetes Secret mounted into a pod);
//! - no one else can write it (whoever can write it chooses the token), and no one else can
//!   read it: no permission bit for others, none for the group of the user's own file. A
//!   root-owned file may be readable by its group: systemd grants a service's user read access
//!   to its credential with an ACL entry, which `stat` shows as the group's read bit, and a
//!   Kubernetes pod reads its Secret through its `fsGroup`; in both the group is the
//!   administrator's choice, not the user's mistake.
//!
//! The token itself is one line of printable ASCII without spaces (it travels in an HTTP
//! header) of at least [`MIN_TOKEN_BYTES`] bytes.
//!
//! ```
//! use ltsweep_proto::token::{MIN_TOKEN_BYTES, Token};
//!
//! assert!(Token::parse("s3cret", "LTSWEEP_TOKEN").is_err());
//! let token = Token::generate();
//! assert!(token.as_str().len() >= MIN_TOKEN_BYTES);
//! assert!(!format!("{token:?}").contains(token.as_str()));
//! ```

use std::fmt;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The shortest token accepted, in bytes. 32 characters are 24 random bytes written in base64
/// (192 bits) or 16 written in hex (128 bits): whatever the alphabet, beyond guessing at any rate
/// a server answers, and longer than a password a person would pick and type. The suggested
/// `head -c 32 /dev/urandom | base64` makes 44.
pub const MIN_TOKEN_BYTES: usize = 32;

/// The longest token accepted, in bytes: far more than any generator makes, well within what
/// an HTTP header carries.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// A token file is read up to this many bytes; a larger one is not a token file.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// How to make a token, for the messages that ask for one.
pub const MAKE_ONE: &str =
    "make one with `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`";

/// A token that passed the checks: long enough, and printable ASCII without spaces. Its
/// `Debug` print leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a token or a token file was refused. Each message names the file or variable and says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that anyone but its owner could swap or read.
    #[error("the token file {}: {problem}", path.display())]
    Unsafe { path: PathBuf, problem: String },
    /// A token that is empty, too short, too long or holds characters a header cannot carry.
    #[error("{origin}: {problem}")]
    Invalid { origin: String, problem: String },
}

impl Token {
    /// Checks a token read from `origin` (a file, a variable: named in the error).
    pub fn parse(text: &str, origin: &str) -> Result<Token, TokenError> {
        let invalid = |problem: String| TokenError::Invalid {
            origin: origin.to_owned(),
            problem,
        };
        if text.trim().is_empty() {
            return Err(invalid(
                "empty: give the token, or leave it unset to run without one".into(),
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "the token must be printable ASCII without spaces (it travels in a header)".into(),
            ));
        }
        if text.len() < MIN_TOKEN_BYTES {
            return Err(invalid(format!(
                "the token is {} bytes, shorter than the {MIN_TOKEN_BYTES} a token needs: {MAKE_ONE}",
                text.len()
            )));
        }
        if text.len() > MAX_TOKEN_BYTES {
            return Err(invalid(format!(
                "the token is {} bytes, longer than the {MAX_TOKEN_BYTES} accepted",
                text.len()
            )));
        }
        Ok(Token(text.to_owned()))
    }

    /// A fresh token from the operating system's random source: 32 random bytes in hex.
    pub fn generate() -> Token {
        let mut bytes = [0u8; 32];
        // The OS random source failing is a broken system, not a state to go on in: a token
        // that is not random would let anyone in.
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        Token(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Reads and checks a token file (see the module docs): the first line, trimmed.
pub fn read_token_file(path: &Path) -> Result<Token, TokenError> {
    let unsafe_file = |problem: String| TokenError::Unsafe {
        path: path.to_owned(),
        problem,
    };
    let file = OpenOptions::new()
        .read(true)
        // Not following a link, and not blocking on a FIFO before it is found not to be a file.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                unsafe_file(
                    "a symbolic link: give the file itself (a link can be pointed at another file after it was checked)"
                        .into(),
                )
            } else {
                TokenError::Unreadable {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    let meta = file.metadata().map_err(|source| TokenError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(unsafe_file(
            "not a regular file: a token file is a plain file holding one line".into(),
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if let Some(problem) = ownership_problem(meta.uid(), meta.mode(), me) {
        return Err(unsafe_file(problem));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| TokenError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(unsafe_file(format!(
            "larger than {MAX_TOKEN_FILE_BYTES} bytes: a token file holds one line"
        )));
    }
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next().unwrap_or("").trim();
    Token::parse(line, &format!("the token file {}", path.display()))
}

/// What is wrong with a file of owner `uid` and `mode` for user `me` to keep a token in.
fn ownership_problem(uid: u32, mode: u32, me: u32) -> Option<String> {
    let mode = mode & 0o7777;
    if uid != me && uid != 0 {
        return Some(format!(
            "owned by user {uid}, not by you (user {me}) or root: a token file must be yours"
        ));
    }
    let readable_by_group = uid == me && mode & 0o040 != 0;
    if mode & 0o007 != 0 || mode & 0o020 != 0 || readable_by_group {
        return Some(format!(
            "others can read or write it (mode {:o}): `chmod 600` it",
            mode & 0o777
        ));
    }
    None
}

/// The systemd credential `name` (`$CREDENTIALS_DIRECTORY/name`), when the service manager
/// passed one (`LoadCredential=name:PATH` in the unit); checked as any token file.
pub fn systemd_credential(name: &str) -> Result<Option<Token>, TokenError> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Ok(None);
    };
    let path = Path::new(&dir).join(name);
    // A dangling link is there, and refused as a link.
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    read_token_file(&path).map(Some)
}

/// The host a token sent to `address` would travel to in clear text: a plain `http://` address
/// whose host is not loopback. `None` for `https://` and for loopback.
pub fn sent_in_clear(address: &str) -> Option<String> {
    let rest = address.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.split(':').next().unwrap_or(authority),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn problem(result: Result<Token, TokenError>) -> String {
        result.expect_err("refused").to_string()
    }

    #[test]
    fn tokens_shorter_than_the_minimum_or_unprintable_are_refused() {
        assert!(problem(Token::parse("s3cret", "LTSWEEP_TOKEN")).contains("6 bytes"));
        assert!(problem(Token::parse(&GOOD[1..], "X")).contains("31 bytes"));
        assert!(problem(Token::parse("", "X")).contains("empty"));
        assert!(problem(Token::parse(&format!("{GOOD} two"), "X")).contains("printable"));
        assert!(Token::parse(&"a".repeat(MAX_TOKEN_BYTES + 1), "X").is_err());
        assert_eq!(Token::parse(GOOD, "X").unwrap().as_str(), GOOD);
        let generated = Token::generate();
        assert_eq!(generated.as_str().len(), 64);
        assert_ne!(generated, Token::generate());
        assert_eq!(format!("{generated:?}"), "Token(<redacted>)");
    }

    #[test]
    fn a_private_regular_file_of_ones_own_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "token", &format!("{GOOD}\nignored\n"), 0o600);
        assert_eq!(read_token_file(&path).unwrap().as_str(), GOOD);
        let read_only = file(dir.path(), "ro", &format!("  {GOOD}  \n"), 0o400);
        assert_eq!(read_token_file(&read_only).unwrap().as_str(), GOOD);
    }

    #[test]
    fn links_readable_files_fifos_folders_and_big_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = file(dir.path(), "target", GOOD, 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(problem(read_token_file(&link)).contains("symbolic link"));
        for mode in [0o644, 0o640, 0o620, 0o604, 0o602] {
            let path = file(dir.path(), &format!("m{mode:o}"), GOOD, mode);
            let message = problem(read_token_file(&path));
            assert!(message.contains("chmod 600"), "{mode:o}: {message}");
        }
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(problem(read_token_file(&fifo)).contains("not a regular file"));
        assert!(problem(read_token_file(dir.path())).contains("not a regular file"));
        let big = file(dir.path(), "big", &"a".repeat(5000), 0o600);
        assert!(problem(read_token_file(&big)).contains("larger than"));
        let short = file(dir.path(), "short", "s3cret\n", 0o600);
        let message = problem(read_token_file(&short));
        assert!(
            message.contains("short") && message.contains("6 bytes"),
            "{message}"
        );
        let missing = problem(read_token_file(&dir.path().join("missing")));
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn ownership_must_be_the_users_or_roots() {
        let me = 1000;
        assert_eq!(ownership_problem(me, 0o100600, me), None);
        assert!(
            ownership_problem(1001, 0o100600, me)
                .unwrap()
                .contains("owned by user 1001")
        );
        // Root's file, readable by its group: a systemd credential's ACL, a pod's fsGroup.
        assert_eq!(ownership_problem(0, 0o100440, me), None);
        assert!(
            ownership_problem(0, 0o100460, me).is_some(),
            "group-writable"
        );
        assert!(
            ownership_problem(0, 0o100444, me).is_some(),
            "world-readable"
        );
        // The user's own file readable by the group is a mistake to fix.
        assert!(ownership_problem(me, 0o100640, me).is_some());
        assert!(
            ownership_problem(0, 0o100640, 0).is_some(),
            "root's own file"
        );
    }

    #[test]
    fn plain_http_to_another_host_is_found() {
        assert_eq!(sent_in_clear("http://head:7070").as_deref(), Some("head"));
        assert_eq!(
            sent_in_clear("http://10.1.2.3:7070/").as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            sent_in_clear("http://[fd00::1]:7070").as_deref(),
            Some("fd00::1")
        );
        for local in [
            "http://127.0.0.1:7070",
            "http://localhost:7070",
            "http://[::1]:7070",
            "https://head:7070",
        ] {
            assert_eq!(sent_in_clear(local), None, "{local}");
        }
    }
}
