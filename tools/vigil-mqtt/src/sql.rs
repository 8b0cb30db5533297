//! The subset of AWS IoT SQL (version 2016-03-23) that Vigil's rule files use: a parser with
//! errors that point at the column, and an evaluator with IoT Core's semantics for that subset.
//!
//! Supported:
//! - `SELECT` items: `*`, `encode(*, 'base64')`, payload field names (`a` or `a.b`),
//!   `topic()` / `topic(n)`, `timestamp()`, `clientid()`, `floor(expr)`, `isNumber(expr)`, number and string
//!   literals, `+ - * /` and parentheses; each with an optional `AS alias` (required for
//!   anything but a field name).
//! - `FROM '<topic filter>'` with `+` and `#`.
//! - `WHERE` with `=`, `<>`, `AND`, `OR`, `NOT` over the same expressions.
//!
//! Semantics (as IoT Core): a payload that parses as JSON gives field values; a field that is
//! missing is *Undefined* and is left out of the output; arithmetic and functions on Undefined
//! are Undefined; `WHERE` passes only on `true`. A payload that is not JSON has no fields: a
//! rule that references a field (in `SELECT` or `WHERE`) or adds items to `*` fails for it and
//! takes its error action; `SELECT *` alone passes the bytes through, and `encode(*, 'base64')`
//! works for any payload. `Int op Int` is an `Int` (`/` truncates); with a decimal the result is
//! a decimal; a string operand is converted when it reads as a number.

use std::fmt;

use base64::Engine;
use serde_json::{Map, Number, Value};

/// A parse error: what was wrong, where, and what is supported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column}: {message}\n  {sql}\n  {caret:>column$}", caret = "^")]
pub struct SqlError {
    /// 1-based column (character) of the offending token.
    pub column: usize,
    /// What was wrong.
    pub message: String,
    /// The statement.
    pub sql: String,
}

/// One item of the `SELECT` list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`: every field of a JSON payload, or the payload itself.
    Wildcard,
    /// An expression and the output key it is stored under.
    Expr {
        /// The expression.
        expr: Expr,
        /// `AS` alias, or the field's last segment.
        name: String,
    },
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `AND`
    And,
    /// `OR`
    Or,
}

/// The functions of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `topic()` or `topic(n)`.
    Topic,
    /// `timestamp()`: the receive time, Unix ms.
    Timestamp,
    /// `clientid()`: the MQTT client id of the connection that published.
    ClientId,
    /// `floor(x)`.
    Floor,
    /// `isNumber(x)`.
    IsNumber,
    /// `encode(*, 'base64')`.
    EncodeBase64,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A payload field: `a` or `a.b.c`.
    Field(Vec<String>),
    /// A number literal.
    Number(Number),
    /// A string literal.
    Str(String),
    /// `-x`.
    Neg(Box<Expr>),
    /// `NOT x`.
    Not(Box<Expr>),
    /// `l op r`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A function call; `topic(n)` keeps `n` in `args`.
    Call(Function, Vec<Expr>),
}

/// A parsed rule statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The `SELECT` list.
    pub select: Vec<SelectItem>,
    /// The `FROM` topic filter.
    pub from: String,
    /// The `WHERE` condition.
    pub condition: Option<Expr>,
}

/// What a rule produces for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// The rule matched; this is what its actions receive.
    Output(RuleOutput),
    /// The `WHERE` condition was not true: no action, no error.
    Filtered,
    /// The rule failed for this message: IoT Core runs the rule's error action.
    Failed(String),
}

/// A rule's output.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleOutput {
    /// A JSON document (every rule of Vigil's produces one).
    Json(Value),
    /// The raw payload (`SELECT *` on a payload that is not JSON).
    Binary(Vec<u8>),
}

/// One message as the rules engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The topic it was published on (without a Basic Ingest prefix).
    pub topic: &'a str,
    /// The raw payload.
    pub payload: &'a [u8],
    /// `timestamp()`: when it was received, Unix ms.
    pub received_at_ms: i64,
    /// `clientid()`: the client id of the publishing connection, when the broker says it.
    pub client_id: Option<&'a str>,
}

