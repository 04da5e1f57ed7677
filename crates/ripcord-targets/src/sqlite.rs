//! SQLite databases, through the online backup API.
//!
//! A snapshot copies the database with one backup step, which holds a read
//! transaction for the copy: the image is consistent even while other
//! processes write. Row counts and checksums are computed on that image, so
//! they describe exactly what was stored.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Content, FileStamp, Stream, TableStat};
use ripcord_repo::saver::Saver;
use ripcord_repo::Repository;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::Progress;

pub struct SqliteSnapshot {
    pub image: Stream,
    pub tables: Vec<TableStat>,
    pub stamp: Option<FileStamp>,
    /// Reused from the parent without reading the database.
    pub unchanged: bool,
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// How long to wait, in all, for another process's lock on a database
/// (`RIPCORD_SQLITE_LOCK_TIMEOUT`, e.g. `2m`; 60 s by default). A writer
/// that never lets go must not hang a snapshot or a restore.
pub fn lock_timeout() -> Duration {
    std::env::var("RIPCORD_SQLITE_LOCK_TIMEOUT")
        .ok()
        .and_then(|t| ripcord_core::duration::parse(&t).ok())
        .unwrap_or(Duration::from_secs(60))
}

/// Checks that the database file of a target exists, unless the target
/// may create it (`create = true`): a mistyped path must not become a new,
/// empty database that a migration then runs against.
pub fn require_file(path: &Path, create: bool) -> Result<()> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Error::WrongKind {
            path: path.to_path_buf(),
            expected: "SQLite database file",
        }),
        Err(_) if create => Ok(()),
        Err(_) => Err(Error::MissingDatabase {
            path: path.to_path_buf(),
        }),
    }
}

/// Opens an existing database to read it: read-write with `query_only`, not
/// read-only. In WAL mode a read-only connection creates the `-wal` and
/// `-shm` files but cannot remove them when it closes; one that may write
/// checkpoints and removes them when it is the last to close.
pub fn open_to_read(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err(path))?;
    conn.busy_timeout(lock_timeout()).map_err(sql_err(path))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(sql_err(path))?;
    Ok(conn)
}

fn open_existing(path: &Path) -> Result<Connection> {
    require_file(path, false)?;
    let conn = open_to_read(path).map_err(|e| match e {
        Error::Sqlite { source, .. } => Error::NotSqlite {
            path: path.to_path_buf(),
            detail: source.to_string(),
        },
        other => other,
    })?;
    // Reading the schema is what fails on a file that is not a database.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| {
        if is_busy(&e) {
            busy(path, "reading the schema")
        } else {
            Error::NotSqlite {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
    })?;
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn busy(path: &Path, doing: &'static str) -> Error {
    Error::SqliteBusy {
        path: path.to_path_buf(),
        seconds: lock_timeout().as_secs(),
        doing,
    }
}

/// Copies the database at `src` into a new file at `dest` (a scratch copy),
/// consistently even while others write, waiting at most [`lock_timeout`].
pub fn copy_file(src: &Path, dest: &Path) -> Result<()> {
    let conn = open_existing(src)?;
    backup_into(&conn, dest, src)
}

/// Copies `src` into a new database file at `dest` in one backup step.
fn backup_into(src: &Connection, dest: &Path, src_path: &Path) -> Result<()> {
    let mut out = Connection::open(dest).map_err(sql_err(dest))?;
    copy_all(src, &mut out, src_path)
}

/// Copies every page of `src` into `dst` in one backup step: one read
/// transaction on the source, one atomic replacement of the destination.
/// Waits for other connections' locks up to [`lock_timeout`] in all.
fn copy_all(src: &Connection, dst: &mut Connection, path: &Path) -> Result<()> {
    let deadline = Instant::now() + lock_timeout();
    let backup = rusqlite::backup::Backup::new(src, dst).map_err(|e| {
        if is_busy(&e) {
            busy(path, "copying the database")
        } else {
            sql_err(path)(e)
        }
    })?;
    loop {
        let step = match backup.step(-1) {
            Ok(step) => step,
            Err(e) if is_busy(&e) => rusqlite::backup::StepResult::Busy,
            Err(e) => return Err(sql_err(path)(e)),
        };
        match step {
            rusqlite::backup::StepResult::Done => return Ok(()),
            // Busy or locked: another connection is writing; try again.
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return Err(busy(path, "copying the database")),
        }
    }
}

/// Size, times and inode of the database file and of its WAL file.
pub fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| {
        fs::metadata(p).ok().map(|m| {
            [
                m.len() as i64,
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                m.ino() as i64,
            ]
        })
    };
    let main = one(path)?;
    let mut wal_path = path.as_os_str().to_owned();
    wal_path.push("-wal");
    Some(FileStamp {
        main,
        wal: one(Path::new(&wal_path)),
    })
}

