//! The token path's object scan: relations in the positions that name them, functions
//! called, CTE scopes, and the facts the noise filter needs.
//!
//! One forward pass with an explicit stack of parenthesis levels (no recursion: the
//! input is hostile). Each level remembers whether it is inside a FROM list and what the
//! next word would be (a from-item, an alias, ...). Anything the pass does not follow
//! sets `uncertain`, which only ever costs noise, never an object.

use super::lexed::{self, Lexed, Tk, T};
use crate::sql::{names, noise, Object};
use std::collections::HashMap;
use std::ops::Range;

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanOut {
    /// Relations read or written, in order of appearance.
    pub objects: Vec<Object>,
    /// Functions called (rendered names).
    pub functions: Vec<String>,
    /// Commands of data-modifying CTE bodies.
    pub modifying: Vec<&'static str>,
    /// Targets of `SELECT ... INTO t`.
    pub into_targets: Vec<Object>,
    /// `FOR UPDATE`/`FOR SHARE` somewhere.
    pub locking: bool,
    /// An operator that may be user-defined (OPERATOR(s.op), or touching operators
    /// PostgreSQL reads as one).
    pub odd_operator: bool,
    /// Something the scan did not follow: never noise.
    pub uncertain: bool,
    /// Some `set_config` call was not vetted.
    pub set_config_bad: bool,
    /// Some `set_config` call was seen: the verdict depends on literals.
    pub set_config_seen: bool,
}

impl ScanOut {
    /// Records a relation read or written.
    pub fn table(&mut self, parts: &[String]) {
        self.object("TABLE", parts);
    }

    /// Records an object of a kind.
    pub fn object(&mut self, kind: &str, parts: &[String]) {
        if parts.is_empty() {
            self.uncertain = true;
            return;
        }
        self.objects.push(Object {
            kind: kind.to_string(),
            name: names::render(parts),
        });
    }
}

/// A CTE declaration and where its name is visible.
struct Cte {
    body_close: usize,
    list_start: usize,
    scope_end: usize,
    recursive: bool,
}

/// At most this many CTEs are tracked; beyond it names read as relations (more objects,
/// never fewer) and noise is off.
const MAX_CTES: usize = 256;

/// Words that are not function names when followed by `(`: keywords whose parentheses
/// hold a list, subquery or clause, special-syntax functions sqlparser does not record
/// either, and type names with modifiers.
#[rustfmt::skip]
const NOT_FUNCTIONS: &[&str] = &[
    "all", "and", "any", "array", "as", "asc", "at", "between", "bit", "both", "by", "case",
    "cast", "ceil", "ceiling", "char", "character", "check", "collate", "conflict",
    "convert", "cube", "cycle", "dec", "decimal", "default", "delete", "desc", "distinct",
    "do", "else", "escape", "except", "exclude", "exists", "extract", "fetch", "filter",
    "first", "float", "floor", "for", "foreign", "from", "group", "groups", "having", "if",
    "ilike", "in", "include", "insert", "intersect", "interval", "into", "is", "join",
    "key", "language", "last", "lateral", "leading", "like", "limit", "materialized",
    "merge", "national", "nchar", "not", "nulls", "numeric", "of", "offset", "on", "only",
    "operator", "or", "order", "ordinality", "over", "overlay", "partition", "position",
    "precision", "range", "recursive", "references", "repeatable", "returning", "returns",
    "rollup", "row", "rows", "search", "select", "set", "sets", "similar", "some",
    "substring", "table", "then", "time", "timestamp", "timestamptz", "timetz", "to",
    "trailing", "trim", "try_cast", "union", "unique", "update", "using", "values",
    "varbit", "varchar", "variadic", "varying", "when", "where", "window", "with", "within",
    "zone",
];

/// Special-syntax functions whose parentheses may hold `FROM` (`EXTRACT(y FROM d)`),
/// which is then no FROM list.
#[rustfmt::skip]
const SPECIAL_SYNTAX: &[&str] = &[
    "extract", "substring", "trim", "overlay", "position", "normalize",
];

/// Keywords that end a FROM list at their level.
#[rustfmt::skip]
const FROM_ENDS: &[&str] = &[
    "where", "group", "having", "window", "order", "limit", "offset", "fetch", "for",
    "union", "intersect", "except", "returning", "set", "when", "select", "values", "into",
];

