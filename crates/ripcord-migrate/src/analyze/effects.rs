//! What a parsed statement does: the tables it changes and the findings.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_statements, AlterColumnOperation, AlterTable, AlterTableOperation,
    CascadeOption, ColumnDef, ColumnOption, CopySource, DropBehavior, Expr, FromTable,
    GeneratedExpressionMode, Ident, ObjectName, ObjectNamePart, ObjectType, OnConflict,
    OnConflictAction, OnInsert, ReferentialAction, RenameTableNameKind, SqliteOnConflict,
    Statement, TableConstraint, TableFactor, TableObject, Visitor,
};

use super::{Kind, Options, Report, TableName};

pub(super) fn statement(statement: &Statement, options: &Options, report: &mut Report) {
    match statement {
        Statement::AlterTable(alter) => alter_table(alter, options, report),
        Statement::CreateTable(create) => {
            // IF NOT EXISTS may find the table there, with rows.
            if let (Some(table), false) = (table_name(&create.name), create.if_not_exists) {
                report.created(table);
            }
            report.data_free("creates a table");
            if let Some(query) = &create.query {
                calls(query, report);
            }
        }
        Statement::CreateIndex(index) => {
            let Some(table) = target(&index.table_name, report) else {
                return;
            };
            if !index.concurrently && !report.is_new(&table) {
                report.finding(
                    Kind::LongLock,
                    format!(
                        "building the index blocks writes to {table} until it is done; \
                         CREATE INDEX CONCURRENTLY does not"
                    ),
                );
            }
            report.data_free("builds an index");
            report.table(table);
        }
        Statement::Drop {
            object_type,
            names,
            cascade,
            ..
        } => drop(*object_type, names, *cascade, report),
        Statement::DropDomain(drop) => {
            report.data_free("drops a definition");
            if drop.drop_behavior == Some(DropBehavior::Cascade) {
                cascade_drops_columns(report);
            }
        }
        Statement::DropExtension(drop) => {
            report.data_free("drops a definition");
            if drop.cascade_or_restrict == Some(ReferentialAction::Cascade) {
                cascade_drops_columns(report);
            }
        }
        Statement::Truncate(truncate) => {
            let mut names = Vec::new();
            for t in &truncate.table_names {
                if let Some(table) = target(&t.name, report) {
                    names.push(table.to_string());
                    report.written(table);
                }
            }
            report.finding(Kind::Destructive, format!("empties {}", names.join(", ")));
            if truncate.cascade == Some(CascadeOption::Cascade) {
                report.finding(
                    Kind::Uncertain,
                    "CASCADE also empties every table that references these",
                );
            }
        }
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_)
        | Statement::Query(_) => {
            // Also the statements inside: `WITH gone AS (DELETE …) SELECT …`.
            let _ = visit_statements(statement, |s| {
                dml(s, report);
                ControlFlow::<()>::Continue(())
            });
            calls(statement, report);
        }
        // A body runs only where it is called: a call is what is uncertain.
        Statement::CreateFunction(_) | Statement::CreateProcedure { .. } => {
            report.data_free("creates a function or procedure")
        }
        Statement::CreateTrigger(trigger) => {
            report.data_free("creates a trigger");
            match table_name(&trigger.table_name) {
                Some(table) => report.trigger(table),
                None => report.finding(
                    Kind::Uncertain,
                    format!("cannot tell which table {} is", trigger.table_name),
                ),
            }
        }
        // A view's query runs when it is read; a materialized view's now.
        Statement::CreateView(view) => {
            report.data_free("creates a view");
            if view.materialized {
                calls(&view.query, report);
            }
        }
        Statement::Call(_) => report.finding(Kind::Uncertain, "a procedure can change any table"),
        Statement::Execute { .. } => report.finding(
            Kind::Uncertain,
            "EXECUTE runs a statement ripcord cannot see",
        ),
        Statement::Copy { source, to, .. } => {
            if !to {
                if let CopySource::Table { table_name, .. } = source {
                    if let Some(table) = target(table_name, report) {
                        report.written(table);
                    }
                }
                report.finding(
                    Kind::Uncertain,
                    "COPY … FROM loads rows from outside the script",
                );
            }
        }
        Statement::Vacuum(vacuum) => {
            if vacuum.full {
                report.finding(
                    Kind::Rewrite,
                    "VACUUM FULL rewrites tables under an exclusive lock",
                );
            }
        }
        // Statements that change no table's rows. ALTER TYPE … ADD VALUE and
        // the like matter for transactions, which the keyword scan covers.
        Statement::Grant(_) | Statement::Revoke(_) => report.data_free("grants or revokes"),
        Statement::CreateRole(_)
        | Statement::AlterRole { .. }
        | Statement::CreateUser(_)
        | Statement::AlterUser(_) => report.data_free("a role"),
        Statement::Comment { .. } => report.data_free("a comment"),
        Statement::Set(_)
        | Statement::Reset(_)
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. } => report.data_free("a setting"),
        Statement::CreatePolicy(_) | Statement::AlterPolicy(_) | Statement::DropPolicy(_) => {
            report.data_free("a row-level security policy")
        }
        Statement::CreateDatabase { .. } => report.data_free("creates a database"),
        Statement::CreateSchema { .. } | Statement::AlterSchema(_) => report.data_free("a schema"),
        Statement::CreateExtension(_) => report.data_free("creates an extension"),
        Statement::CreateType { .. } | Statement::CreateDomain(_) => {
            report.data_free("a type or domain")
        }
        Statement::CreateSequence { .. } => report.data_free("creates a sequence"),
        Statement::AlterFunction(_) => report.data_free("alters a function"),
        Statement::CreateServer(_) => report.data_free("a foreign server"),
        Statement::CreateTextSearch(_) | Statement::AlterTextSearch(_) => {
            report.data_free("text search configuration")
        }
        Statement::CreateOperator(_)
        | Statement::CreateOperatorFamily(_)
        | Statement::CreateOperatorClass(_)
        | Statement::AlterOperator(_)
        | Statement::AlterOperatorFamily(_)
        | Statement::AlterOperatorClass(_)
        | Statement::DropOperator(_)
        | Statement::DropOperatorFamily(_)
        | Statement::DropOperatorClass(_) => report.data_free("an operator"),
        Statement::AlterType(_)
        | Statement::AlterIndex { .. }
        | Statement::AlterView { .. }
        | Statement::AlterCollation(_)
        | Statement::CreateCollation(_)
        | Statement::DropFunction(_)
        | Statement::DropProcedure { .. }
        | Statement::DropTrigger(_) => report.data_free("a definition"),
        Statement::Analyze(_)
        | Statement::Commit { .. }
        | Statement::Deallocate { .. }
        | Statement::Discard { .. }
        | Statement::LISTEN { .. }
        | Statement::Lock(_)
        | Statement::NOTIFY { .. }
        | Statement::Prepare { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::StartTransaction { .. }
        | Statement::UNLISTEN { .. } => report.data_free("changes no table's rows"),
        _ => report.finding(
            Kind::Uncertain,
            "ripcord does not know which tables this kind of statement changes",
        ),
    }
}