/// ripcord's change capture, there while a migration's safety snapshot is
/// copied: triggers `ripcord_capture_N_ins`, `_upd` and `_del` and their
/// log tables `ripcord_capture_N`. They are taken out of the copy, so that
/// nothing restored from it brings them back (they would log every write).
fn strip_capture(image: &Path) -> Result<()> {
    let mut conn = Connection::open(image).map_err(sql_err(image))?;
    let found: Vec<(String, String)> = conn
        .prepare(
            "SELECT type, name FROM sqlite_master
             WHERE type IN ('trigger', 'table') AND name GLOB 'ripcord_capture_[0-9]*'
             ORDER BY type DESC",
        )
        .and_then(|mut q| {
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sql_err(image))?;
    if found.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction().map_err(sql_err(image))?;
    for (kind, name) in &found {
        let kind = if kind == "trigger" {
            "TRIGGER"
        } else {
            "TABLE"
        };
        tx.execute_batch(&format!(
            "DROP {kind} IF EXISTS main.\"{}\"",
            name.replace('"', "\"\"")
        ))
        .map_err(sql_err(image))?;
    }
    tx.commit().map_err(sql_err(image))
}

/// Snapshots the database at `path`. When `parent` (the previous snapshot of
/// this target) carries the same file stamp, nothing was written since: its
/// image and tables are reused without reading the database.
pub fn snapshot(
    saver: &Saver,
    path: &Path,
    parent: Option<&Content>,
    progress: &dyn Progress,
) -> Result<SqliteSnapshot> {
    snapshot_with(saver, path, parent, progress, &mut |_, _| {})
}

/// [`snapshot`], and `inspect` reads what else the caller wants from the
/// copy, read-only, before it is stored (ripcord's migration state): it
/// then agrees with the data. It gets the copy and the database's path. It
/// is not called when the parent's image is reused (nothing was written).
pub fn snapshot_with(
    saver: &Saver,
    path: &Path,
    parent: Option<&Content>,
    progress: &dyn Progress,
    inspect: &mut dyn FnMut(&Connection, &Path),
) -> Result<SqliteSnapshot> {
    let before = stamp(path);
    if let (
        Some(now),
        Some(Content::Sqlite {
            image,
            tables,
            stamp: Some(then),
        }),
    ) = (&before, parent)
    {
        if now == then && image.chunks.iter().all(|c| saver.is_known(c)) {
            progress.bytes(image.size);
            return Ok(SqliteSnapshot {
                image: image.clone(),
                tables: tables.clone(),
                stamp: before,
                unchanged: true,
            });
        }
    }
    let src = open_existing(path)?;
    let tmp = tempfile::Builder::new()
        .prefix("ripcord-sqlite-")
        .tempdir()
        .map_err(|e| Error::io("cannot create a temporary folder", e))?;
    let image_path = tmp.path().join("image.db");
    backup_into(&src, &image_path, path)?;
    drop(src);
    strip_capture(&image_path)?;
    let tables = {
        let image = Connection::open_with_flags(&image_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql_err(&image_path))?;
        inspect(&image, path);
        table_stats(&image, &image_path)?
    };
    let file =
        fs::File::open(&image_path).map_err(|e| Error::io("cannot read the database image", e))?;
    let image = ripcord_repo::chunk::save_stream(saver, file, &path.display().to_string(), &|n| {
        progress.bytes(n)
    })?;
    // Stamped as before the copy: a write during it makes the next snapshot read again.
    Ok(SqliteSnapshot {
        image,
        tables,
        stamp: before,
        unchanged: false,
    })
}

/// Row count, content checksum and schema of every user table, by name.
pub fn table_stats(conn: &Connection, path: &Path) -> Result<Vec<TableStat>> {
    let err = sql_err(path);
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(&err)?;
    let tables: Vec<(String, String)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))
        })
        .map_err(&err)?
        .collect::<Result<_, _>>()
        .map_err(&err)?;
    let mut out = Vec::new();
    for (name, schema) in tables {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let without_rowid = schema.to_ascii_uppercase().contains("WITHOUT ROWID");
        // Key order makes the checksum independent of the file's page layout.
        let sql = if without_rowid {
            format!("SELECT * FROM {quoted}")
        } else {
            format!("SELECT * FROM {quoted} ORDER BY rowid")
        };
        let mut stmt = conn.prepare(&sql).map_err(&err)?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([]).map_err(&err)?;
        let mut hasher = blake3::Hasher::new();
        // Values are encoded into a buffer hashed in large pieces: BLAKE3
        // hashes the same bytes either way, and small updates are slow.
        let mut buf: Vec<u8> = Vec::with_capacity(HASH_BUF + 4096);
        let mut count = 0u64;
        while let Some(row) = rows.next().map_err(&err)? {
            count += 1;
            for i in 0..cols {
                encode_value(&mut buf, row.get_ref(i).map_err(&err)?);
            }
            if buf.len() >= HASH_BUF {
                hasher.update(&buf);
                buf.clear();
            }
        }
        hasher.update(&buf);
        out.push(TableStat {
            name,
            rows: count,
            checksum: hasher.finalize().to_hex().to_string(),
            schema,
        });
    }
    Ok(out)
}