/// Keywords that cannot be an alias after a from-item.
#[rustfmt::skip]
const NOT_ALIASES: &[&str] = &[
    "where", "group", "having", "window", "order", "limit", "offset", "fetch", "for",
    "union", "intersect", "except", "returning", "set", "when", "on", "using", "join",
    "inner", "left", "right", "full", "cross", "natural", "outer", "tablesample", "with",
    "select", "values", "into", "do", "then", "as",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Nothing,
    /// A from-item comes next.
    Item,
    /// Just after a from-item: an alias may follow.
    AfterItem,
    /// After `AS`: the alias itself.
    Alias,
    /// After the alias: a column list may follow.
    AliasDone,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Paren {
    Top,
    Plain,
    Func,
    Skip,
    /// A parenthesized join in a FROM list.
    Nested,
    /// A subquery in a FROM list.
    Subquery,
}

#[derive(Clone, Copy)]
struct Level {
    from_active: bool,
    expect: Expect,
    /// When the next group at this level closes, an alias may follow (SRF in FROM).
    after_group: bool,
    paren: Paren,
}

impl Level {
    fn new(paren: Paren) -> Level {
        Level {
            from_active: paren == Paren::Nested,
            expect: if paren == Paren::Nested {
                Expect::Item
            } else {
                Expect::Nothing
            },
            after_group: false,
            paren,
        }
    }
}

/// Scans `range` of `lx` for relations and functions, adding to `out`.
pub fn scan(lx: &Lexed, range: Range<usize>, out: &mut ScanOut) {
    let end = range.end.min(lx.toks.len());
    let start = range.start.min(end);
    let mut s = Scanner {
        lx,
        start,
        end,
        ctes: HashMap::new(),
        n_ctes: 0,
        consumed: vec![false; lx.toks.len()],
        skip_group: vec![false; lx.toks.len()],
        out,
    };
    s.find_ctes();
    s.run();
}

struct Scanner<'a> {
    lx: &'a Lexed,
    start: usize,
    end: usize,
    ctes: HashMap<String, Vec<Cte>>,
    n_ctes: usize,
    /// Tokens already read as names (CTE names, targets): not functions, not items.
    consumed: Vec<bool>,
    /// Groups that are column lists: nothing in them is a function or relation.
    skip_group: Vec<bool>,
    out: &'a mut ScanOut,
}