fn alter_table(alter: &AlterTable, options: &Options, report: &mut Report) {
    let Some(table) = target(&alter.name, report) else {
        return;
    };
    // A table made earlier in the script is empty: rewriting it costs nothing.
    let new = report.is_new(&table);
    // A function in a default, a USING conversion or a CHECK runs for every
    // existing row.
    if !new {
        calls(alter, report);
    }
    if alter.operations.iter().all(|op| {
        matches!(
            op,
            AlterTableOperation::EnableRowLevelSecurity
                | AlterTableOperation::DisableRowLevelSecurity
                | AlterTableOperation::ForceRowLevelSecurity
                | AlterTableOperation::NoForceRowLevelSecurity
                | AlterTableOperation::OwnerTo { .. }
                | AlterTableOperation::EnableTrigger { .. }
                | AlterTableOperation::DisableTrigger { .. }
        )
    }) {
        report.data_free("row-level security, owner or triggers of a table");
    }
    for operation in &alter.operations {
        match operation {
            AlterTableOperation::AddColumn { column_def, .. } if !new => {
                add_column(&table, column_def, options, report)
            }
            AlterTableOperation::DropColumn { column_names, .. } => report.finding(
                Kind::Destructive,
                format!("drops {table}.{} and its data", join(column_names)),
            ),
            AlterTableOperation::AlterColumn { column_name, op } if !new => match op {
                AlterColumnOperation::SetDataType { .. } => {
                    report.finding(
                        Kind::Rewrite,
                        format!(
                            "changing the type of {table}.{column_name} rewrites the table under \
                             an exclusive lock unless the old values convert as they are \
                             (varchar to text, say)"
                        ),
                    );
                    report.finding(
                        Kind::Destructive,
                        format!("converting {table}.{column_name} may lose precision or text"),
                    );
                }
                AlterColumnOperation::SetNotNull => report.finding(
                    Kind::LongLock,
                    format!(
                        "SET NOT NULL reads every row of {table} under an exclusive lock; on a \
                         large table first add CHECK ({column_name} IS NOT NULL) NOT VALID and \
                         validate it"
                    ),
                ),
                _ => {}
            },
            AlterTableOperation::AddConstraint {
                constraint,
                not_valid: false,
            } if !new => match constraint {
                TableConstraint::Check(_) | TableConstraint::ForeignKey(_) => report.finding(
                    Kind::LongLock,
                    format!(
                        "the new constraint is checked against every row of {table} while writes \
                         wait; add it NOT VALID, then VALIDATE CONSTRAINT"
                    ),
                ),
                TableConstraint::PrimaryKey(_) | TableConstraint::Unique(_) => report.finding(
                    Kind::LongLock,
                    format!(
                        "the constraint builds an index on {table} while writes wait; build a \
                         unique index CONCURRENTLY and add the constraint USING INDEX"
                    ),
                ),
                _ => {}
            },
            AlterTableOperation::RenameTable { table_name } => {
                let (RenameTableNameKind::To(name) | RenameTableNameKind::As(name)) = table_name;
                if let Some(mut renamed) = target(name, report) {
                    // PostgreSQL keeps a renamed table in its schema.
                    if renamed.schema.is_none() {
                        renamed.schema = table.schema.clone();
                    }
                    report.table(renamed);
                }
            }
            _ => {}
        }
    }
    report.table(table);
}

