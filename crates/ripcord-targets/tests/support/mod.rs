pub mod sqlite_fixture;