impl Statement {
    /// Parses one statement of the subset (see the module docs).
    ///
    /// Fails with a [`SqlError`] that names the column and the construct that is not
    /// supported, e.g. `column 8: unsupported function 'upper': this bridge supports
    /// clientid, encode, floor, isNumber, timestamp, topic`.
    pub fn parse(sql: &str) -> Result<Statement, SqlError> {
        Parser::new(sql)?.statement()
    }

    /// Whether `topic` matches the `FROM` filter.
    pub fn matches_topic(&self, topic: &str) -> bool {
        topic_matches(&self.from, topic)
    }

    /// Evaluates the rule for one message, as IoT Core would (see the module docs).
    pub fn evaluate(&self, message: &Message<'_>) -> Evaluation {
        let json: Option<Value> = serde_json::from_slice(message.payload).ok();
        if json.is_none() && self.needs_json() {
            return Evaluation::Failed(
                "the payload is not JSON, and the rule references payload fields".to_owned(),
            );
        }
        let ctx = Ctx {
            message,
            json: json.as_ref(),
        };
        if let Some(cond) = &self.condition
            && ctx.eval(cond).truth() != Some(true)
        {
            return Evaluation::Filtered;
        }
        if let [SelectItem::Wildcard] = self.select.as_slice() {
            return Evaluation::Output(match json {
                Some(v) => RuleOutput::Json(v),
                None => RuleOutput::Binary(message.payload.to_vec()),
            });
        }
        let mut out = Map::new();
        for item in &self.select {
            match item {
                SelectItem::Wildcard => match &json {
                    Some(Value::Object(fields)) => {
                        out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())))
                    }
                    _ => {
                        return Evaluation::Failed(
                            "`*` with other items needs a JSON object payload".to_owned(),
                        );
                    }
                },
                SelectItem::Expr { expr, name } => {
                    if let Some(v) = ctx.eval(expr).into_json() {
                        out.insert(name.clone(), v);
                    }
                }
            }
        }
        Evaluation::Output(RuleOutput::Json(Value::Object(out)))
    }

    /// Whether the rule reads the payload as JSON: field references anywhere, or `*` beside
    /// other items.
    fn needs_json(&self) -> bool {
        let star_with_more = self.select.len() > 1 && self.select.contains(&SelectItem::Wildcard);
        star_with_more
            || self.condition.as_ref().is_some_and(Expr::references_field)
            || self.select.iter().any(|i| match i {
                SelectItem::Expr { expr, .. } => expr.references_field(),
                SelectItem::Wildcard => false,
            })
    }
}

impl Expr {
    fn references_field(&self) -> bool {
        match self {
            Expr::Field(_) => true,
            Expr::Number(_) | Expr::Str(_) => false,
            Expr::Neg(e) | Expr::Not(e) => e.references_field(),
            Expr::Binary(_, l, r) => l.references_field() || r.references_field(),
            Expr::Call(_, args) => args.iter().any(Expr::references_field),
        }
    }
}

/// Whether an MQTT topic matches a filter with `+` (one level) and `#` (the rest, including
/// the parent level).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        match (f, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// A value during evaluation: JSON, plus IoT's Undefined.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Undefined,
    Json(Value),
}

enum Num {
    Int(i64),
    Dec(f64),
}

impl Val {
    fn into_json(self) -> Option<Value> {
        match self {
            Val::Undefined => None,
            Val::Json(v) => Some(v),
        }
    }