fn add_column(table: &TableName, column: &ColumnDef, options: &Options, report: &mut Report) {
    let data_type = column.data_type.to_string().to_ascii_lowercase();
    let mut rewrite = match data_type.as_str() {
        "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8" => {
            Some("a serial type (its default calls nextval())".to_string())
        }
        _ => None,
    };
    for option in &column.options {
        match &option.option {
            ColumnOption::Default(expr) => {
                if let Some(function) = volatile_call(expr) {
                    rewrite = Some(format!("a volatile default ({function}())"));
                } else if options.server_version.is_some_and(|v| v < 11)
                    && !matches!(expr, Expr::Value(v) if v.to_string().eq_ignore_ascii_case("null"))
                {
                    rewrite = Some("a default, before PostgreSQL 11".into());
                }
            }
            ColumnOption::Generated {
                generation_expr: Some(_),
                generation_expr_mode,
                ..
            } if *generation_expr_mode != Some(GeneratedExpressionMode::Virtual) => {
                rewrite = Some("a stored generated value".into());
            }
            ColumnOption::Generated {
                generation_expr: None,
                ..
            } => rewrite = Some("an identity".into()),
            ColumnOption::PrimaryKey(_) | ColumnOption::Unique(_) => report.finding(
                Kind::LongLock,
                format!(
                    "adding {table}.{} builds an index while writes wait",
                    column.name
                ),
            ),
            _ => {}
        }
    }
    if let Some(why) = rewrite {
        report.finding(
            Kind::Rewrite,
            format!(
                "adding {table}.{} with {why} rewrites the table under an exclusive lock",
                column.name
            ),
        );
    }
}

fn drop(object_type: ObjectType, names: &[ObjectName], cascade: bool, report: &mut Report) {
    match object_type {
        ObjectType::Table => {
            let mut dropped = Vec::new();
            for name in names {
                if let Some(table) = target(name, report) {
                    dropped.push(table.to_string());
                    report.table(table);
                }
            }
            report.finding(
                Kind::Destructive,
                format!("drops {} and its data", dropped.join(", ")),
            );
        }
        ObjectType::Schema if cascade => {
            report.finding(
                Kind::Destructive,
                format!("drops {} and every table in it", join(names)),
            );
            report.finding(
                Kind::Uncertain,
                "the tables of a dropped schema are not named in the script",
            );
        }
        ObjectType::Database => report.finding(
            Kind::Destructive,
            format!("drops the database {}", join(names)),
        ),
        ObjectType::Type if cascade => cascade_drops_columns(report),
        _ => report.data_free("drops a definition"),
    }
}

