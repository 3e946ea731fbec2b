//! The AST walk: relations read or written, functions called, and the facts the noise
//! filter needs, gathered with sqlparser's visitor.
//!
//! The visitor is exhaustive over the AST (a subquery hidden in any expression is still
//! reached) and protects its own recursion with `recursive`/stacker, so this walk adds no
//! recursion of its own. What `visit_relations` gets wrong is fixed here: CTE names are
//! scoped like PostgreSQL scopes them (a non-recursive CTE sees only earlier siblings, so
//! in `WITH t AS (SELECT * FROM t)` the inner `t` is the real table), set-returning
//! functions in FROM are functions, and `FROM ONLY t` (which sqlparser reads as a table
//! named `ONLY`) marks the statement misread.

use crate::sql::{names, noise, Object};
use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor, TableObject, Value, Visit,
    Visitor,
};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// The CTEs one `WITH` declares, and how many of them are visible right now. Hashed:
/// a statement from the network may declare thousands.
struct CteFrame {
    /// Address of the query owning the `WITH`.
    owner: usize,
    /// Position of each CTE body in the list, by the body's address.
    bodies: HashMap<usize, usize>,
    /// Positions of the CTEs of each (folded) name.
    names: HashMap<String, Vec<usize>>,
    recursive: bool,
    /// Non-recursive: CTEs `0..visible` are in scope (the ones before the body being
    /// walked, then all of them for the main query).
    visible: usize,
}

/// What a walk found. Objects are in order of first appearance, not yet deduplicated.
#[derive(Default)]
pub struct Facts {
    /// Relations read or written (TABLE), CTE names excluded.
    pub objects: Vec<Object>,
    /// Functions called (rendered names).
    pub functions: Vec<String>,
    /// Commands of data-modifying CTE bodies (`DELETE` for `WITH d AS (DELETE ...)`).
    pub modifying: Vec<&'static str>,
    /// Targets of `SELECT ... INTO t`.
    pub into_targets: Vec<Object>,
    /// `FOR UPDATE`/`FOR SHARE` somewhere.
    pub locking: bool,
    /// An operator that may run a user function (custom, or one sqlparser may have split).
    pub odd_operator: bool,
    /// Every `set_config` call had literal, tool-setting arguments.
    pub set_config_ok: bool,
    /// Some `set_config` call was seen: the verdict then depends on literals.
    pub set_config_seen: bool,
    /// The AST is known to misrepresent the text, or holds something this walk cannot
    /// follow: the token path must decide.
    pub misread: bool,
}

/// Walks a statement.
pub fn walk(stmt: &Statement) -> Facts {
    let mut w = Walk {
        facts: Facts {
            set_config_ok: true,
            ..Facts::default()
        },
        frames: Vec::new(),
    };
    // The visitor never breaks: every `ControlFlow` below is `Continue`.
    let _ = stmt.visit(&mut w);
    w.facts
}

struct Walk {
    facts: Facts,
    frames: Vec<CteFrame>,
}

fn addr(q: &Query) -> usize {
    q as *const Query as usize
}

/// Folds and renders an `ObjectName`; `None` when a part is not a plain identifier.
pub fn object_name(name: &ObjectName) -> Option<String> {
    let mut parts = Vec::with_capacity(name.0.len());
    for p in &name.0 {
        match p {
            ObjectNamePart::Identifier(id) => parts.push(fold_ident(id)),
            ObjectNamePart::Function(_) => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(names::render(&parts))
}

/// Folds and renders a function name (keywords left bare); `None` when a part is not a
/// plain identifier.
pub fn function_name(name: &ObjectName) -> Option<String> {
    let mut parts = Vec::with_capacity(name.0.len());
    for p in &name.0 {
        match p {
            ObjectNamePart::Identifier(id) => parts.push(fold_ident(id)),
            ObjectNamePart::Function(_) => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(names::render_function(&parts))
}

/// Folds one identifier (`"X"` kept, `X` lower-cased).
pub fn fold_ident(id: &Ident) -> String {
    names::fold(&id.value, id.quote_style.is_some())
}

/// `ARRAY` or `ROW`, unquoted and unqualified.
fn is_constructor(name: &ObjectName) -> bool {
    matches!(name.0.as_slice(),
        [ObjectNamePart::Identifier(id)] if id.quote_style.is_none()
            && (id.value.eq_ignore_ascii_case("array") || id.value.eq_ignore_ascii_case("row")))
}

/// A single unquoted part spelled `ONLY`: sqlparser's reading of `FROM ONLY t`.
fn is_only_misread(name: &ObjectName) -> bool {
    matches!(name.0.as_slice(),
        [ObjectNamePart::Identifier(id)] if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("only"))
}

impl Walk {
    fn relation(&mut self, name: &ObjectName) {
        if is_only_misread(name) {
            self.facts.misread = true;
            return;
        }
        if let [ObjectNamePart::Identifier(id)] = name.0.as_slice() {
            if self.is_cte(&fold_ident(id)) {
                return;
            }
        }
        match object_name(name) {
            Some(n) => self.facts.objects.push(Object {
                kind: "TABLE".to_string(),
                name: n,
            }),
            None => self.facts.misread = true,
        }
    }

    fn function(&mut self, name: &ObjectName) {
        match function_name(name) {
            Some(n) => self.facts.functions.push(n),
            None => self.facts.misread = true,
        }
    }

    fn is_cte(&self, name: &str) -> bool {
        self.frames.iter().any(|f| {
            f.names
                .get(name)
                .is_some_and(|v| v.iter().any(|&i| f.recursive || i < f.visible))
        })
    }

    /// Vets `set_config(name, value, is_local)`: literal tool-setting name, and for
    /// `search_path` a literal value that keeps `pg_catalog` first.
    fn vet_set_config(&mut self, args: &FunctionArguments) {
        self.facts.set_config_seen = true;
        let literal = |a: Option<&FunctionArg>| match a {
            Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))) => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                Value::DollarQuotedString(d) => Some(d.value.clone()),
                _ => None,
            },
            _ => None,
        };
        let ok = match args {
            FunctionArguments::List(l) => {
                let name = literal(l.args.first());
                let value = literal(l.args.get(1));
                noise::set_config_call_ok(name.as_deref(), value.as_deref())
            }
            _ => false,
        };
        if !ok {
            self.facts.set_config_ok = false;
        }
    }
}

