//! SQL about the post-change fingerprints that both the targets (which
//! write and read them) and the migration tracking (which forgets them with
//! a change's row) run.

/// Forgets the fingerprints of the change named by the setting
/// `ripcord.forget`: drops their own tables, deletes the rows an older
/// version put in the shared table, and their entries. A database set up by
/// an older version may have no fingerprint tables at all.
pub const FORGET: &str = "
DO $ripcord$ DECLARE t bigint; BEGIN
  IF pg_catalog.to_regclass('ripcord.fingerprint_tables') IS NOT NULL THEN
    FOR t IN SELECT id FROM ripcord.fingerprint_tables
             WHERE change = pg_catalog.current_setting('ripcord.forget') LOOP
      EXECUTE pg_catalog.format('DROP TABLE IF EXISTS ripcord.%I', 'fingerprint_' || t);
    END LOOP;
    DELETE FROM ripcord.fingerprint WHERE tab IN
      (SELECT id FROM ripcord.fingerprint_tables
       WHERE change = pg_catalog.current_setting('ripcord.forget'));
    DELETE FROM ripcord.fingerprint_tables
      WHERE change = pg_catalog.current_setting('ripcord.forget');
  END IF;
END $ripcord$";