    fn num(&self) -> Option<Num> {
        match self {
            Val::Json(Value::Number(n)) => number(n),
            Val::Json(Value::String(s)) => {
                let s = s.trim();
                s.parse::<i64>().map(Num::Int).ok().or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(Num::Dec)
                })
            }
            _ => None,
        }
    }

    fn truth(&self) -> Option<bool> {
        match self {
            Val::Json(Value::Bool(b)) => Some(*b),
            Val::Json(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Val::Json(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }
}

fn number(n: &Number) -> Option<Num> {
    n.as_i64()
        .map(Num::Int)
        .or_else(|| n.as_f64().map(Num::Dec))
}

fn int(i: i64) -> Val {
    Val::Json(Value::Number(i.into()))
}

fn dec(f: f64) -> Val {
    Number::from_f64(f).map_or(Val::Undefined, |n| Val::Json(Value::Number(n)))
}

fn boolean(b: bool) -> Val {
    Val::Json(Value::Bool(b))
}

struct Ctx<'a> {
    message: &'a Message<'a>,
    json: Option<&'a Value>,
}

impl Ctx<'_> {
    fn eval(&self, expr: &Expr) -> Val {
        match expr {
            Expr::Field(path) => {
                let mut v = self.json;
                for p in path {
                    v = v.and_then(|v| v.get(p));
                }
                v.map_or(Val::Undefined, |v| Val::Json(v.clone()))
            }
            Expr::Number(n) => Val::Json(Value::Number(n.clone())),
            Expr::Str(s) => Val::Json(Value::String(s.clone())),
            Expr::Neg(e) => match self.eval(e).num() {
                Some(Num::Int(i)) => i.checked_neg().map_or_else(|| dec(-(i as f64)), int),
                Some(Num::Dec(f)) => dec(-f),
                None => Val::Undefined,
            },
            Expr::Not(e) => self.eval(e).truth().map_or(Val::Undefined, |b| boolean(!b)),
            Expr::Binary(op, l, r) => self.binary(*op, self.eval(l), self.eval(r)),
            Expr::Call(f, args) => self.call(*f, args),
        }
    }

    fn binary(&self, op: BinOp, l: Val, r: Val) -> Val {
        match op {
            BinOp::And | BinOp::Or => match (l.truth(), r.truth()) {
                (Some(a), Some(b)) => boolean(if op == BinOp::And { a && b } else { a || b }),
                _ => Val::Undefined,
            },
            BinOp::Eq | BinOp::Ne => {
                if l == Val::Undefined || r == Val::Undefined {
                    return Val::Undefined;
                }
                let equal = match (&l, &r) {
                    (Val::Json(Value::Number(a)), Val::Json(Value::Number(b))) => {
                        a.as_f64() == b.as_f64()
                    }
                    _ => l == r,
                };
                boolean(equal == (op == BinOp::Eq))
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                let (Some(a), Some(b)) = (l.num(), r.num()) else {
                    return Val::Undefined;
                };
                match (a, b) {
                    (Num::Int(a), Num::Int(b)) => {
                        let exact = match op {
                            BinOp::Add => a.checked_add(b),
                            BinOp::Sub => a.checked_sub(b),
                            BinOp::Mul => a.checked_mul(b),
                            _ if b == 0 => return Val::Undefined,
                            _ => a.checked_div(b),
                        };
                        exact.map_or_else(|| arith(op, a as f64, b as f64), int)
                    }
                    (a, b) => arith(op, as_f64(a), as_f64(b)),
                }
            }
        }
    }

    fn call(&self, f: Function, args: &[Expr]) -> Val {
        match f {
            Function::Timestamp => int(self.message.received_at_ms),
            Function::ClientId => self
                .message
                .client_id
                .map_or(Val::Undefined, |c| Val::Json(Value::String(c.to_owned()))),
            Function::Topic => match args.first() {
                None => Val::Json(Value::String(self.message.topic.to_owned())),
                Some(n) => match self.eval(n).num() {
                    Some(Num::Int(n)) if n >= 1 => self
                        .message
                        .topic
                        .split('/')
                        .nth(n as usize - 1)
                        .map_or(Val::Undefined, |s| Val::Json(Value::String(s.to_owned()))),
                    _ => Val::Undefined,
                },
            },
            Function::Floor => match args.first().map(|a| self.eval(a).num()) {
                Some(Some(Num::Int(i))) => int(i),
                Some(Some(Num::Dec(f))) => {
                    let fl = f.floor();
                    if fl >= i64::MIN as f64 && fl <= i64::MAX as f64 {
                        int(fl as i64)
                    } else {
                        dec(fl)
                    }
                }
                _ => Val::Undefined,
            },
            Function::IsNumber => {
                let v = args.first().map_or(Val::Undefined, |a| self.eval(a));
                boolean(matches!(v, Val::Json(Value::Number(_))))
            }
            Function::EncodeBase64 => Val::Json(Value::String(
                base64::engine::general_purpose::STANDARD.encode(self.message.payload),
            )),
        }
    }
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::Dec(f) => f,
    }
}

