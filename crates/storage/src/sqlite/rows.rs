//! The statement helpers every aggregate uses (the readers of stored rows are `shared`'s).

use rusqlite::{Connection, Params, Row};

use crate::Result;

/// Runs one statement; how many rows it changed. The statement stays prepared for the next call.
pub(super) fn execute(conn: &Connection, sql: &str, params: impl Params) -> Result<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// Every row `sql` returns, each read by `row`.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut row: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(row(r)?);
    }
    Ok(out)
}

/// The first row `sql` returns, read by `row`.
pub(super) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    rows.next()?.map(row).transpose()
}

/// The first column of the one row `sql` returns (a count, a scalar).
pub(super) fn value<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str, params: impl Params) -> Result<T> {
    Ok(conn.prepare_cached(sql)?.query_row(params, |r| r.get(0))?)
}