fn cascade_drops_columns(report: &mut Report) {
    report.finding(
        Kind::Destructive,
        "CASCADE also drops the columns that use what it drops",
    );
    report.finding(
        Kind::Uncertain,
        "the tables whose columns CASCADE drops are not named in the script",
    );
}

/// The rows INSERT, UPDATE, DELETE and MERGE change.
fn dml(statement: &Statement, report: &mut Report) {
    match statement {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                report.finding(Kind::Uncertain, "INSERT into a table function");
                return;
            };
            let Some(table) = target(name, report) else {
                return;
            };
            let overwrites = insert.replace_into
                || insert.or == Some(SqliteOnConflict::Replace)
                || matches!(
                    insert.on,
                    Some(OnInsert::DuplicateKeyUpdate(_))
                        | Some(OnInsert::OnConflict(OnConflict {
                            action: OnConflictAction::DoUpdate(_),
                            ..
                        }))
                );
            if overwrites {
                report.finding(
                    Kind::Destructive,
                    format!("overwrites the rows of {table} that conflict"),
                );
            }
            report.written(table);
        }
        Statement::Update(update) => {
            if !update.table.joins.is_empty() {
                report.finding(Kind::Uncertain, "UPDATE of joined tables");
            }
            let Some(table) = relation(&update.table.relation, report) else {
                return;
            };
            let detail = if update.selection.is_none() && update.from.is_none() {
                format!("UPDATE without WHERE overwrites every row of {table}")
            } else {
                format!("overwrites values in {table}")
            };
            report.finding(Kind::Destructive, detail);
            report.written(table);
        }
        Statement::Delete(delete) => {
            let mut tables = Vec::new();
            if delete.tables.is_empty() {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) =
                    &delete.from;
                for t in from {
                    tables.extend(relation(&t.relation, report));
                }
            } else {
                for name in &delete.tables {
                    tables.extend(target(name, report));
                }
            }
            let names: Vec<String> = tables.iter().map(ToString::to_string).collect();
            let detail = if delete.selection.is_none() && delete.using.is_none() {
                format!(
                    "DELETE without WHERE deletes every row of {}",
                    names.join(", ")
                )
            } else {
                format!("deletes rows of {}", names.join(", "))
            };
            report.finding(Kind::Destructive, detail);
            for table in tables {
                report.written(table);
            }
        }
        Statement::Merge(merge) => {
            if let Some(table) = relation(&merge.table, report) {
                report.finding(
                    Kind::Destructive,
                    format!("MERGE may overwrite and delete rows of {table}"),
                );
                report.written(table);
            }
        }
        _ => {}
    }
}

/// Functions that change no table; anything else called from DML might.
pub(super) const HARMLESS_FUNCTIONS: &[&str] = &[
    "abs",
    "age",
    "array_agg",
    "array_append",
    "array_cat",
    "array_length",
    "array_position",
    "array_remove",
    "array_to_string",
    "ascii",
    "avg",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "ceil",
    "ceiling",
    "char_length",
    "chr",
    "clock_timestamp",
    "coalesce",
    "concat",
    "concat_ws",
    "count",
    "current_date",
    "current_setting",
    "current_time",
    "current_timestamp",
    "currval",
    "date",
    "date_part",
    "date_trunc",
    "datetime",
    "decode",
    "dense_rank",
    "encode",
    "every",
    "extract",
    "first_value",
    "floor",
    "format",
    "gen_random_uuid",
    "generate_series",
    "glob",
    "greatest",
    "group_concat",
    "hashtext",
    "hex",
    "ifnull",
    "iif",
    "initcap",
    "instr",
    "json",
    "json_agg",
    "json_array",
    "json_array_elements",
    "json_build_array",
    "json_build_object",
    "json_extract",
    "json_extract_path_text",
    "json_object",
    "json_object_agg",
    "json_typeof",
    "jsonb_agg",
    "jsonb_array_elements",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_object_agg",
    "jsonb_set",
    "jsonb_strip_nulls",
    "jsonb_typeof",
    "julianday",
    "lag",
    "last_value",
    "lastval",
    "lead",
    "least",
    "left",
    "length",
    "like",
    "localtime",
    "localtimestamp",
    "lower",
    "lpad",
    "ltrim",
    "make_date",
    "make_interval",
    "make_timestamp",
    "max",
    "md5",
    "min",
    "mod",
    "nextval",
    "now",
    "nullif",
    "octet_length",
    "position",
    "power",
    "printf",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "random",
    "randomblob",
    "rank",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "rpad",
    "rtrim",
    "set_config",
    "setval",
    "sha256",
    "split_part",
    "sqrt",
    "starts_with",
    "statement_timestamp",
    "strftime",
    "string_agg",
    "string_to_array",
    "strpos",
    "substr",
    "substring",
    "sum",
    "time",
    "timeofday",
    "to_char",
    "to_date",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_timestamp",
    "total",
    "transaction_timestamp",
    "translate",
    "trim",
    "trunc",
    "typeof",
    "unicode",
    "unnest",
    "upper",
    "uuid_generate_v1",
    "uuid_generate_v4",
];