fn arith(op: BinOp, a: f64, b: f64) -> Val {
    match op {
        BinOp::Add => dec(a + b),
        BinOp::Sub => dec(a - b),
        BinOp::Mul => dec(a * b),
        _ if b == 0.0 => Val::Undefined,
        _ => dec(a / b),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(Number),
    Str(String),
    Sym(&'static str),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Number(n) => write!(f, "`{n}`"),
            Tok::Str(s) => write!(f, "'{s}'"),
            Tok::Sym(s) => write!(f, "`{s}`"),
            Tok::End => f.write_str("the end of the statement"),
        }
    }
}

const SUPPORTED_FUNCTIONS: &str =
    "clientid, encode(*, 'base64'), floor, isNumber, timestamp, topic";

struct Parser {
    sql: String,
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser {
    fn new(sql: &str) -> Result<Parser, SqlError> {
        let chars: Vec<char> = sql.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        let err = |col: usize, message: String| SqlError {
            column: col + 1,
            message,
            sql: sql.to_owned(),
        };
        while i < chars.len() {
            let c = chars[i];
            let start = i;
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            if c.is_ascii_alphabetic() || c == '_' {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push((Tok::Ident(chars[start..i].iter().collect()), start));
            } else if c.is_ascii_digit() {
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = if text.contains('.') {
                    text.parse::<f64>().ok().and_then(Number::from_f64)
                } else {
                    text.parse::<i64>().ok().map(Number::from)
                };
                let n = n.ok_or_else(|| err(start, format!("`{text}` is not a number")))?;
                toks.push((Tok::Number(n), start));
            } else if c == '\'' {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "unterminated string literal".into())),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                toks.push((Tok::Str(s), start));
            } else {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let sym = match two.as_str() {
                    "<>" => Some("<>"),
                    "!=" => Some("!="),
                    "<=" | ">=" => None,
                    _ => None,
                };
                if let Some(s) = sym {
                    toks.push((Tok::Sym(s), start));
                    i += 2;
                    continue;
                }
                let sym = match c {
                    '*' => "*",
                    ',' => ",",
                    '(' => "(",
                    ')' => ")",
                    '+' => "+",
                    '-' => "-",
                    '/' => "/",
                    '=' => "=",
                    '.' => ".",
                    '"' => {
                        return Err(err(
                            start,
                            "double-quoted names are not supported: use a plain field name".into(),
                        ));
                    }
                    '<' | '>' | '%' | '|' | '&' | '[' | ']' | '{' | '}' | ';' | '!' => {
                        return Err(err(
                            start,
                            format!(
                                "operator `{c}` is not supported: this bridge supports = <> + - * / AND OR NOT"
                            ),
                        ));
                    }
                    other => return Err(err(start, format!("unexpected character `{other}`"))),
                };
                toks.push((Tok::Sym(sym), start));
                i += 1;
            }
        }
        toks.push((Tok::End, chars.len()));
        Ok(Parser {
            sql: sql.to_owned(),
            toks,
            pos: 0,
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].0
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].0.clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self, message: impl Into<String>) -> SqlError {
        SqlError {
            column: self.toks[self.pos].1 + 1,
            message: message.into(),
            sql: self.sql.clone(),
        }
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn keyword(&mut self, kw: &str) -> Result<(), SqlError> {
        if self.is_keyword(kw) {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected {kw}, found {}", self.peek())))
        }
    }

    fn sym(&mut self, s: &str) -> Result<(), SqlError> {
        if *self.peek() == Tok::Sym(symbol(s)) {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected `{s}`, found {}", self.peek())))
        }
    }

    fn statement(&mut self) -> Result<Statement, SqlError> {
        self.keyword("SELECT")?;
        let mut select = vec![self.select_item()?];
        while *self.peek() == Tok::Sym(",") {
            self.next();
            select.push(self.select_item()?);
        }
        self.keyword("FROM")?;
        let from = match self.next() {
            Tok::Str(s) => s,
            other => {
                self.pos -= 1;
                return Err(self.error(format!(
                    "expected a quoted topic filter after FROM, found {other}"
                )));
            }
        };
        self.pos -= 1;
        check_filter(&from).map_err(|m| self.error(m))?;
        self.next();
        let condition = if self.is_keyword("WHERE") {
            self.next();
            Some(self.or_expr()?)
        } else {
            None
        };
        if *self.peek() != Tok::End {
            let what = if let Tok::Ident(s) = self.peek() {
                format!("`{s}` clauses are not supported (only SELECT, FROM, WHERE)")
            } else {
                format!("unexpected {} after the statement", self.peek())
            };
            return Err(self.error(what));
        }
        Ok(Statement {
            select,
            from,
            condition,
        })
    }

    fn select_item(&mut self) -> Result<SelectItem, SqlError> {
        if *self.peek() == Tok::Sym("*") {
            self.next();
            return Ok(SelectItem::Wildcard);
        }
        let start = self.pos;
        let expr = self.or_expr()?;
        let name = if self.is_keyword("AS") {
            self.next();
            match self.next() {
                Tok::Ident(s) if !is_reserved(&s) => s,
                other => {
                    self.pos -= 1;
                    return Err(self.error(format!("expected a name after AS, found {other}")));
                }
            }
        } else if let Expr::Field(path) = &expr {
            path.last().cloned().unwrap_or_default()
        } else {
            let here = self.pos;
            self.pos = start;
            let e = self.error("name this expression with `AS <name>`");
            self.pos = here;
            return Err(e);
        };
        Ok(SelectItem::Expr { expr, name })
    }

    fn or_expr(&mut self) -> Result<Expr, SqlError> {
        let mut e = self.and_expr()?;
        while self.is_keyword("OR") {
            self.next();
            e = Expr::Binary(BinOp::Or, Box::new(e), Box::new(self.and_expr()?));
        }
        Ok(e)
    }

    fn and_expr(&mut self) -> Result<Expr, SqlError> {
        let mut e = self.not_expr()?;
        while self.is_keyword("AND") {
            self.next();
            e = Expr::Binary(BinOp::And, Box::new(e), Box::new(self.not_expr()?));
        }
        Ok(e)
    }

    fn not_expr(&mut self) -> Result<Expr, SqlError> {
        if self.is_keyword("NOT") {
            self.next();
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SqlError> {
        let l = self.additive()?;
        let op = match self.peek() {
            Tok::Sym("=") => BinOp::Eq,
            Tok::Sym("<>") | Tok::Sym("!=") => BinOp::Ne,
            _ => return Ok(l),
        };
        self.next();
        Ok(Expr::Binary(op, Box::new(l), Box::new(self.additive()?)))
    }

    fn additive(&mut self) -> Result<Expr, SqlError> {
        let mut e = self.term()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("+") => BinOp::Add,
                Tok::Sym("-") => BinOp::Sub,
                _ => return Ok(e),
            };
            self.next();
            e = Expr::Binary(op, Box::new(e), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Expr, SqlError> {
        let mut e = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("*") => BinOp::Mul,
                Tok::Sym("/") => BinOp::Div,
                _ => return Ok(e),
            };
            self.next();
            e = Expr::Binary(op, Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, SqlError> {
        if *self.peek() == Tok::Sym("-") {
            self.next();
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SqlError> {
        match self.peek().clone() {
            Tok::Number(n) => {
                self.next();
                Ok(Expr::Number(n))
            }
            Tok::Str(s) => {
                self.next();
                Ok(Expr::Str(s))
            }
            Tok::Sym("(") => {
                self.next();
                let e = self.or_expr()?;
                self.sym(")")?;
                Ok(e)
            }
            Tok::Sym("*") => Err(self
                .error("`*` is allowed only as a SELECT item or as the first argument of encode")),
            Tok::Ident(name) if is_reserved(&name) => {
                Err(self.error(format!("expected an expression, found keyword `{name}`")))
            }
            Tok::Ident(name) if *self.peek_at(1) == Tok::Sym("(") => self.call(&name),
            Tok::Ident(name) => {
                self.next();
                let mut path = vec![name];
                while *self.peek() == Tok::Sym(".") {
                    self.next();
                    match self.next() {
                        Tok::Ident(s) => path.push(s),
                        other => {
                            self.pos -= 1;
                            return Err(self
                                .error(format!("expected a field name after `.`, found {other}")));
                        }
                    }
                }
                Ok(Expr::Field(path))
            }
            other => Err(self.error(format!("expected an expression, found {other}"))),
        }
    }

    fn call(&mut self, name: &str) -> Result<Expr, SqlError> {
        let func = match name.to_ascii_lowercase().as_str() {
            "topic" => Function::Topic,
            "timestamp" => Function::Timestamp,
            "clientid" => Function::ClientId,
            "floor" => Function::Floor,
            "isnumber" => Function::IsNumber,
            "encode" => Function::EncodeBase64,
            _ => {
                return Err(self.error(format!(
                    "unsupported function `{name}`: this bridge supports {SUPPORTED_FUNCTIONS}"
                )));
            }
        };
        self.next();
        self.sym("(")?;
        let args_pos = self.pos;
        let mut args = Vec::new();
        if func == Function::EncodeBase64 {
            if *self.peek() != Tok::Sym("*") {
                return Err(self.error("this bridge supports encode only as encode(*, 'base64')"));
            }
            self.next();
            self.sym(",")?;
            match self.peek() {
                Tok::Str(s) if s == "base64" => {
                    self.next();
                }
                _ => return Err(self.error("encode supports only the 'base64' encoding")),
            }
        } else if *self.peek() != Tok::Sym(")") {
            args.push(self.or_expr()?);
            while *self.peek() == Tok::Sym(",") {
                self.next();
                args.push(self.or_expr()?);
            }
        }
        let arity_ok = match func {
            Function::Topic => {
                args.len() <= 1
                    && args
                        .iter()
                        .all(|a| matches!(a, Expr::Number(n) if n.as_u64().is_some_and(|n| n >= 1)))
            }
            Function::Timestamp | Function::ClientId => args.is_empty(),
            Function::Floor | Function::IsNumber => args.len() == 1,
            Function::EncodeBase64 => true,
        };
        if !arity_ok {
            let want = match func {
                Function::Topic => "topic() or topic(n) with a literal n >= 1",
                Function::Timestamp => "timestamp() takes no arguments",
                Function::ClientId => "clientid() takes no arguments",
                _ => "one argument",
            };
            self.pos = args_pos;
            return Err(self.error(format!("wrong arguments for `{name}`: {want}")));
        }
        self.sym(")")?;
        Ok(Expr::Call(func, args))
    }
}

fn is_reserved(s: &str) -> bool {
    ["SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT"]
        .iter()
        .any(|k| s.eq_ignore_ascii_case(k))
}

/// The `&'static str` of a symbol token, for comparisons.
fn symbol(s: &str) -> &'static str {
    ["*", ",", "(", ")", "+", "-", "/", "=", ".", "<>", "!="]
        .into_iter()
        .find(|k| *k == s)
        .unwrap_or("")
}

fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("the topic filter is empty".to_owned());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if (level.contains('+') && *level != "+") || (level.contains('#') && *level != "#") {
            return Err(format!(
                "topic filter '{filter}': `+` and `#` must be a whole level"
            ));
        }
        if *level == "#" && i != levels.len() - 1 {
            return Err(format!(
                "topic filter '{filter}': `#` must be the last level"
            ));
        }
    }
    Ok(())
}