const HASH_BUF: usize = 256 << 10;

/// The checksum's encoding of one value: a type byte, then the bytes.
fn encode_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.push(0),
        ValueRef::Integer(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        ValueRef::Real(f) => {
            out.push(2);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        ValueRef::Text(t) => {
            out.push(3);
            out.extend_from_slice(&(t.len() as u64).to_le_bytes());
            out.extend_from_slice(t);
        }
        ValueRef::Blob(b) => {
            out.push(4);
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// Writes the stored image to `dest` (a new file) and checks its checksum.
pub fn write_image(
    repo: &Repository,
    index: &Index,
    image: &Stream,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let ctx = || format!("cannot write {}", dest.display());
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| Error::io(ctx(), e))?;
    let mut hasher = blake3::Hasher::new();
    repo.for_each_blob(index, &image.chunks, |data| -> Result<()> {
        hasher.update(&data);
        out.write_all(&data).map_err(|e| Error::io(ctx(), e))?;
        progress.bytes(data.len() as u64);
        Ok(())
    })
    .map_err(|e| e.damaged_at(&dest.display().to_string()))?;
    out.sync_all().map_err(|e| Error::io(ctx(), e))?;
    if hasher.finalize().to_hex().as_str() != image.checksum {
        return Err(Error::Mismatch {
            detail: format!("{} does not match the snapshot's checksum", dest.display()),
        });
    }
    Ok(())
}

/// Checks a restored database against the manifest's tables.
pub fn check_tables(path: &Path, expected: &[TableStat]) -> Result<u64> {
    let conn = open_to_read(path)?;
    let actual = table_stats(&conn, path)?;
    drop(conn);
    let want: Vec<_> = expected
        .iter()
        .map(|t| (&t.name, t.rows, &t.checksum))
        .collect();
    let got: Vec<_> = actual
        .iter()
        .map(|t| (&t.name, t.rows, &t.checksum))
        .collect();
    if want != got {
        let diff: Vec<String> = expected
            .iter()
            .filter(|t| {
                !actual
                    .iter()
                    .any(|a| a.name == t.name && a.rows == t.rows && a.checksum == t.checksum)
            })
            .map(|t| t.name.clone())
            .collect();
        return Err(Error::Mismatch {
            detail: format!("tables differ after restore: {}", diff.join(", ")),
        });
    }
    Ok(actual.len() as u64)
}

/// Checks the tables `expected` names in a restored database (others may
/// differ): their row counts and checksums.
pub fn check_some_tables(path: &Path, expected: &[TableStat]) -> Result<u64> {
    let conn = open_to_read(path)?;
    let actual = table_stats(&conn, path)?;
    drop(conn);
    let bad: Vec<&str> = expected
        .iter()
        .filter(|t| {
            !actual
                .iter()
                .any(|a| a.name == t.name && a.rows == t.rows && a.checksum == t.checksum)
        })
        .map(|t| t.name.as_str())
        .collect();
    if !bad.is_empty() {
        return Err(Error::Mismatch {
            detail: format!("tables differ after restore: {}", bad.join(", ")),
        });
    }
    Ok(expected.len() as u64)
}

/// Restores only `tables` of the image into a new file at `dest`: the
/// image is written beside it, every other table and every view is
/// dropped, and the rest is checked. A foreign key from a chosen table to
/// one left out is refused: the copy could not be written to.
pub fn restore_tables_to_file(
    repo: &Repository,
    index: &Index,
    image: &Stream,
    stats: &[TableStat],
    tables: &[String],
    dest: &Path,
    progress: &dyn Progress,
) -> Result<u64> {
    if dest.exists() {
        return Err(Error::NotEmpty {
            path: dest.to_path_buf(),
        });
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let tmp = TempFile(tmp_sibling(dest));
    let _ = fs::remove_file(&tmp.0);
    write_image(repo, index, image, &tmp.0, progress)?;
    {
        let conn = Connection::open(&tmp.0).map_err(sql_err(&tmp.0))?;
        let err = sql_err(&tmp.0);
        let all: Vec<(String, String)> = conn
            .prepare(
                "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type DESC, name",
            )
            .map_err(&err)?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(&err)?;
        let chosen = |n: &str| tables.iter().any(|t| t == n);
        for t in tables {
            let parents: Vec<String> = conn
                .prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)")
                .map_err(&err)?
                .query_map([t], |r| r.get(0))
                .map_err(&err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(&err)?;
            if let Some(p) = parents
                .iter()
                .find(|p| !tables.iter().any(|t| t.eq_ignore_ascii_case(p)))
            {
                return Err(Error::Tool {
                    message: format!(
                        "table {t} has a foreign key to {p}, which --tables leaves out"
                    ),
                    hint: format!("nothing was written; restore both: --tables {t},{p}"),
                });
            }
        }
        let mut sql = String::from("PRAGMA foreign_keys = OFF; BEGIN;");
        for (kind, name) in all.iter().filter(|(_, n)| !chosen(n)) {
            let q = format!("\"{}\"", name.replace('"', "\"\""));
            sql.push_str(&format!(" DROP {} {q};", kind.to_ascii_uppercase()));
        }
        sql.push_str(" COMMIT; VACUUM;");
        conn.execute_batch(&sql).map_err(&err)?;
    }
    let wanted: Vec<TableStat> = stats
        .iter()
        .filter(|s| tables.contains(&s.name))
        .cloned()
        .collect();
    let n = check_some_tables(&tmp.0, &wanted)?;
    fs::rename(&tmp.0, dest)
        .map_err(|e| Error::io(format!("cannot move into {}", dest.display()), e))?;
    Ok(n)
}

/// Restores the image into a new file at `dest`, byte for byte, then checks it.
pub fn restore_to_file(
    repo: &Repository,
    index: &Index,
    image: &Stream,
    tables: &[TableStat],
    dest: &Path,
    progress: &dyn Progress,
) -> Result<u64> {
    if dest.exists() {
        return Err(Error::NotEmpty {
            path: dest.to_path_buf(),
        });
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let tmp = tmp_sibling(dest);
    let result = write_image(repo, index, image, &tmp, progress)
        .and_then(|_| check_tables(&tmp, tables))
        .and_then(|n| {
            fs::rename(&tmp, dest)
                .map_err(|e| Error::io(format!("cannot move into {}", dest.display()), e))?;
            Ok(n)
        });
    if result.is_err() {
        remove_with_journals(&tmp);
    }
    result
}

/// A database image written beside its live file and checked, ready to be
/// applied. Dropping it removes the file.
pub struct Staged {
    file: TempFile,
}

/// Restores over a live database in two steps: [`stage`] writes the image
/// beside it and checks it; [`Staged::apply`] copies it in with the backup
/// API, which SQLite applies atomically and which respects other
/// connections and WAL mode. Damage is found before the live file changes.
pub fn stage(
    repo: &Repository,
    index: &Index,
    image: &Stream,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<Staged> {
    let tmp = tmp_sibling(dest);
    let _ = fs::remove_file(&tmp);
    let file = TempFile(tmp.clone());
    // The image's checksum already proves it is the snapshotted one; the
    // tables are checked once, on the live file, after `apply`.
    write_image(repo, index, image, &tmp, progress)?;
    Ok(Staged { file })
}

impl Staged {
    /// The staged image.
    pub fn path(&self) -> &Path {
        &self.file.0
    }

    /// Puts only `tables` of the staged image into the live database at
    /// `dest` (see [`crate::sqlite_revert::restore_tables`]).
    pub fn apply_tables(self, dest: &Path, stats: &[TableStat], tables: &[String]) -> Result<u64> {
        crate::sqlite_revert::restore_tables(self.path(), stats, dest, tables)
    }

    pub fn apply(self, dest: &Path, tables: &[TableStat]) -> Result<u64> {
        let tmp = &self.file.0;
        if !dest.exists() {
            fs::rename(tmp, dest)
                .map_err(|e| Error::io(format!("cannot move into {}", dest.display()), e))?;
        } else {
            let src = open_to_read(tmp)?;
            let mut live = Connection::open(dest).map_err(sql_err(dest))?;
            live.busy_timeout(lock_timeout()).map_err(sql_err(dest))?;
            copy_all(&src, &mut live, dest)?;
            // Closed before the check, so that the last connection to close
            // checkpoints the WAL and removes `-wal` and `-shm`.
            drop(src);
            drop(live);
        }
        drop(self);
        check_tables(dest, tables)
    }
}

/// A database file written by a restore, removed when dropped, with the
/// journal files SQLite may have made beside it.
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        remove_with_journals(&self.0);
    }
}

fn remove_with_journals(path: &Path) {
    let _ = fs::remove_file(path);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = fs::remove_file(PathBuf::from(side));
    }
}

fn tmp_sibling(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.ripcord-restore"))
}