impl Scanner<'_> {
    fn mark(&mut self, i: usize) {
        if let Some(c) = self.consumed.get_mut(i) {
            *c = true;
        }
    }

    fn skip(&mut self, i: usize) {
        if let Some(c) = self.skip_group.get_mut(i) {
            *c = true;
        }
    }

    /// Pre-pass: every `WITH name [(cols)] AS [NOT] [MATERIALIZED] (` list.
    fn find_ctes(&mut self) {
        let lx = self.lx;
        let mut open: Vec<usize> = Vec::new();
        for i in self.start..self.end {
            match lx.toks.get(i).map(|t| t.kind) {
                Some(Tk::LParen) => open.push(i),
                Some(Tk::RParen) => {
                    open.pop();
                }
                Some(Tk::Word) if lx.is(i, "with") => {
                    let scope_end = open
                        .last()
                        .and_then(|&o| lx.close.get(o).copied())
                        .unwrap_or(self.end);
                    self.cte_list(i, scope_end);
                }
                _ => {}
            }
        }
    }

    fn cte_list(&mut self, w: usize, scope_end: usize) {
        let lx = self.lx;
        let mut j = w + 1;
        let recursive = lx.is(j, "recursive");
        if recursive {
            j += 1;
        }
        let mut first = true;
        loop {
            let name_idx = j;
            let Some(name) = lx.get(j).filter(|t| t.kind == Tk::Word).map(T::folded) else {
                break;
            };
            j += 1;
            if lx.kind_is(j, Tk::LParen) {
                self.skip(j);
                j = lx.past_group(j);
            }
            if !lx.is(j, "as") {
                break;
            }
            j += 1;
            if lx.is(j, "not") {
                j += 1;
            }
            if lx.is(j, "materialized") {
                j += 1;
            }
            if !lx.kind_is(j, Tk::LParen) {
                break;
            }
            let body_close = lx.close.get(j).copied().unwrap_or(lx.toks.len());
            if let Some(t) = lx.get(j + 1) {
                for (kw, cmd) in [
                    ("insert", "INSERT"),
                    ("update", "UPDATE"),
                    ("delete", "DELETE"),
                    ("merge", "MERGE"),
                ] {
                    if t.is(kw) {
                        self.out.modifying.push(cmd);
                    }
                }
            }
            self.mark(name_idx);
            if self.n_ctes < MAX_CTES {
                self.n_ctes += 1;
                self.ctes.entry(name).or_default().push(Cte {
                    body_close,
                    list_start: w,
                    scope_end,
                    recursive,
                });
            } else {
                self.out.uncertain = true;
            }
            first = false;
            j = body_close.saturating_add(1);
            // SEARCH/CYCLE clauses: words up to the next CTE or the main statement.
            while let Some(t) = lx.get(j) {
                if t.kind == Tk::Comma
                    || t.kind == Tk::RParen
                    || t.kind == Tk::Semi
                    || t.kind == Tk::LParen
                    || t.is_any(&[
                        "select", "insert", "update", "delete", "merge", "values", "table",
                    ])
                {
                    break;
                }
                j += 1;
            }
            if lx.kind_is(j, Tk::Comma) {
                j += 1;
            } else {
                return;
            }
        }
        if !first {
            // The list broke off in the middle: not understood.
            self.out.uncertain = true;
        }
    }

    fn is_cte_ref(&self, name: &str, pos: usize) -> bool {
        self.ctes.get(name).is_some_and(|v| {
            v.iter().any(|c| {
                pos < c.scope_end && (pos > c.body_close || (c.recursive && pos >= c.list_start))
            })
        })
    }

    fn prev_is(&self, i: usize, kws: &[&str]) -> bool {
        i > self.start && self.lx.get(i - 1).is_some_and(|t| t.is_any(kws))
    }

    fn run(&mut self) {
        let lx = self.lx;
        let mut levels = vec![Level::new(Paren::Top)];
        let mut pending_func: Option<usize> = None;
        let mut i = self.start;
        while i < self.end {
            let Some(t) = lx.get(i) else { break };
            let top_level = levels.len() == 1;
            let Some(cur) = levels.last_mut() else { break };
            match t.kind {
                Tk::LParen => {
                    let next_query = lx
                        .get(i + 1)
                        .is_some_and(|n| n.is_any(&["select", "values", "with", "table"]));
                    let paren = if self.skip_group.get(i).copied().unwrap_or(false)
                        || cur.expect == Expect::AliasDone
                    {
                        Paren::Skip
                    } else if pending_func == Some(i) {
                        Paren::Func
                    } else if cur.expect == Expect::Item {
                        if next_query {
                            Paren::Subquery
                        } else {
                            Paren::Nested
                        }
                    } else {
                        Paren::Plain
                    };
                    cur.expect = Expect::Nothing;
                    levels.push(Level::new(paren));
                    i += 1;
                }
                Tk::RParen => {
                    if levels.len() <= 1 {
                        self.out.uncertain = true;
                    } else if let Some(popped) = levels.pop() {
                        if let Some(cur) = levels.last_mut() {
                            if matches!(popped.paren, Paren::Subquery | Paren::Nested)
                                || cur.after_group
                            {
                                cur.expect = Expect::AfterItem;
                                cur.after_group = false;
                            }
                        }
                    }
                    i += 1;
                }
                Tk::Comma => {
                    cur.expect = if cur.from_active {
                        Expect::Item
                    } else {
                        Expect::Nothing
                    };
                    i += 1;
                }
                Tk::Word => {
                    if self.consumed.get(i).copied().unwrap_or(false) {
                        i += 1;
                        continue;
                    }
                    if levels.last().is_some_and(|l| l.paren == Paren::Skip) {
                        i += 1;
                        continue;
                    }
                    i = self.word(i, &mut levels, &mut pending_func);
                }
                Tk::Semi if top_level => break,
                kind => {
                    if cur.expect == Expect::Item {
                        self.out.uncertain = true;
                    }
                    cur.expect = Expect::Nothing;
                    let run_start =
                        kind == Tk::Op && (i == self.start || t.gap || !lx.kind_is(i - 1, Tk::Op));
                    if run_start {
                        // Touching operator tokens: does PostgreSQL read them as these
                        // operators, or as one (possibly user-defined) operator?
                        let mut texts = vec![t.text.as_str()];
                        let mut j = i + 1;
                        while let Some(n) = lx.get(j).filter(|n| n.kind == Tk::Op && !n.gap) {
                            texts.push(n.text.as_str());
                            j += 1;
                        }
                        if !lexed::pg_splits_same(&texts) {
                            self.out.odd_operator = true;
                        }
                    }
                    i += 1;
                }
            }
        }
        if levels.len() > 1 {
            self.out.uncertain = true;
        }
    }

    /// Handles the word at `i`; returns the index to continue from (always past `i`).
    fn word(&mut self, i: usize, levels: &mut [Level], pending_func: &mut Option<usize>) -> usize {
        let lx = self.lx;
        let Some(t) = lx.get(i) else { return i + 1 };
        let Some(cur) = levels.last_mut() else {
            return i + 1;
        };
        let in_func = cur.paren == Paren::Func;
        match cur.expect {
            Expect::Item => {
                if t.is_any(&["only", "lateral"]) {
                    return i + 1;
                }
                if t.is("rows") && lx.is(i + 1, "from") {
                    cur.expect = Expect::Nothing;
                    cur.after_group = true;
                    return i + 2;
                }
                if !t.quoted && (NOT_ALIASES.contains(&t.text.to_ascii_lowercase().as_str())) {
                    self.out.uncertain = true;
                    cur.expect = Expect::Nothing;
                } else {
                    let (parts, j) = lx.name_at(i);
                    if lx.kind_is(j, Tk::LParen) {
                        self.function(&parts, j);
                        *pending_func = Some(j);
                        cur.expect = Expect::Nothing;
                        cur.after_group = true;
                    } else {
                        let cte = parts.len() == 1
                            && parts.first().is_some_and(|p| self.is_cte_ref(p, i));
                        if !cte {
                            self.out.table(&parts);
                        }
                        cur.expect = Expect::AfterItem;
                    }
                    return j.max(i + 1);
                }
            }
            Expect::AfterItem => {
                if t.is("as") {
                    cur.expect = Expect::Alias;
                    return i + 1;
                }
                if t.is("with") && lx.is(i + 1, "ordinality") {
                    return i + 2;
                }
                if t.is("tablesample") {
                    // TABLESAMPLE method (args) [REPEATABLE (seed)]: the method is no call.
                    cur.expect = Expect::Nothing;
                    return i + 2;
                }
                if t.quoted || !NOT_ALIASES.contains(&t.text.to_ascii_lowercase().as_str()) {
                    cur.expect = Expect::AliasDone;
                    return i + 1;
                }
                cur.expect = Expect::Nothing;
            }
            Expect::Alias => {
                cur.expect = Expect::AliasDone;
                return i + 1;
            }
            Expect::AliasDone | Expect::Nothing => cur.expect = Expect::Nothing,
        }
        if !t.quoted {
            let lower = t.text.to_ascii_lowercase();
            match lower.as_str() {
                "from" if !in_func && !self.prev_is(i, &["distinct", "rows"]) => {
                    cur.from_active = true;
                    cur.expect = Expect::Item;
                    return i + 1;
                }
                "join" => {
                    cur.from_active = true;
                    cur.expect = Expect::Item;
                    return i + 1;
                }
                "using" if !lx.kind_is(i + 1, Tk::LParen) => {
                    cur.from_active = true;
                    cur.expect = Expect::Item;
                    return i + 1;
                }
                "into" => return self.into(i),
                "update"
                    if !self.prev_is(i, &["for", "do", "then", "key", "no", "or"])
                        && !lx.is(i + 1, "set") =>
                {
                    let j = if lx.is(i + 1, "only") { i + 2 } else { i + 1 };
                    let (parts, k) = lx.name_at(j);
                    self.out.table(&parts);
                    for m in j..k {
                        self.mark(m);
                    }
                    return k.max(i + 1);
                }
                "table"
                    if i == self.start
                        || lx.kind_is(i - 1, Tk::LParen)
                        || self
                            .prev_is(i, &["union", "intersect", "except", "all", "distinct"]) =>
                {
                    let j = if lx.is(i + 1, "only") { i + 2 } else { i + 1 };
                    let (parts, k) = lx.name_at(j);
                    let cte =
                        parts.len() == 1 && parts.first().is_some_and(|p| self.is_cte_ref(p, j));
                    if !cte {
                        self.out.table(&parts);
                    }
                    return k.max(i + 1);
                }
                "for"
                    if lx
                        .get(i + 1)
                        .is_some_and(|n| n.is_any(&["update", "share", "no", "key"])) =>
                {
                    self.out.locking = true;
                    cur.from_active = false;
                    return i + 1;
                }
                "operator" if lx.kind_is(i + 1, Tk::LParen) => {
                    // OPERATOR(schema.op): only pg_catalog's operators are known.
                    let pg = lx
                        .get(i + 2)
                        .is_some_and(|s| s.kind == Tk::Word && s.folded() == "pg_catalog")
                        && lx.kind_is(i + 3, Tk::Period);
                    if !pg {
                        self.out.odd_operator = true;
                    }
                    self.skip(i + 1);
                    return i + 1;
                }
                w if FROM_ENDS.contains(&w) => {
                    cur.from_active = false;
                    cur.expect = Expect::Nothing;
                    return i + 1;
                }
                _ => {}
            }
        }
        // A (qualified) name: a function call when `(` follows.
        let (parts, j) = lx.name_at(i);
        if lx.kind_is(j, Tk::LParen) {
            if self.is_function_name(&parts, i) {
                self.function(&parts, j);
                *pending_func = Some(j);
            } else if !t.quoted
                && parts.len() == 1
                && SPECIAL_SYNTAX.contains(&t.text.to_ascii_lowercase().as_str())
            {
                *pending_func = Some(j);
            }
        }
        j.max(i + 1)
    }

    fn is_function_name(&self, parts: &[String], i: usize) -> bool {
        if i > self.start && self.lx.kind_is(i - 1, Tk::Cast) {
            return false;
        }
        match (parts, self.lx.get(i)) {
            ([one], Some(t)) if !t.quoted => !NOT_FUNCTIONS.contains(&one.as_str()),
            _ => !parts.is_empty(),
        }
    }

    /// Records a function called with its argument list opening at `open`.
    fn function(&mut self, parts: &[String], open: usize) {
        if parts.is_empty() {
            self.out.uncertain = true;
            return;
        }
        let name = names::render_function(parts);
        if noise::is_set_config(&name) {
            self.out.set_config_seen = true;
            let lx = self.lx;
            let lit = |k: usize| {
                lx.get(k)
                    .filter(|t| t.kind == Tk::Str)
                    .map(|t| t.text.as_str())
            };
            let name_ok = lx.kind_is(open + 2, Tk::Comma);
            let value_end = lx.kind_is(open + 4, Tk::Comma) || lx.kind_is(open + 4, Tk::RParen);
            let ok =
                name_ok && value_end && noise::set_config_call_ok(lit(open + 1), lit(open + 3));
            if !ok {
                self.out.set_config_bad = true;
            }
        }
        self.out.functions.push(name);
    }

    /// `INSERT INTO t`, `MERGE INTO t`, or `SELECT ... INTO [TEMP] [TABLE] t`.
    fn into(&mut self, i: usize) -> usize {
        let lx = self.lx;
        let insert = self.prev_is(i, &["insert", "merge"]);
        let mut j = i + 1;
        if insert && lx.is(j, "only") && self.prev_is(i, &["merge"]) {
            // MERGE INTO ONLY t: the table without its inheritance children.
            self.mark(j);
            j += 1;
        }
        if !insert {
            while lx
                .get(j)
                .is_some_and(|t| t.is_any(&["temp", "temporary", "unlogged", "table"]))
            {
                j += 1;
            }
        }
        let (parts, k) = lx.name_at(j);
        for m in j..k {
            self.mark(m);
        }
        if insert {
            self.out.table(&parts);
            // INSERT INTO t [AS a] (cols): the column list is no call.
            let mut c = k;
            if lx.is(c, "as") {
                self.mark(c + 1);
                c += 2;
            }
            if lx.kind_is(c, Tk::LParen) {
                self.skip(c);
            }
        } else if parts.is_empty() {
            self.out.uncertain = true;
        } else {
            self.out.into_targets.push(Object {
                kind: "TABLE".to_string(),
                name: names::render(&parts),
            });
        }
        k.max(i + 1)
    }
}