/// The command of a data-modifying query body, if it is one.
pub fn modifying_command(body: &SetExpr) -> Option<&'static str> {
    match body {
        SetExpr::Insert(_) => Some("INSERT"),
        SetExpr::Update(_) => Some("UPDATE"),
        SetExpr::Delete(_) => Some("DELETE"),
        SetExpr::Merge(_) => Some("MERGE"),
        _ => None,
    }
}

impl Visitor for Walk {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let a = addr(q);
        if let Some(f) = self.frames.last_mut() {
            if let Some(&i) = f.bodies.get(&a) {
                f.visible = i;
                if let Some(cmd) = modifying_command(&q.body) {
                    self.facts.modifying.push(cmd);
                }
            }
        }
        if !q.locks.is_empty() {
            self.facts.locking = true;
        }
        if !q.pipe_operators.is_empty() || q.for_clause.is_some() {
            self.facts.misread = true;
        }
        // `TABLE t` inside a set operation carries its name as bare strings, without
        // quoting: let the token path read it. Iterative: set operations nest deeply.
        let mut stack: Vec<&SetExpr> = vec![&q.body];
        while let Some(e) = stack.pop() {
            match e {
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(left);
                    stack.push(right);
                }
                SetExpr::Table(_) => self.facts.misread = true,
                _ => {}
            }
        }
        if let Some(with) = &q.with {
            let mut bodies = HashMap::new();
            let mut names: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, c) in with.cte_tables.iter().enumerate() {
                bodies.insert(addr(&c.query), i);
                names.entry(fold_ident(&c.alias.name)).or_default().push(i);
            }
            self.frames.push(CteFrame {
                owner: a,
                bodies,
                names,
                recursive: with.recursive,
                visible: 0,
            });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let a = addr(q);
        if self.frames.last().is_some_and(|f| f.owner == a) {
            self.frames.pop();
        }
        if let Some(f) = self.frames.last_mut() {
            if let Some(&i) = f.bodies.get(&a) {
                f.visible = f.visible.max(i + 1);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if let Some(into) = &s.into {
            for t in &into.targets {
                let name = match t {
                    Expr::Identifier(id) => Some(names::render(&[fold_ident(id)])),
                    Expr::CompoundIdentifier(ids) => {
                        let parts: Vec<String> = ids.iter().map(fold_ident).collect();
                        Some(names::render(&parts))
                    }
                    _ => None,
                };
                match name {
                    Some(n) => self.facts.into_targets.push(Object {
                        kind: "TABLE".to_string(),
                        name: n,
                    }),
                    None => self.facts.misread = true,
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        // An INSERT target is not a table factor; the visitor would miss it.
        if let Statement::Insert(ins) = s {
            match &ins.table {
                TableObject::TableName(n) => self.relation(n),
                _ => self.facts.misread = true,
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        match tf {
            TableFactor::Table { name, args, .. } => match args {
                Some(_) => self.function(name),
                None => self.relation(name),
            },
            TableFactor::Function { name, .. } => self.function(name),
            TableFactor::UNNEST { .. } => self.facts.functions.push("unnest".to_string()),
            TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::TableFunction { .. } => {}
            _ => self.facts.misread = true,
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            // Keyword functions without parentheses (`CURRENT_USER`) are not recorded,
            // like the token path, which cannot tell them from column names.
            // `ARRAY(subquery)` and `ROW(...)` are constructors, not calls.
            Expr::Function(f)
                if !matches!(f.args, FunctionArguments::None) && !is_constructor(&f.name) =>
            {
                self.function(&f.name);
                if let Some(n) = function_name(&f.name) {
                    if noise::is_set_config(&n) {
                        self.vet_set_config(&f.args);
                    }
                }
            }
            Expr::BinaryOp { op, .. } => match op {
                BinaryOperator::Custom(_) => self.facts.odd_operator = true,
                BinaryOperator::PGCustomBinaryOperator(parts)
                    if !(parts.len() == 2 && parts.first().is_some_and(|s| s == "pg_catalog")) =>
                {
                    self.facts.odd_operator = true
                }
                _ => {}
            },
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
