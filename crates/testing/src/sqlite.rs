//! SQLite for tests: a database file of one test in a folder of its own under the system's
//! temporary folder, removed (with the folder) when the test ends. Needs nothing installed.

use std::path::{Path, PathBuf};

/// The database file of one test; it does not exist until a store opens it.
#[derive(Debug)]
pub struct TestSqliteFile {
    folder: PathBuf,
    url: String,
}

impl TestSqliteFile {
    /// A fresh name in a fresh folder.
    ///
    /// # Panics
    /// When the temporary folder cannot be written: a test never passes without its
    /// database.
    pub fn new() -> Self {
        let folder = std::env::temp_dir().join(format!("factors-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).unwrap_or_else(|e| panic!("creating {}: {e}", folder.display()));
        let url = format!("sqlite://{}", folder.join("factors.db").display());
        Self { folder, url }
    }

    /// The `sqlite:` URL of the file.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The folder the file (and its WAL files) live in.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

impl Default for TestSqliteFile {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestSqliteFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
