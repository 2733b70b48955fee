//! `tiledesk-auth users import`: CSV or JSON lines, every row checked before anything is written.

#![allow(clippy::print_stdout)] // a command-line tool's output is its interface

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::guard::passwords::MAX_PASSWORD_LEN;
use crate::identity::users::NewUser;

use super::new_user::checked_user;

/// Why an import file was refused. Nothing is written unless every row is good.
#[derive(Debug, thiserror::Error)]
pub(super) enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A row is wrong, or could not be stored.
    #[error("{path}:{line}: {problem}; nothing was imported")]
    Row {
        /// The file.
        path: PathBuf,
        /// The row's line, from 1.
        line: usize,
        /// What is wrong with it, for a person.
        problem: String,
    },
    /// The file holds no user.
    #[error("{path}: no users in the file")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads and checks every user of an import file, with the line each came from.
pub(super) fn read_import(path: &Path) -> Result<Vec<(usize, NewUser)>, ImportError> {
    let row_error = |line: usize, problem: String| ImportError::Row {
        path: path.to_owned(),
        line,
        problem,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|source| ImportError::Read {
            path: path.to_owned(),
            source,
        })?;
    let text = Zeroizing::new(text);
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let rows = if is_csv { csv_rows(&text) } else { json_rows(&text) }
        .map_err(|(line, problem)| row_error(line, problem))?;
    let mut seen = std::collections::HashMap::new();
    let mut users = Vec::with_capacity(rows.len());
    for row in rows {
        let user = checked_user(
            &row.email,
            row.firstname.as_deref(),
            row.lastname.as_deref(),
            row.attributes,
            &row.password,
        )
        .map_err(|problem| row_error(row.line, problem))?;
        if let Some(first) = seen.insert(crate::identity::users::email_key(&user.email), row.line) {
            return Err(row_error(
                row.line,
                format!("{} is already on line {first}", user.email),
            ));
        }
        users.push((row.line, user));
    }
    if users.is_empty() {
        return Err(ImportError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(users)
}

struct ImportRow {
    line: usize,
    email: String,
    password: Zeroizing<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    attributes: Map<String, Value>,
}

impl std::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRow")
            .field("line", &self.line)
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

fn csv_rows(text: &str) -> Result<Vec<ImportRow>, (usize, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| (1, e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(email_col), Some(password_col)) = (column("email"), column("password")) else {
        return Err((
            1,
            "the header must name the columns `email` and `password`".to_owned(),
        ));
    };
    let first_col = column("first_name").or_else(|| column("firstname"));
    let last_col = column("last_name").or_else(|| column("lastname"));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| (e.position().map_or(0, |p| p.line() as usize), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let get = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut attributes = Map::new();
        for (index, header) in headers.iter().enumerate() {
            if [Some(email_col), Some(password_col), first_col, last_col].contains(&Some(index)) {
                continue;
            }
            if let Some(value) = record.get(index).filter(|v| !v.is_empty()) {
                attributes.insert(header.to_owned(), Value::String(value.to_owned()));
            }
        }
        rows.push(ImportRow {
            line,
            email: get(Some(email_col)).ok_or((line, "`email` is empty".to_owned()))?,
            password: Zeroizing::new(record.get(password_col).unwrap_or_default().to_owned()),
            firstname: get(first_col),
            lastname: get(last_col),
            attributes,
        });
    }
    Ok(rows)
}

fn json_rows(text: &str) -> Result<Vec<ImportRow>, (usize, String)> {
    let mut rows = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let map = crate::http::body::parse_object(raw.as_bytes()).map_err(|e| (line, e.to_string()))?;
        let mut fields = crate::http::body::Fields::new(
            map,
            &["email", "password", "firstname", "lastname", "attributes"],
        )
        .map_err(|e| (line, e.to_string()))?;
        fn field<T>(line: usize, r: Result<T, crate::http::error::ApiError>) -> Result<T, (usize, String)> {
            r.map_err(|e| (line, e.to_string()))
        }
        rows.push(ImportRow {
            line,
            email: field(line, fields.required_str("email", tiledesk_jwt::MAX_EMAIL_LEN))?,
            password: Zeroizing::new(field(line, fields.required_str("password", MAX_PASSWORD_LEN))?),
            firstname: field(line, fields.optional_str("firstname", tiledesk_jwt::MAX_NAME_LEN))?,
            lastname: field(line, fields.optional_str("lastname", tiledesk_jwt::MAX_NAME_LEN))?,
            attributes: field(line, fields.optional_object("attributes"))?.unwrap_or_default(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_import_rows_and_attributes() {
        let rows = csv_rows("email,password,first_name,plan\na@b.co,pw1,Ann,pro\nc@d.co,pw2,,\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].line, rows[0].firstname.as_deref()), (2, Some("Ann")));
        assert_eq!(rows[0].attributes["plan"], "pro");
        assert_eq!(rows[1].firstname, None);
        assert!(rows[1].attributes.is_empty());
        assert_eq!(csv_rows("mail,pass\nx,y\n").unwrap_err().0, 1);
    }

    #[test]
    fn json_import_rows_name_the_bad_line() {
        let text = "{\"email\":\"a@b.co\",\"password\":\"pw\"}\n\n{\"email\":\"c@d.co\"}\n";
        let (line, err) = json_rows(text).unwrap_err();
        assert_eq!(line, 3);
        assert!(err.contains("password"), "{err}");
        let (line, err) =
            json_rows("{\"email\":\"a@b.co\",\"password\":\"pw\",\"role\":\"agent\"}").unwrap_err();
        assert_eq!(line, 1);
        assert!(err.contains("role"), "{err}");
    }
}