/// Functions whose value differs per row, so a default calling them is
/// computed for every existing row.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "clock_timestamp",
    "gen_random_uuid",
    "nextval",
    "random",
    "timeofday",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
];

/// Functions called in FROM (`SELECT * FROM f(1)`): table factors, not
/// expressions.
struct TableFunctions(Vec<ObjectName>);

impl Visitor for TableFunctions {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => self.0.push(name.clone()),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Calls to functions that might write elsewhere make the table set uncertain.
fn calls<V: sqlparser::ast::Visit>(node: &V, report: &mut Report) {
    let mut from = TableFunctions(Vec::new());
    let _ = node.visit(&mut from);
    for name in from.0 {
        if !harmless(&name) {
            report.finding(
                Kind::Uncertain,
                format!("calls {name}(), which may change tables the script does not name"),
            );
        }
    }
    let _ = visit_expressions(node, |expr| {
        if let Expr::Function(function) = expr {
            if !harmless(&function.name) {
                report.finding(
                    Kind::Uncertain,
                    format!(
                        "calls {}(), which may change tables the script does not name",
                        function.name
                    ),
                );
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn harmless(name: &ObjectName) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => id.value.to_ascii_lowercase(),
            _ => String::new(),
        })
        .collect();
    match parts.as_slice() {
        [function] => HARMLESS_FUNCTIONS.contains(&function.as_str()),
        // pg_catalog holds the built-in functions, which write no table.
        [schema, _] => schema == "pg_catalog",
        _ => false,
    }
}

fn volatile_call(expr: &Expr) -> Option<String> {
    let found = visit_expressions(expr, |e| match e {
        Expr::Function(f) => match f.name.0.last() {
            Some(ObjectNamePart::Identifier(id))
                if VOLATILE_FUNCTIONS.contains(&id.value.to_ascii_lowercase().as_str()) =>
            {
                ControlFlow::Break(id.value.clone())
            }
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    });
    match found {
        ControlFlow::Break(name) => Some(name),
        ControlFlow::Continue(()) => None,
    }
}

/// A table the statement changes, or uncertainty when it cannot be named.
fn target(name: &ObjectName, report: &mut Report) -> Option<TableName> {
    let table = table_name(name);
    if table.is_none() {
        report.finding(
            Kind::Uncertain,
            format!("cannot tell which table {name} is"),
        );
    }
    table
}

fn relation(factor: &TableFactor, report: &mut Report) -> Option<TableName> {
    match factor {
        TableFactor::Table { name, .. } => target(name, report),
        _ => {
            report.finding(Kind::Uncertain, "writes through a subquery or function");
            None
        }
    }
}

/// Folds unquoted parts to lower case, as PostgreSQL does.
pub(super) fn table_name(name: &ObjectName) -> Option<TableName> {
    let mut parts = Vec::with_capacity(name.0.len());
    for part in &name.0 {
        match part {
            ObjectNamePart::Identifier(id) => parts.push(fold(id)),
            _ => return None,
        }
    }
    let table = parts.pop()?;
    Some(TableName {
        schema: parts.pop(),
        name: table,
    })
}

fn fold(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
