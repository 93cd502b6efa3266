//! Python pickles of plain data: a guarded reader that executes nothing,
//! and a writer Python 3 reads.
//!
//! Hand-written rather than serde-pickle: its reader has no depth bound (it
//! recurses), and turns every global it does not know into one opaque value
//! (an error, or `None`), losing which value was refused.
//!
//! The reader is a stack machine over an arena: containers are nodes that
//! memo `GET`s and `DUP`s share by index, as Python shares objects, so the
//! parse itself is linear in the input. The tree handed back is built from
//! the arena at `STOP` without recursion, and that copy is where depth (a
//! cycle is infinitely deep) and the size of copied shared values are
//! bounded. Globals (`GLOBAL`, `STACK_GLOBAL`) are only names; calling one
//! (`REDUCE`, `NEWOBJ`, `INST`, `OBJ`) makes an opaque object, which comes
//! out as [`Py::Refused`] with the callable's dotted name.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// A Python value of the kinds a session holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Py {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` within 64 bits.
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `list`.
    List(Vec<Py>),
    /// `tuple`.
    Tuple(Vec<Py>),
    /// `dict`, in insertion order; a repeated `str` key is kept once (first
    /// place, last value), as Python's dict does.
    Dict(Vec<(Py, Py)>),
    /// Something that cannot be carried over: what it is, for a log line
    /// (e.g. "datetime.datetime", "set", "bytes", "an int beyond 64 bits",
    /// "markupsafe.Markup").
    Refused(String),
}

/// Bounds on what [`read()`] accepts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Largest pickle read, in bytes. Also bounds the tree built, where
    /// each copy of a value shared through the memo counts in full: its
    /// pickle by [`write()`] must fit in as many bytes, so what was read
    /// always writes back to a pickle that reads again.
    pub(crate) max_bytes: usize,
    /// Deepest container nesting (the outer dict is depth 1).
    pub(crate) max_depth: usize,
}

impl Default for Limits {
    /// 4 MiB and depth 64: far beyond any real session, small enough that a
    /// hostile value costs little.
    fn default() -> Self {
        Limits {
            max_bytes: 4 << 20,
            max_depth: 64,
        }
    }
}

/// Why a pickle was not read. Messages never quote the pickle's content.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PickleError {
    /// Longer than [`Limits::max_bytes`]; nothing was parsed.
    #[error("pickle larger than {max} bytes ({len} bytes)")]
    TooLarge {
        /// The pickle's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Containers nested deeper than [`Limits::max_depth`] (or a container
    /// holding itself).
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// Shared values copied beyond the [`Limits::max_bytes`] budget (the
    /// tree would take more to write).
    #[error("pickle expands beyond {0} bytes once shared values are copied")]
    TooBig(usize),
    /// An opcode that refers to things outside the pickle (extension
    /// registry, persistent ids, out-of-band buffers).
    #[error("opcode 0x{op:02x} not allowed (byte {pos})")]
    NotAllowed {
        /// The opcode.
        op: u8,
        /// Its offset.
        pos: usize,
    },
    /// A byte that is no pickle opcode.
    #[error("unknown opcode 0x{op:02x} (byte {pos})")]
    Unknown {
        /// The byte.
        op: u8,
        /// Its offset.
        pos: usize,
    },
    /// The input ended inside an opcode or before `STOP`.
    #[error("truncated pickle")]
    Truncated,
    /// Anything else Python's unpickler would reject.
    #[error("malformed pickle: {what} (byte {pos})")]
    Malformed {
        /// What is wrong.
        what: &'static str,
        /// Offset of the opcode.
        pos: usize,
    },
}

impl PickleError {
    /// Puts the offset of the opcode being run into a `Malformed`.
    fn at(self, pos: usize) -> Self {
        match self {
            PickleError::Malformed { what, .. } => PickleError::Malformed { what, pos },
            other => other,
        }
    }
}

fn malformed(what: &'static str, pos: usize) -> PickleError {
    PickleError::Malformed { what, pos }
}

/// A `Malformed` whose offset [`PickleError::at`] fills in.
fn bad<T>(what: &'static str) -> Result<T, PickleError> {
    Err(malformed(what, 0))
}

/// The opcodes, named as in CPython's `pickle.py`.
mod op {
    pub(super) const MARK: u8 = b'(';
    pub(super) const STOP: u8 = b'.';
    pub(super) const POP: u8 = b'0';
    pub(super) const POP_MARK: u8 = b'1';
    pub(super) const DUP: u8 = b'2';
    pub(super) const FLOAT: u8 = b'F';
    pub(super) const INT: u8 = b'I';
    pub(super) const BININT: u8 = b'J';
    pub(super) const BININT1: u8 = b'K';
    pub(super) const LONG: u8 = b'L';
    pub(super) const BININT2: u8 = b'M';
    pub(super) const NONE: u8 = b'N';
    pub(super) const PERSID: u8 = b'P';
    pub(super) const BINPERSID: u8 = b'Q';
    pub(super) const REDUCE: u8 = b'R';
    pub(super) const STRING: u8 = b'S';
    pub(super) const BINSTRING: u8 = b'T';
    pub(super) const SHORT_BINSTRING: u8 = b'U';
    pub(super) const UNICODE: u8 = b'V';
    pub(super) const BINUNICODE: u8 = b'X';
    pub(super) const APPEND: u8 = b'a';
    pub(super) const BUILD: u8 = b'b';
    pub(super) const GLOBAL: u8 = b'c';
    pub(super) const DICT: u8 = b'd';
    pub(super) const EMPTY_DICT: u8 = b'}';
    pub(super) const APPENDS: u8 = b'e';
    pub(super) const GET: u8 = b'g';
    pub(super) const BINGET: u8 = b'h';
    pub(super) const INST: u8 = b'i';
    pub(super) const LONG_BINGET: u8 = b'j';
    pub(super) const LIST: u8 = b'l';
    pub(super) const EMPTY_LIST: u8 = b']';
    pub(super) const OBJ: u8 = b'o';
    pub(super) const PUT: u8 = b'p';
    pub(super) const BINPUT: u8 = b'q';
    pub(super) const LONG_BINPUT: u8 = b'r';
    pub(super) const SETITEM: u8 = b's';
    pub(super) const TUPLE: u8 = b't';
    pub(super) const EMPTY_TUPLE: u8 = b')';
    pub(super) const SETITEMS: u8 = b'u';
    pub(super) const BINFLOAT: u8 = b'G';
    // Protocol 2.
    pub(super) const PROTO: u8 = 0x80;
    pub(super) const NEWOBJ: u8 = 0x81;
    pub(super) const EXT1: u8 = 0x82;
    pub(super) const EXT2: u8 = 0x83;
    pub(super) const EXT4: u8 = 0x84;
    pub(super) const TUPLE1: u8 = 0x85;
    pub(super) const TUPLE2: u8 = 0x86;
    pub(super) const TUPLE3: u8 = 0x87;
    pub(super) const NEWTRUE: u8 = 0x88;
    pub(super) const NEWFALSE: u8 = 0x89;
    pub(super) const LONG1: u8 = 0x8a;
    pub(super) const LONG4: u8 = 0x8b;
    // Protocol 3.
    pub(super) const BINBYTES: u8 = b'B';
    pub(super) const SHORT_BINBYTES: u8 = b'C';
    // Protocol 4.
    pub(super) const SHORT_BINUNICODE: u8 = 0x8c;
    pub(super) const BINUNICODE8: u8 = 0x8d;
    pub(super) const BINBYTES8: u8 = 0x8e;
    pub(super) const EMPTY_SET: u8 = 0x8f;
    pub(super) const ADDITEMS: u8 = 0x90;
    pub(super) const FROZENSET: u8 = 0x91;
    pub(super) const NEWOBJ_EX: u8 = 0x92;
    pub(super) const STACK_GLOBAL: u8 = 0x93;
    pub(super) const MEMOIZE: u8 = 0x94;
    pub(super) const FRAME: u8 = 0x95;
    // Protocol 5.
    pub(super) const BYTEARRAY8: u8 = 0x96;
    pub(super) const NEXT_BUFFER: u8 = 0x97;
    pub(super) const READONLY_BUFFER: u8 = 0x98;
}

/// The highest protocol Python 3.11 writes (and so reads).
const HIGHEST_PROTOCOL: u8 = 5;

/// Reads a pickle of plain data, executing nothing.
///
/// Classes and functions the pickle names are never looked up: an object
/// made from one is a [`Py::Refused`] with its dotted name, in place, so the
/// caller can drop just that session key.
///
/// # Errors
///
/// A pickle over the limits, with an opcode outside plain data (extension
/// registry, persistent ids, out-of-band buffers), or that Python's
/// unpickler would reject: see [`PickleError`].
pub(crate) fn read(bytes: &[u8], limits: &Limits) -> Result<Py, PickleError> {
    if bytes.len() > limits.max_bytes {
        return Err(PickleError::TooLarge {
            len: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let mut input = Input {
        bytes,
        pos: 0,
        frame_end: 0,
    };
    let mut machine = Machine::new();
    loop {
        let pos = input.pos;
        let opcode = input.byte()?;
        if opcode == op::STOP {
            break;
        }
        machine
            .step(opcode, pos, &mut input)
            .map_err(|e| e.at(pos))?;
    }
    let stop = input.pos.saturating_sub(1);
    if input.pos != bytes.len() {
        return Err(malformed("bytes after STOP", stop));
    }
    let root = match machine.stack.as_slice() {
        [root] if machine.marks.is_empty() => *root,
        _ => return Err(malformed("STOP without exactly one value", stop)),
    };
    Builder {
        nodes: &machine.nodes,
        spent: 0,
        budget: limits.max_bytes,
        max_depth: limits.max_depth,
    }
    .build(root)
}

/// The input and the read position.
struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the last `FRAME` ends (0 before any).
    frame_end: usize,
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).ok_or(PickleError::Truncated)?;
        // As pickle.py checks (Python never writes it): no read straddles a frame's end.
        if self.pos < self.frame_end && end > self.frame_end {
            return bad("an opcode across the end of its frame");
        }
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(PickleError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// `n` bytes for a length the pickle gave (which may exceed `usize`).
    fn take_len(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        self.take(usize::try_from(n).map_err(|_| PickleError::Truncated)?)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A 4-byte signed length (`BINSTRING`, `LONG4`): negative is malformed.
    fn i32_len(&mut self) -> Result<u64, PickleError> {
        match u64::try_from(i32::from_le_bytes(self.array()?)) {
            Ok(n) => Ok(n),
            Err(_) => bad("negative length"),
        }
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// The text up to the next `\n` (consumed, not returned).
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        let line = self.take(len)?;
        self.pos += 1;
        Ok(line)
    }

    /// A line as UTF-8 (module and class names).
    fn name_line(&mut self) -> Result<&'a str, PickleError> {
        match std::str::from_utf8(self.line()?) {
            Ok(s) => Ok(s),
            Err(_) => bad("a name that is not UTF-8"),
        }
    }
}

/// Index of a node in the arena.
type Id = usize;

/// A Python object while the pickle runs. Containers hold ids, so the memo
/// shares them and later `APPEND`s reach every reference, as in Python.
enum Node {
    /// A value with no parts.
    Leaf(Py),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    /// Keys and values alternating.
    Dict(Vec<Id>),
    /// A class or function the pickle named, by the ids of two `str`
    /// leaves: never resolved, and no name is built before the copy.
    Global {
        module: Id,
        name: Id,
    },
    /// An object with a name of ours: "set", "frozenset", "bytes".
    Named(&'static str),
    /// An object made by calling a global: the id of the `Global` or
    /// `Named` it is refused as (never another `Object`).
    Object(Id),
}

impl Node {
    /// A global or an object made from one: what a call, `BUILD`, or an
    /// item added to it leaves alone.
    fn is_opaque(&self) -> bool {
        matches!(self, Node::Global { .. } | Node::Named(_) | Node::Object(_))
    }
}

/// The arena ids of the shared leaves (a pickle of many `None`s costs no node each).
const NONE_ID: Id = 0;
const TRUE_ID: Id = 1;
const FALSE_ID: Id = 2;

/// The unpickler's state, as in CPython: the stack, the stack lengths at
/// each open MARK, and the memo.
struct Machine {
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

impl Machine {
    fn new() -> Self {
        Machine {
            nodes: vec![
                Node::Leaf(Py::None),
                Node::Leaf(Py::Bool(true)),
                Node::Leaf(Py::Bool(false)),
            ],
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    /// Runs one opcode (not `STOP`) that started at `pos`.
    fn step(&mut self, opcode: u8, pos: usize, input: &mut Input<'_>) -> Result<(), PickleError> {
        match opcode {
            op::PROTO => {
                if input.byte()? > HIGHEST_PROTOCOL {
                    return bad("unsupported protocol");
                }
            }
            op::FRAME => {
                // Frames only help a streaming reader; the whole pickle is
                // here. Checked as pickle.py checks them.
                if pos < input.frame_end {
                    return bad("a FRAME inside a frame");
                }
                let len = input.u64()?;
                let rest = input.bytes.len().saturating_sub(input.pos);
                match usize::try_from(len) {
                    Ok(len) if len <= rest => input.frame_end = input.pos + len,
                    _ => return Err(PickleError::Truncated),
                }
            }
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                // CPython pops an open MARK when nothing is above it.
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?;
                self.stack.push(top);
            }

            op::NONE => self.stack.push(NONE_ID),
            op::NEWTRUE => self.stack.push(TRUE_ID),
            op::NEWFALSE => self.stack.push(FALSE_ID),
            op::INT => match input.line()? {
                b"01" => self.stack.push(TRUE_ID),
                b"00" => self.stack.push(FALSE_ID),
                line => self.leaf(int_text(line)?),
            },
            op::BININT => self.leaf(Py::Int(i32::from_le_bytes(input.array()?).into())),
            op::BININT1 => self.leaf(Py::Int(input.byte()?.into())),
            op::BININT2 => self.leaf(Py::Int(u16::from_le_bytes(input.array()?).into())),
            op::LONG => {
                let line = input.line()?;
                self.leaf(int_text(line.strip_suffix(b"L").unwrap_or(line))?);
            }
            op::LONG1 => {
                let n = input.byte()?;
                self.leaf(int_le(input.take(n.into())?));
            }
            op::LONG4 => {
                let n = input.i32_len()?;
                self.leaf(int_le(input.take_len(n)?));
            }
            op::FLOAT => {
                let text = std::str::from_utf8(input.line()?).unwrap_or_default();
                match text.trim().parse::<f64>() {
                    Ok(f) => self.leaf(Py::Float(f)),
                    Err(_) => return bad("a FLOAT that is no number"),
                }
            }
            op::BINFLOAT => self.leaf(Py::Float(f64::from_be_bytes(input.array()?))),

            // Python 2 `str`: text when it is UTF-8.
            op::STRING => {
                let line = input.line()?;
                let quoted = match line {
                    [b'\'', inner @ .., b'\''] | [b'"', inner @ .., b'"'] => inner,
                    _ => return bad("a STRING that is not quoted"),
                };
                self.leaf(py2_str(escape_decode(quoted)?));
            }
            op::BINSTRING => {
                let n = input.i32_len()?;
                self.leaf(py2_str(input.take_len(n)?.to_vec()));
            }
            op::SHORT_BINSTRING => {
                let n = input.byte()?;
                self.leaf(py2_str(input.take(n.into())?.to_vec()));
            }
            op::UNICODE => {
                let text = raw_unicode_escape(input.line()?)?;
                self.leaf(text);
            }
            op::BINUNICODE => {
                let n = input.u32()?;
                self.leaf(utf8_str(input.take_len(n.into())?)?);
            }
            op::SHORT_BINUNICODE => {
                let n = input.byte()?;
                self.leaf(utf8_str(input.take(n.into())?)?);
            }
            op::BINUNICODE8 => {
                let n = input.u64()?;
                self.leaf(utf8_str(input.take_len(n)?)?);
            }
            op::BINBYTES | op::SHORT_BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = match opcode {
                    op::BINBYTES => input.u32()?.into(),
                    op::SHORT_BINBYTES => input.byte()?.into(),
                    _ => input.u64()?,
                };
                input.take_len(n)?;
                self.node(Node::Named("bytes"));
            }

            op::EMPTY_LIST => self.node(Node::List(Vec::new())),
            op::EMPTY_TUPLE => self.node(Node::Tuple(Vec::new())),
            op::EMPTY_DICT => self.node(Node::Dict(Vec::new())),
            op::EMPTY_SET => self.node(Node::Named("set")),
            op::LIST => {
                let items = self.pop_mark()?;
                self.node(Node::List(items));
            }
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.node(Node::Tuple(items));
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(opcode - op::TUPLE1) + 1;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.node(Node::Tuple(items));
            }
            op::DICT => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return bad("odd number of items for DICT");
                }
                self.node(Node::Dict(items));
            }
            op::FROZENSET => {
                self.pop_mark()?;
                self.node(Node::Named("frozenset"));
            }
            op::APPEND => {
                let item = self.pop()?;
                self.add(Add::List, vec![item])?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                self.add(Add::List, items)?;
            }
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.add(Add::Dict, vec![key, value])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return bad("odd number of items for SETITEMS");
                }
                self.add(Add::Dict, items)?;
            }
            op::ADDITEMS => {
                let items = self.pop_mark()?;
                self.add(Add::Set, items)?;
            }

            op::PUT => {
                let key = memo_key(input.line()?)?;
                self.put(key)?;
            }
            op::BINPUT => {
                let key = input.byte()?.into();
                self.put(key)?;
            }
            op::LONG_BINPUT => {
                let key = input.u32()?.into();
                self.put(key)?;
            }
            op::MEMOIZE => {
                let key = u64::try_from(self.memo.len()).unwrap_or(u64::MAX);
                self.put(key)?;
            }
            op::GET => {
                let key = memo_key(input.line()?)?;
                self.get(key)?;
            }
            op::BINGET => {
                let key = input.byte()?.into();
                self.get(key)?;
            }
            op::LONG_BINGET => {
                let key = input.u32()?.into();
                self.get(key)?;
            }

            // Names and calls, kept symbolic.
            op::GLOBAL => {
                let global = self.text_global(input)?;
                self.stack.push(global);
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (self.nodes.get(module), self.nodes.get(name)) {
                    (Some(Node::Leaf(Py::Str(_))), Some(Node::Leaf(Py::Str(_)))) => {
                        self.node(Node::Global { module, name });
                    }
                    _ => return bad("STACK_GLOBAL requires str"),
                }
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let made = self.call(callable, Some(args))?;
                self.node(made);
            }
            op::NEWOBJ | op::NEWOBJ_EX => {
                if opcode == op::NEWOBJ_EX {
                    self.pop()?; // kwargs
                }
                self.pop()?; // args
                let class = self.pop()?;
                let made = self.call(class, None)?;
                self.node(made);
            }
            op::INST => {
                let class = self.text_global(input)?;
                self.pop_mark()?;
                self.node(Node::Object(class));
            }
            op::OBJ => {
                let items = self.pop_mark()?;
                let Some(&class) = items.first() else {
                    return bad("OBJ without a class");
                };
                let made = self.call(class, None)?;
                self.node(made);
            }
            op::BUILD => {
                self.pop()?; // the state, dropped with the object
                let object = self.top()?;
                if !self.nodes.get(object).is_some_and(Node::is_opaque) {
                    return bad("BUILD on a value that is not an object");
                }
            }

            op::EXT1
            | op::EXT2
            | op::EXT4
            | op::PERSID
            | op::BINPERSID
            | op::NEXT_BUFFER
            | op::READONLY_BUFFER => return Err(PickleError::NotAllowed { op: opcode, pos }),
            _ => return Err(PickleError::Unknown { op: opcode, pos }),
        }
        Ok(())
    }

    fn node(&mut self, node: Node) {
        self.stack.push(self.nodes.len());
        self.nodes.push(node);
    }

    fn leaf(&mut self, value: Py) {
        self.node(Node::Leaf(value));
    }

    /// The `Global` of a text `module\nname\n` (`GLOBAL`, `INST`), off
    /// the stack.
    fn text_global(&mut self, input: &mut Input<'_>) -> Result<Id, PickleError> {
        let module = input.name_line()?.to_owned();
        let name = input.name_line()?.to_owned();
        let module_id = self.nodes.len();
        self.nodes.push(Node::Leaf(Py::Str(module)));
        self.nodes.push(Node::Leaf(Py::Str(name)));
        self.nodes.push(Node::Global {
            module: module_id,
            name: module_id + 1,
        });
        Ok(module_id + 2)
    }

    /// Where the stack above the innermost MARK starts.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn top(&self) -> Result<Id, PickleError> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.fence() => Ok(id),
            _ => bad("stack underflow"),
        }
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let id = self.top()?;
        self.stack.pop();
        Ok(id)
    }

    /// The items above the innermost MARK, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        match self.marks.pop() {
            Some(mark) if mark <= self.stack.len() => Ok(self.stack.split_off(mark)),
            _ => bad("no MARK"),
        }
    }

    /// Adds items to the container on top of the stack; an opaque object
    /// (a set, or a list or dict subclass) swallows them.
    fn add(&mut self, kind: Add, items: Vec<Id>) -> Result<(), PickleError> {
        let target = self.top()?;
        match (kind, self.nodes.get_mut(target)) {
            (Add::List, Some(Node::List(have))) | (Add::Dict, Some(Node::Dict(have))) => {
                have.extend(items);
                Ok(())
            }
            (_, Some(node)) if node.is_opaque() => Ok(()),
            (Add::List, _) => bad("APPEND to a value that is not a list"),
            (Add::Dict, _) => bad("SETITEM on a value that is not a dict"),
            (Add::Set, _) => bad("ADDITEMS to a value that is not a set"),
        }
    }

    fn put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(id);
                Ok(())
            }
            None => bad("memo key not found"),
        }
    }

    /// What calling `callable` makes: an object refused under the
    /// callable's name, except for the few helpers that stand for another
    /// class.
    fn call(&self, callable: Id, args: Option<Id>) -> Result<Node, PickleError> {
        let class = match self.nodes.get(callable) {
            Some(Node::Object(class)) => *class,
            Some(Node::Global { .. } | Node::Named(_)) => callable,
            _ => return bad("a call of a value that is not a class"),
        };
        let Some(Node::Global { module, name }) = self.nodes.get(class) else {
            return Ok(Node::Object(class));
        };
        match (self.text(*module), self.text(*name)) {
            // Protocols 0–2 write bytes as `_codecs.encode(str, 'latin1')`.
            ("_codecs", "encode") => Ok(Node::Named("bytes")),
            // `copyreg._reconstructor(cls, base, state)` and friends make a `cls`.
            ("copyreg" | "copy_reg", "_reconstructor" | "__newobj__" | "__newobj_ex__") => {
                let first = match args.and_then(|a| self.nodes.get(a)) {
                    Some(Node::Tuple(items) | Node::List(items)) => items.first().copied(),
                    _ => None,
                };
                match first {
                    Some(first) if self.nodes.get(first).is_some_and(Node::is_opaque) => {
                        self.call(first, None)
                    }
                    _ => Ok(Node::Object(class)),
                }
            }
            _ => Ok(Node::Object(class)),
        }
    }

    /// The text of a `str` leaf ("" for anything else).
    fn text(&self, id: Id) -> &str {
        match self.nodes.get(id) {
            Some(Node::Leaf(Py::Str(s))) => s,
            _ => "",
        }
    }
}

/// What an adding opcode expects on the stack.
#[derive(Clone, Copy)]
enum Add {
    List,
    Dict,
    Set,
}

/// Python 2's module names (protocols 0–2 write them) as Python 3 reads
/// them.
fn py3_module(module: &str) -> &str {
    match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        other => other,
    }
}

/// A text memo key (`PUT`, `GET`).
fn memo_key(line: &[u8]) -> Result<u64, PickleError> {
    match std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()) {
        Some(key) => Ok(key),
        None => bad("a memo key that is not a number"),
    }
}

/// A decimal `INT` or `LONG` text. A leading zero is refused: CPython
/// reads `I0122` as octal (`strtol`) but `L0122` not at all, and never
/// writes either.
fn int_text(line: &[u8]) -> Result<Py, PickleError> {
    let text = std::str::from_utf8(line).unwrap_or_default().trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return bad("an INT that is no number");
    }
    if digits.len() > 1 && digits.starts_with('0') && digits.bytes().any(|b| b != b'0') {
        return bad("an INT with a leading zero");
    }
    Ok(match text.parse::<i64>() {
        Ok(n) => Py::Int(n),
        Err(_) => Py::Refused("an int beyond 64 bits".into()),
    })
}

/// A little-endian two's-complement integer (`LONG1`, `LONG4`).
fn int_le(bytes: &[u8]) -> Py {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0 };
    let (low, high) = bytes.split_at(bytes.len().min(8));
    // Beyond 8 bytes, only sign extension fits, and byte 7 must carry the sign.
    let fits = high.iter().all(|&b| b == fill)
        && (high.is_empty() || low.last().is_some_and(|&b| (b & 0x80 != 0) == negative));
    if !fits {
        return Py::Refused("an int beyond 64 bits".into());
    }
    let mut buf = [fill; 8];
    for (to, from) in buf.iter_mut().zip(low) {
        *to = *from;
    }
    Py::Int(i64::from_le_bytes(buf))
}

/// A Python 2 `str`: text if it is UTF-8, else bytes.
fn py2_str(bytes: Vec<u8>) -> Py {
    match String::from_utf8(bytes) {
        Ok(s) => Py::Str(s),
        Err(_) => Py::Refused("bytes".into()),
    }
}

/// A Python 3 `str` from its UTF-8. Python writes lone surrogates
/// (`'\ud800'`) with `surrogatepass`; Rust strings cannot hold them.
fn utf8_str(bytes: &[u8]) -> Result<Py, PickleError> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(Py::Str(s.to_owned()));
    }
    let mut rest = bytes;
    while let Err(e) = std::str::from_utf8(rest) {
        let after = rest.get(e.valid_up_to()..).unwrap_or_default();
        match after {
            [0xed, 0xa0..=0xbf, 0x80..=0xbf, tail @ ..] => rest = tail,
            _ => return bad("a str that is not UTF-8"),
        }
    }
    Ok(lone_surrogates())
}

fn lone_surrogates() -> Py {
    Py::Refused("a str with lone surrogates".into())
}

/// Python's `codecs.escape_decode`: the escapes of a bytes literal.
fn escape_decode(text: &[u8]) -> Result<Vec<u8>, PickleError> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(e) = bytes.next() else {
            return bad("a trailing \\ in a STRING");
        };
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match bytes.peek() {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            bytes.next();
                        }
                        _ => break,
                    }
                }
                // Python keeps the low byte of `\777`.
                out.push(value.to_le_bytes()[0]);
            }
            b'x' => {
                let hi = bytes.next().and_then(hex);
                let lo = bytes.next().and_then(hex);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi * 16 + lo),
                    _ => return bad("an invalid \\x escape in a STRING"),
                }
            }
            other => out.extend([b'\\', other]),
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Python's `raw-unicode-escape` decoding (the `UNICODE` opcode): bytes are
/// Latin-1 code points, except `\uXXXX` and `\UXXXXXXXX` after an odd
/// number of backslashes.
fn raw_unicode_escape(line: &[u8]) -> Result<Py, PickleError> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while let Some(&b) = line.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(char::from(b));
            continue;
        }
        let mut backslashes = 1;
        while line.get(i) == Some(&b'\\') {
            backslashes += 1;
            i += 1;
        }
        let digits = match line.get(i) {
            Some(b'u') if backslashes % 2 == 1 => 4,
            Some(b'U') if backslashes % 2 == 1 => 8,
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                continue;
            }
        };
        // The last backslash starts the escape.
        out.extend(std::iter::repeat_n('\\', backslashes - 1));
        let hex_digits = line
            .get(i + 1..i + 1 + digits)
            .ok_or(malformed("a truncated \\u escape", 0))?;
        let mut code = 0u32;
        for &d in hex_digits {
            match hex(d) {
                Some(v) => code = code * 16 + u32::from(v),
                None => return bad("a truncated \\u escape"),
            }
        }
        i += 1 + digits;
        match char::from_u32(code) {
            Some(c) => out.push(c),
            None if (0xd800..=0xdfff).contains(&code) => return Ok(lone_surrogates()),
            None => return bad("a \\U escape out of range"),
        }
    }
    Ok(Py::Str(out))
}

/// Copies the arena's tree for the root into a [`Py`], without recursion,
/// bounding its depth and its size.
///
/// The size charged is what [`write()`] spends on the tree (a refused name
/// counts too), so whatever is read writes back to a pickle of at most
/// `max_bytes` that reads again. Each item is prepaid its least cost (one
/// byte) when its container opens, before the container's items are
/// allocated, and the rest when it is copied.
struct Builder<'a> {
    nodes: &'a [Node],
    spent: usize,
    budget: usize,
    max_depth: usize,
}

/// A container whose items are being copied.
struct Open<'a> {
    node: &'a Node,
    items: &'a [Id],
    next: usize,
    done: Vec<Py>,
}

/// A copied value, or a container still to copy.
enum Started<'a> {
    Done(Py),
    Open(Open<'a>),
}

impl<'a> Builder<'a> {
    fn build(mut self, root: Id) -> Result<Py, PickleError> {
        // PROTO 2 (two bytes), STOP, and the root's byte no container prepaid.
        self.charge(4)?;
        let mut open = match self.start(root, 1)? {
            Started::Done(value) => return Ok(value),
            Started::Open(first) => vec![first],
        };
        loop {
            let depth = open.len() + 1;
            let Some(top) = open.last_mut() else { break };
            if let Some(&item) = top.items.get(top.next) {
                top.next += 1;
                match self.start(item, depth)? {
                    Started::Done(value) => top.done.push(value),
                    Started::Open(inner) => open.push(inner),
                }
                continue;
            }
            let Some(finished) = open.pop() else { break };
            let value = match finished.node {
                Node::List(_) => Py::List(finished.done),
                Node::Tuple(_) => Py::Tuple(finished.done),
                _ => dict(finished.done),
            };
            match open.last_mut() {
                Some(parent) => parent.done.push(value),
                None => return Ok(value),
            }
        }
        bad("empty build")
    }

    /// Copies a leaf, or opens a container at `depth`; one byte of its
    /// cost was prepaid.
    fn start(&mut self, id: Id, depth: usize) -> Result<Started<'a>, PickleError> {
        let node = self
            .nodes
            .get(id)
            .ok_or(malformed("a dangling reference", 0))?;
        self.charge(self.own_cost(node).saturating_sub(1))?;
        let items = match node {
            Node::Leaf(value) => return Ok(Started::Done(value.clone())),
            Node::List(items) | Node::Tuple(items) | Node::Dict(items) => items,
            Node::Global { .. } | Node::Named(_) | Node::Object(_) => {
                let (module, name) = self.name(node);
                let what = match module {
                    Some(module) => format!("{module}.{name}"),
                    None => name.to_owned(),
                };
                return Ok(Started::Done(Py::Refused(what)));
            }
        };
        if depth > self.max_depth {
            return Err(PickleError::TooDeep(self.max_depth));
        }
        self.charge(items.len())?;
        Ok(Started::Open(Open {
            node,
            items,
            next: 0,
            done: Vec::with_capacity(items.len()),
        }))
    }

    /// The name an opaque node is refused as: module (Python 3's) and name.
    fn name(&self, node: &'a Node) -> (Option<&'a str>, &'a str) {
        let node = match node {
            Node::Object(class) => self.nodes.get(*class).unwrap_or(node),
            other => other,
        };
        let text = |id: &Id| match self.nodes.get(*id) {
            Some(Node::Leaf(Py::Str(s))) => s.as_str(),
            _ => "",
        };
        match node {
            Node::Global { module, name } => (Some(py3_module(text(module))), text(name)),
            Node::Named(what) => (None, what),
            _ => (None, "an object"),
        }
    }

    /// The bytes [`write()`] spends on a node itself, its items aside (at
    /// least one). A refused value, written as `None`, is charged its name
    /// as well.
    fn own_cost(&self, node: &'a Node) -> usize {
        match node {
            Node::Leaf(Py::Int(n)) => int_cost(*n),
            Node::Leaf(Py::Float(_)) => 9,
            Node::Leaf(Py::Str(s)) => str_header(s.len()) + s.len(),
            Node::Leaf(Py::Refused(what)) => 1 + what.len(),
            Node::Leaf(_) => 1,
            Node::Global { .. } | Node::Named(_) | Node::Object(_) => match self.name(node) {
                (Some(module), name) => 2 + module.len() + name.len(),
                (None, name) => 1 + name.len(),
            },
            // EMPTY_LIST / EMPTY_DICT, and MARK … APPENDS / SETITEMS.
            Node::List(items) | Node::Dict(items) => {
                if items.is_empty() {
                    1
                } else {
                    3
                }
            }
            // EMPTY_TUPLE or TUPLE1–3; MARK … TUPLE.
            Node::Tuple(items) => {
                if items.len() <= 3 {
                    1
                } else {
                    2
                }
            }
        }
    }

    fn charge(&mut self, cost: usize) -> Result<(), PickleError> {
        self.spent = self.spent.saturating_add(cost);
        if self.spent > self.budget {
            return Err(PickleError::TooBig(self.budget));
        }
        Ok(())
    }
}

/// The bytes [`write_int`] spends on `n`.
fn int_cost(n: i64) -> usize {
    if u8::try_from(n).is_ok() {
        2
    } else if u16::try_from(n).is_ok() {
        3
    } else if i32::try_from(n).is_ok() {
        5
    } else {
        2 + long_len(n)
    }
}

/// The opcode and length bytes before a string of `len` bytes.
fn str_header(len: usize) -> usize {
    if u32::try_from(len).is_ok() {
        5
    } else {
        9
    }
}

/// A dict from alternating keys and values; a repeated `str` key keeps its
/// first place and its last value, as Python's dict does.
fn dict(items: Vec<Py>) -> Py {
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        pairs.push((k, v));
    }
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut repeats = Vec::new();
    for (i, (key, _)) in pairs.iter().enumerate() {
        if let Py::Str(key) = key {
            match first.entry(key.as_str()) {
                Entry::Occupied(at) => repeats.push((i, *at.get())),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
    }
    drop(first);
    if repeats.is_empty() {
        return Py::Dict(pairs);
    }
    let mut keep = vec![true; pairs.len()];
    for (from, to) in repeats {
        let value = match pairs.get_mut(from) {
            Some((_, v)) => std::mem::replace(v, Py::None),
            None => continue,
        };
        if let Some((_, v)) = pairs.get_mut(to) {
            *v = value;
        }
        if let Some(k) = keep.get_mut(from) {
            *k = false;
        }
    }
    let mut keep = keep.into_iter();
    pairs.retain(|_| keep.next().unwrap_or(true));
    Py::Dict(pairs)
}

/// Pickles `value` in protocol 2, which every Python 3 (and 2) reads back
/// to the same value: `Str` → `str`, `Tuple` → `tuple`, `Dict` → `dict`.
///
/// `Py::Refused` is never passed (it is written as `None`). A dict key that
/// is a list or dict would make a pickle Python refuses; [`Py::from_json`]
/// never makes one.
pub(crate) fn write(value: &Py) -> Vec<u8> {
    /// Work left: a value to write, or the opcode that closes a container.
    enum Task<'a> {
        Value(&'a Py),
        Close(u8),
    }
    let mut out = vec![op::PROTO, 2];
    // Explicit stack: a deep tree costs heap, not call stack.
    let mut tasks = vec![Task::Value(value)];
    while let Some(task) = tasks.pop() {
        let value = match task {
            Task::Close(opcode) => {
                out.push(opcode);
                continue;
            }
            Task::Value(value) => value,
        };
        match value {
            Py::None => out.push(op::NONE),
            Py::Bool(true) => out.push(op::NEWTRUE),
            Py::Bool(false) => out.push(op::NEWFALSE),
            Py::Int(n) => write_int(&mut out, *n),
            Py::Float(f) => {
                out.push(op::BINFLOAT);
                out.extend(f.to_be_bytes());
            }
            Py::Str(s) => {
                match u32::try_from(s.len()) {
                    Ok(len) => {
                        out.push(op::BINUNICODE);
                        out.extend(len.to_le_bytes());
                    }
                    Err(_) => {
                        // Over 4 GiB: Python 3.4+ reads this protocol 4 opcode anyway.
                        out.push(op::BINUNICODE8);
                        out.extend((s.len() as u64).to_le_bytes());
                    }
                }
                out.extend(s.as_bytes());
            }
            Py::List(items) => {
                out.push(op::EMPTY_LIST);
                if !items.is_empty() {
                    out.push(op::MARK);
                    tasks.push(Task::Close(op::APPENDS));
                    tasks.extend(items.iter().rev().map(Task::Value));
                }
            }
            Py::Tuple(items) => {
                let close = match items.len() {
                    0 => op::EMPTY_TUPLE,
                    1 => op::TUPLE1,
                    2 => op::TUPLE2,
                    3 => op::TUPLE3,
                    _ => {
                        out.push(op::MARK);
                        op::TUPLE
                    }
                };
                tasks.push(Task::Close(close));
                tasks.extend(items.iter().rev().map(Task::Value));
            }
            Py::Dict(pairs) => {
                out.push(op::EMPTY_DICT);
                if !pairs.is_empty() {
                    out.push(op::MARK);
                    tasks.push(Task::Close(op::SETITEMS));
                    for (k, v) in pairs.iter().rev() {
                        tasks.push(Task::Value(v));
                        tasks.push(Task::Value(k));
                    }
                }
            }
            Py::Refused(_) => {
                debug_assert!(false, "pickle::write given a refused value");
                out.push(op::NONE);
            }
        }
    }
    out.push(op::STOP);
    out
}

/// An int in the shortest opcode, as Python's pickler picks it.
fn write_int(out: &mut Vec<u8>, n: i64) {
    if let Ok(b) = u8::try_from(n) {
        out.extend([op::BININT1, b]);
    } else if let Ok(w) = u16::try_from(n) {
        out.push(op::BININT2);
        out.extend(w.to_le_bytes());
    } else if let Ok(i) = i32::try_from(n) {
        out.push(op::BININT);
        out.extend(i.to_le_bytes());
    } else {
        let len = long_len(n);
        let bytes = n.to_le_bytes();
        out.extend([op::LONG1, len as u8]);
        out.extend(bytes.get(..len).unwrap_or(&bytes));
    }
}

/// The shortest two's complement of `n` in bytes (`LONG1`): high bytes
/// that only repeat the sign are dropped.
fn long_len(n: i64) -> usize {
    let bytes = n.to_le_bytes();
    let mut len = bytes.len();
    // Stops at one byte: `below` is then out of range.
    while let (Some(&last), Some(&below)) = (bytes.get(len - 1), bytes.get(len.wrapping_sub(2))) {
        let redundant = (last == 0 && below & 0x80 == 0) || (last == 0xff && below & 0x80 != 0);
        if !redundant {
            break;
        }
        len -= 1;
    }
    len
}

impl Py {
    /// JSON for a value that round-trips (tuples become arrays); `Err(what)`
    /// names the first part that does not: a [`Py::Refused`] (its text), a
    /// dict key that is not a `str`, or a NaN or infinite float.
    ///
    /// Recursive: depth is bounded by [`Limits::max_depth`] when the value
    /// came from [`read()`].
    pub(crate) fn to_json(&self) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        Ok(match self {
            Py::None => Value::Null,
            Py::Bool(b) => Value::Bool(*b),
            Py::Int(n) => Value::from(*n),
            Py::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Value::Number(n),
                None => return Err("a float that is NaN or infinite".to_owned()),
            },
            Py::Str(s) => Value::String(s.clone()),
            Py::List(items) | Py::Tuple(items) => {
                Value::Array(items.iter().map(Py::to_json).collect::<Result<_, _>>()?)
            }
            Py::Dict(pairs) => {
                let mut map = serde_json::Map::new();
                for (key, value) in pairs {
                    let Py::Str(key) = key else {
                        return Err("a dict key that is not a str".to_owned());
                    };
                    map.insert(key.clone(), value.to_json()?);
                }
                Value::Object(map)
            }
            Py::Refused(what) => return Err(what.clone()),
        })
    }

    /// From JSON: objects → `Dict` with `Str` keys, arrays → `List`,
    /// integers that fit `i64` → `Int`, other numbers (`u64` beyond
    /// `i64::MAX` too) → `Float`.
    ///
    /// Recursive: serde_json's parser bounds the depth of what it parses
    /// (128).
    pub(crate) fn from_json(value: &serde_json::Value) -> Py {
        use serde_json::Value;
        match value {
            Value::Null => Py::None,
            Value::Bool(b) => Py::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Py::Int(i),
                (None, Some(f)) => Py::Float(f),
                // Only with serde_json's `arbitrary_precision`, which is off.
                (None, None) => Py::Refused("a JSON number beyond f64".to_owned()),
            },
            Value::String(s) => Py::Str(s.clone()),
            Value::Array(items) => Py::List(items.iter().map(Py::from_json).collect()),
            Value::Object(map) => Py::Dict(
                map.iter()
                    .map(|(k, v)| (Py::Str(k.clone()), Py::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Whether a [`Py::Refused`] is anywhere in the value.
    pub(crate) fn contains_refused(&self) -> bool {
        match self {
            Py::Refused(_) => true,
            Py::List(items) | Py::Tuple(items) => items.iter().any(Py::contains_refused),
            Py::Dict(pairs) => pairs
                .iter()
                .any(|(k, v)| k.contains_refused() || v.contains_refused()),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    // Made by Python 3.11.7 (`sys.stdout.buffer.write(pickle.dumps(...))`), from:
    //   SESSION = {'user': 'ann', 'cart': ['a', 'b'], 'n': 3, 'big': 2**40, 'neg': -7,
    //              'pi': 3.5, 'ok': True, 'none': None, '_permanent': True,
    //              '_flashes': [('message', 'hi'), ('error', 'bad')],
    //              'nested': {'k': [1, (2, 3)]}}
    //   REFUSED = {'user': 'ann', 'when': datetime.datetime.now(), 'id': uuid.uuid4(),
    //              'price': decimal.Decimal('1.5'), 'tags': {1, 2}, 'frozen': frozenset({3}),
    //              'raw': b'bytes', 'buf': bytearray(b'x'), 'html': markupsafe.Markup('<b>'),
    //              'n': 3}
    //   class Evil:
    //       def __reduce__(self): return (os.system, ('touch /tmp/pwned',))
    //   x = [1, 2]; SHARED = {'a': x, 'b': x, 's': ['ann'] * 3}
    //   INTS = [2**63-1, -2**63, 2**63, -2**63-1, 2**100, 0, -1, 255, 256, 65535, 65536,
    //           2**31-1, -2**31, 2**31]
    //   TEXT = ['é\n\\ü€😀\r\x1a\x00 \\u0041', '\ud800']
    //   FLOATS = [nan, inf, -inf, -0.0, 1e100, 5e-324]
    /// `pickle.dumps(SESSION, protocol=0)`
    const SESSION_P0: &[u8] =
        b"(dp0\nVuser\np1\nVann\np2\nsVcart\np3\n(lp4\nVa\np5\naVb\np6\nasVn\np7\n\
            I3\nsVbig\np8\nL1099511627776L\nsVneg\np9\nI-7\nsVpi\np10\nF3.5\nsVok\np\
            11\nI01\nsVnone\np12\nNsV_permanent\np13\nI01\nsV_flashes\np14\n(lp15\n(\
            Vmessage\np16\nVhi\np17\ntp18\na(Verror\np19\nVbad\np20\ntp21\nasVnested\
            \np22\n(dp23\nVk\np24\n(lp25\nI1\na(I2\nI3\ntp26\nass.";
    /// `pickle.dumps(SESSION, protocol=1)`
    const SESSION_P1: &[u8] =
        b"}q\x00(X\x04\x00\x00\x00userq\x01X\x03\x00\x00\x00annq\x02X\x04\x00\x00\x00\
            cartq\x03]q\x04(X\x01\x00\x00\x00aq\x05X\x01\x00\x00\x00bq\x06eX\x01\x00\
            \x00\x00nq\x07K\x03X\x03\x00\x00\x00bigq\x08L1099511627776L\nX\x03\x00\x00\
            \x00negq\tJ\xf9\xff\xff\xffX\x02\x00\x00\x00piq\nG@\x0c\x00\x00\x00\x00\x00\
            \x00X\x02\x00\x00\x00okq\x0bI01\nX\x04\x00\x00\x00noneq\x0cNX\n\x00\x00\x00\
            _permanentq\rI01\nX\x08\x00\x00\x00_flashesq\x0e]q\x0f((X\x07\x00\x00\x00\
            messageq\x10X\x02\x00\x00\x00hiq\x11tq\x12(X\x05\x00\x00\x00errorq\x13X\x03\
            \x00\x00\x00badq\x14tq\x15eX\x06\x00\x00\x00nestedq\x16}q\x17X\x01\x00\x00\
            \x00kq\x18]q\x19(K\x01(K\x02K\x03tq\x1aesu.";
    /// `pickle.dumps(SESSION, protocol=2)`
    const SESSION_P2: &[u8] =
        b"\x80\x02}q\x00(X\x04\x00\x00\x00userq\x01X\x03\x00\x00\x00annq\x02X\x04\x00\
            \x00\x00cartq\x03]q\x04(X\x01\x00\x00\x00aq\x05X\x01\x00\x00\x00bq\x06eX\
            \x01\x00\x00\x00nq\x07K\x03X\x03\x00\x00\x00bigq\x08\x8a\x06\x00\x00\x00\
            \x00\x00\x01X\x03\x00\x00\x00negq\tJ\xf9\xff\xff\xffX\x02\x00\x00\x00piq\
            \nG@\x0c\x00\x00\x00\x00\x00\x00X\x02\x00\x00\x00okq\x0b\x88X\x04\x00\x00\
            \x00noneq\x0cNX\n\x00\x00\x00_permanentq\r\x88X\x08\x00\x00\x00_flashesq\
            \x0e]q\x0f(X\x07\x00\x00\x00messageq\x10X\x02\x00\x00\x00hiq\x11\x86q\x12\
            X\x05\x00\x00\x00errorq\x13X\x03\x00\x00\x00badq\x14\x86q\x15eX\x06\x00\x00\
            \x00nestedq\x16}q\x17X\x01\x00\x00\x00kq\x18]q\x19(K\x01K\x02K\x03\x86q\x1a\
            esu.";
    /// `pickle.dumps(SESSION, protocol=3)`
    const SESSION_P3: &[u8] =
        b"\x80\x03}q\x00(X\x04\x00\x00\x00userq\x01X\x03\x00\x00\x00annq\x02X\x04\x00\
            \x00\x00cartq\x03]q\x04(X\x01\x00\x00\x00aq\x05X\x01\x00\x00\x00bq\x06eX\
            \x01\x00\x00\x00nq\x07K\x03X\x03\x00\x00\x00bigq\x08\x8a\x06\x00\x00\x00\
            \x00\x00\x01X\x03\x00\x00\x00negq\tJ\xf9\xff\xff\xffX\x02\x00\x00\x00piq\
            \nG@\x0c\x00\x00\x00\x00\x00\x00X\x02\x00\x00\x00okq\x0b\x88X\x04\x00\x00\
            \x00noneq\x0cNX\n\x00\x00\x00_permanentq\r\x88X\x08\x00\x00\x00_flashesq\
            \x0e]q\x0f(X\x07\x00\x00\x00messageq\x10X\x02\x00\x00\x00hiq\x11\x86q\x12\
            X\x05\x00\x00\x00errorq\x13X\x03\x00\x00\x00badq\x14\x86q\x15eX\x06\x00\x00\
            \x00nestedq\x16}q\x17X\x01\x00\x00\x00kq\x18]q\x19(K\x01K\x02K\x03\x86q\x1a\
            esu.";
    /// `pickle.dumps(SESSION, protocol=4)`
    const SESSION_P4: &[u8] =
        b"\x80\x04\x95\xba\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04user\x94\x8c\x03\
            ann\x94\x8c\x04cart\x94]\x94(\x8c\x01a\x94\x8c\x01b\x94e\x8c\x01n\x94K\x03\
            \x8c\x03big\x94\x8a\x06\x00\x00\x00\x00\x00\x01\x8c\x03neg\x94J\xf9\xff\xff\
            \xff\x8c\x02pi\x94G@\x0c\x00\x00\x00\x00\x00\x00\x8c\x02ok\x94\x88\x8c\x04\
            none\x94N\x8c\n_permanent\x94\x88\x8c\x08_flashes\x94]\x94(\x8c\x07messa\
            ge\x94\x8c\x02hi\x94\x86\x94\x8c\x05error\x94\x8c\x03bad\x94\x86\x94e\x8c\
            \x06nested\x94}\x94\x8c\x01k\x94]\x94(K\x01K\x02K\x03\x86\x94esu.";
    /// `pickle.dumps(SESSION, protocol=5)`
    const SESSION_P5: &[u8] =
        b"\x80\x05\x95\xba\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04user\x94\x8c\x03\
            ann\x94\x8c\x04cart\x94]\x94(\x8c\x01a\x94\x8c\x01b\x94e\x8c\x01n\x94K\x03\
            \x8c\x03big\x94\x8a\x06\x00\x00\x00\x00\x00\x01\x8c\x03neg\x94J\xf9\xff\xff\
            \xff\x8c\x02pi\x94G@\x0c\x00\x00\x00\x00\x00\x00\x8c\x02ok\x94\x88\x8c\x04\
            none\x94N\x8c\n_permanent\x94\x88\x8c\x08_flashes\x94]\x94(\x8c\x07messa\
            ge\x94\x8c\x02hi\x94\x86\x94\x8c\x05error\x94\x8c\x03bad\x94\x86\x94e\x8c\
            \x06nested\x94}\x94\x8c\x01k\x94]\x94(K\x01K\x02K\x03\x86\x94esu.";
    /// `pickle.dumps(REFUSED, protocol=0)`
    const REFUSED_P0: &[u8] =
        b"(dp0\nVuser\np1\nVann\np2\nsVwhen\np3\ncdatetime\ndatetime\np4\n(c_codec\
            s\nencode\np5\n(V\x07\xea\x0c\x04\x12\x03\x16\x06\x8a\xfe\np6\nVlatin1\n\
            p7\ntp8\nRp9\ntp10\nRp11\nsVid\np12\nccopy_reg\n_reconstructor\np13\n(cu\
            uid\nUUID\np14\nc__builtin__\nobject\np15\nNtp16\nRp17\n(dp18\nVint\np19\
            \nL246857512168359742951074754642823391599L\nsbsVprice\np20\ncdecimal\nD\
            ecimal\np21\n(V1.5\np22\ntp23\nRp24\nsVtags\np25\nc__builtin__\nset\np26\
            \n((lp27\nI1\naI2\natp28\nRp29\nsVfrozen\np30\nc__builtin__\nfrozenset\n\
            p31\n((lp32\nI3\natp33\nRp34\nsVraw\np35\ng5\n(Vbytes\np36\ng7\ntp37\nRp\
            38\nsVbuf\np39\nc__builtin__\nbytearray\np40\n(g5\n(Vx\np41\ng7\ntp42\nR\
            p43\ntp44\nRp45\nsVhtml\np46\ng13\n(cmarkupsafe\nMarkup\np47\nc__builtin\
            __\nunicode\np48\nV<b>\np49\ntp50\nRp51\nsVn\np52\nI3\ns.";
    /// `pickle.dumps(REFUSED, protocol=2)`
    const REFUSED_P2: &[u8] =
        b"\x80\x02}q\x00(X\x04\x00\x00\x00userq\x01X\x03\x00\x00\x00annq\x02X\x04\x00\
            \x00\x00whenq\x03cdatetime\ndatetime\nq\x04c_codecs\nencode\nq\x05X\r\x00\
            \x00\x00\x07\xc3\xaa\x0c\x04\x12\x03\x16\x06\xc2\x8a\xc3\xbeq\x06X\x06\x00\
            \x00\x00latin1q\x07\x86q\x08Rq\t\x85q\nRq\x0bX\x02\x00\x00\x00idq\x0ccuu\
            id\nUUID\nq\r)\x81q\x0e}q\x0fX\x03\x00\x00\x00intq\x10\x8a\x11o\xa9\x08\xba\
            h\xf1\x03\x89\x91K\xe4'\x08\x07\xb7\xb9\x00sbX\x05\x00\x00\x00priceq\x11\
            cdecimal\nDecimal\nq\x12X\x03\x00\x00\x001.5q\x13\x85q\x14Rq\x15X\x04\x00\
            \x00\x00tagsq\x16c__builtin__\nset\nq\x17]q\x18(K\x01K\x02e\x85q\x19Rq\x1a\
            X\x06\x00\x00\x00frozenq\x1bc__builtin__\nfrozenset\nq\x1c]q\x1dK\x03a\x85\
            q\x1eRq\x1fX\x03\x00\x00\x00rawq h\x05X\x05\x00\x00\x00bytesq!h\x07\x86q\
            \"Rq#X\x03\x00\x00\x00bufq$c__builtin__\nbytearray\nq%h\x05X\x01\x00\x00\
            \x00xq&h\x07\x86q'Rq(\x85q)Rq*X\x04\x00\x00\x00htmlq+cmarkupsafe\nMarkup\
            \nq,X\x03\x00\x00\x00<b>q-\x85q.\x81q/X\x01\x00\x00\x00nq0K\x03u.";
    /// `pickle.dumps(REFUSED, protocol=3)`
    const REFUSED_P3: &[u8] =
        b"\x80\x03}q\x00(X\x04\x00\x00\x00userq\x01X\x03\x00\x00\x00annq\x02X\x04\x00\
            \x00\x00whenq\x03cdatetime\ndatetime\nq\x04C\n\x07\xea\x0c\x04\x12\x03\x16\
            \x06\x8a\xfeq\x05\x85q\x06Rq\x07X\x02\x00\x00\x00idq\x08cuuid\nUUID\nq\t\
            )\x81q\n}q\x0bX\x03\x00\x00\x00intq\x0c\x8a\x11o\xa9\x08\xbah\xf1\x03\x89\
            \x91K\xe4'\x08\x07\xb7\xb9\x00sbX\x05\x00\x00\x00priceq\rcdecimal\nDecim\
            al\nq\x0eX\x03\x00\x00\x001.5q\x0f\x85q\x10Rq\x11X\x04\x00\x00\x00tagsq\x12\
            cbuiltins\nset\nq\x13]q\x14(K\x01K\x02e\x85q\x15Rq\x16X\x06\x00\x00\x00f\
            rozenq\x17cbuiltins\nfrozenset\nq\x18]q\x19K\x03a\x85q\x1aRq\x1bX\x03\x00\
            \x00\x00rawq\x1cC\x05bytesq\x1dX\x03\x00\x00\x00bufq\x1ecbuiltins\nbytea\
            rray\nq\x1fC\x01xq \x85q!Rq\"X\x04\x00\x00\x00htmlq#cmarkupsafe\nMarkup\n\
            q$X\x03\x00\x00\x00<b>q%\x85q&\x81q'X\x01\x00\x00\x00nq(K\x03u.";
    /// `pickle.dumps(REFUSED, protocol=4)`
    const REFUSED_P4: &[u8] =
        b"\x80\x04\x95 \x01\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04user\x94\x8c\x03a\
            nn\x94\x8c\x04when\x94\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\n\
            \x07\xea\x0c\x04\x12\x03\x16\x06\x8a\xfe\x94\x85\x94R\x94\x8c\x02id\x94\x8c\
            \x04uuid\x94\x8c\x04UUID\x94\x93\x94)\x81\x94}\x94\x8c\x03int\x94\x8a\x11\
            o\xa9\x08\xbah\xf1\x03\x89\x91K\xe4'\x08\x07\xb7\xb9\x00sb\x8c\x05price\x94\
            \x8c\x07decimal\x94\x8c\x07Decimal\x94\x93\x94\x8c\x031.5\x94\x85\x94R\x94\
            \x8c\x04tags\x94\x8f\x94(K\x01K\x02\x90\x8c\x06frozen\x94(K\x03\x91\x94\x8c\
            \x03raw\x94C\x05bytes\x94\x8c\x03buf\x94\x8c\x08builtins\x94\x8c\tbytear\
            ray\x94\x93\x94C\x01x\x94\x85\x94R\x94\x8c\x04html\x94\x8c\nmarkupsafe\x94\
            \x8c\x06Markup\x94\x93\x94\x8c\x03<b>\x94\x85\x94\x81\x94\x8c\x01n\x94K\x03\
            u.";
    /// `pickle.dumps(REFUSED, protocol=5)`
    const REFUSED_P5: &[u8] =
        b"\x80\x05\x95\n\x01\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04user\x94\x8c\x03\
            ann\x94\x8c\x04when\x94\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\
            \n\x07\xea\x0c\x04\x12\x03\x16\x06\x8a\xfe\x94\x85\x94R\x94\x8c\x02id\x94\
            \x8c\x04uuid\x94\x8c\x04UUID\x94\x93\x94)\x81\x94}\x94\x8c\x03int\x94\x8a\
            \x11o\xa9\x08\xbah\xf1\x03\x89\x91K\xe4'\x08\x07\xb7\xb9\x00sb\x8c\x05pr\
            ice\x94\x8c\x07decimal\x94\x8c\x07Decimal\x94\x93\x94\x8c\x031.5\x94\x85\
            \x94R\x94\x8c\x04tags\x94\x8f\x94(K\x01K\x02\x90\x8c\x06frozen\x94(K\x03\
            \x91\x94\x8c\x03raw\x94C\x05bytes\x94\x8c\x03buf\x94\x96\x01\x00\x00\x00\
            \x00\x00\x00\x00x\x94\x8c\x04html\x94\x8c\nmarkupsafe\x94\x8c\x06Markup\x94\
            \x93\x94\x8c\x03<b>\x94\x85\x94\x81\x94\x8c\x01n\x94K\x03u.";
    /// `pickle.dumps(Evil(), protocol=4)`
    const HOSTILE_P4: &[u8] =
        b"\x80\x04\x95+\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\
            \x94\x93\x94\x8c\x10touch /tmp/pwned\x94\x85\x94R\x94.";
    /// `pickle.dumps(SHARED, protocol=4)`
    const SHARED_P4: &[u8] =
        b"\x80\x04\x95)\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01K\
            \x02e\x8c\x01b\x94h\x02\x8c\x01s\x94]\x94(\x8c\x03ann\x94h\x06h\x06eu.";
    /// `pickle.dumps(SHARED, protocol=0)`
    const SHARED_P0: &[u8] =
        b"(dp0\nVa\np1\n(lp2\nI1\naI2\nasVb\np3\ng2\nsVs\np4\n(lp5\nVann\np6\nag6\n\
            ag6\nas.";
    /// `pickle.dumps(INTS, protocol=0)`
    const INTS_P0: &[u8] =
        b"(lp0\nL9223372036854775807L\naL-9223372036854775808L\naL9223372036854775\
            808L\naL-9223372036854775809L\naL1267650600228229401496703205376L\naI0\n\
            aI-1\naI255\naI256\naI65535\naI65536\naI2147483647\naI-2147483648\naL214\
            7483648L\na.";
    /// `pickle.dumps(INTS, protocol=2)`
    const INTS_P2: &[u8] =
        b"\x80\x02]q\x00(\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f\x8a\x08\x00\x00\x00\
            \x00\x00\x00\x00\x80\x8a\t\x00\x00\x00\x00\x00\x00\x00\x80\x00\x8a\t\xff\
            \xff\xff\xff\xff\xff\xff\x7f\xff\x8a\r\x00\x00\x00\x00\x00\x00\x00\x00\x00\
            \x00\x00\x00\x10K\x00J\xff\xff\xff\xffK\xffM\x00\x01M\xff\xffJ\x00\x00\x01\
            \x00J\xff\xff\xff\x7fJ\x00\x00\x00\x80\x8a\x05\x00\x00\x00\x80\x00e.";
    /// `pickle.dumps(TEXT, protocol=0)`
    const TEXT_P0: &[u8] =
        b"(lp0\nV\xe9\\u000a\\u005c\xfc\\u20ac\\U0001f600\\u000d\\u001a\\u0000 \\u\
            005cu0041\np1\naV\\ud800\np2\na.";
    /// `pickle.dumps(TEXT, protocol=4)`
    const TEXT_P4: &[u8] =
        b"\x80\x04\x95%\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x17\xc3\xa9\n\\\xc3\xbc\
            \xe2\x82\xac\xf0\x9f\x98\x80\r\x1a\x00 \\u0041\x94\x8c\x03\xed\xa0\x80\x94\
            e.";
    /// `pickle.dumps(FLOATS, protocol=0)`
    const FLOATS_P0: &[u8] = b"(lp0\nFnan\naFinf\naF-inf\naF-0.0\naF1e+100\naF5e-324\na.";
    /// `pickle.dumps(FLOATS, protocol=2)`
    const FLOATS_P2: &[u8] =
        b"\x80\x02]q\x00(G\x7f\xf8\x00\x00\x00\x00\x00\x00G\x7f\xf0\x00\x00\x00\x00\
            \x00\x00G\xff\xf0\x00\x00\x00\x00\x00\x00G\x80\x00\x00\x00\x00\x00\x00\x00\
            GT\xb2I\xad%\x94\xc3}G\x00\x00\x00\x00\x00\x00\x00\x01e.";

    fn read_default(bytes: &[u8]) -> Result<Py, PickleError> {
        read(bytes, &Limits::default())
    }

    fn s(text: &str) -> Py {
        Py::Str(text.to_owned())
    }

    fn refused(what: &str) -> Py {
        Py::Refused(what.to_owned())
    }

    fn dict(pairs: Vec<(&str, Py)>) -> Py {
        Py::Dict(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
    }

    fn session() -> Py {
        dict(vec![
            ("user", s("ann")),
            ("cart", Py::List(vec![s("a"), s("b")])),
            ("n", Py::Int(3)),
            ("big", Py::Int(1 << 40)),
            ("neg", Py::Int(-7)),
            ("pi", Py::Float(3.5)),
            ("ok", Py::Bool(true)),
            ("none", Py::None),
            ("_permanent", Py::Bool(true)),
            (
                "_flashes",
                Py::List(vec![
                    Py::Tuple(vec![s("message"), s("hi")]),
                    Py::Tuple(vec![s("error"), s("bad")]),
                ]),
            ),
            (
                "nested",
                dict(vec![(
                    "k",
                    Py::List(vec![Py::Int(1), Py::Tuple(vec![Py::Int(2), Py::Int(3)])]),
                )]),
            ),
        ])
    }

    #[test]
    fn python_session_protocol_0() {
        assert_eq!(read_default(SESSION_P0).unwrap(), session());
    }

    #[test]
    fn python_session_protocol_1() {
        assert_eq!(read_default(SESSION_P1).unwrap(), session());
    }

    #[test]
    fn python_session_protocol_2() {
        assert_eq!(read_default(SESSION_P2).unwrap(), session());
    }

    #[test]
    fn python_session_protocol_3() {
        assert_eq!(read_default(SESSION_P3).unwrap(), session());
    }

    #[test]
    fn python_session_protocol_4() {
        assert_eq!(read_default(SESSION_P4).unwrap(), session());
    }

    #[test]
    fn python_session_protocol_5() {
        assert_eq!(read_default(SESSION_P5).unwrap(), session());
    }

    /// REFUSED as read: each value that cannot be carried is refused in
    /// place, under its name; the other keys are intact.
    fn refused_session(set: &str, frozenset: &str, bytearray: &str) -> Py {
        dict(vec![
            ("user", s("ann")),
            ("when", refused("datetime.datetime")),
            ("id", refused("uuid.UUID")),
            ("price", refused("decimal.Decimal")),
            ("tags", refused(set)),
            ("frozen", refused(frozenset)),
            ("raw", refused("bytes")),
            ("buf", refused(bytearray)),
            ("html", refused("markupsafe.Markup")),
            ("n", Py::Int(3)),
        ])
    }

    #[test]
    fn python_objects_are_refused_in_place_protocol_0() {
        let want = refused_session("builtins.set", "builtins.frozenset", "builtins.bytearray");
        assert_eq!(read_default(REFUSED_P0).unwrap(), want);
    }

    #[test]
    fn python_objects_are_refused_in_place_protocol_2() {
        let want = refused_session("builtins.set", "builtins.frozenset", "builtins.bytearray");
        assert_eq!(read_default(REFUSED_P2).unwrap(), want);
    }

    #[test]
    fn python_objects_are_refused_in_place_protocol_3() {
        let want = refused_session("builtins.set", "builtins.frozenset", "builtins.bytearray");
        assert_eq!(read_default(REFUSED_P3).unwrap(), want);
    }

    #[test]
    fn python_objects_are_refused_in_place_protocol_4() {
        let want = refused_session("set", "frozenset", "builtins.bytearray");
        assert_eq!(read_default(REFUSED_P4).unwrap(), want);
    }

    #[test]
    fn python_objects_are_refused_in_place_protocol_5() {
        let want = refused_session("set", "frozenset", "bytes");
        assert_eq!(read_default(REFUSED_P5).unwrap(), want);
    }

    #[test]
    fn hostile_global_call_is_only_a_name() {
        let p0 = b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.";
        assert_eq!(read_default(p0).unwrap(), refused("os.system"));
        assert_eq!(read_default(HOSTILE_P4).unwrap(), refused("posix.system"));
        // Nested, it costs only its own key.
        let nested = b"(dVuser\nVann\nsVx\ncos\nsystem\n(S'touch /tmp/pwned'\ntRs.";
        let want = dict(vec![("user", s("ann")), ("x", refused("os.system"))]);
        assert_eq!(read_default(nested).unwrap(), want);
    }

    #[test]
    fn other_object_opcodes_are_symbolic() {
        let cases: [(&[u8], &str); 7] = [
            (b"cmarkupsafe\nMarkup\n(V<b>\ntR.", "markupsafe.Markup"),
            (b"(K\x01imod\nCls\n.", "mod.Cls"),
            (b"(cmod\nCls\nK\x01o.", "mod.Cls"),
            (b"\x80\x04cmod\nCls\n)}\x92.", "mod.Cls"),
            (b"cbuiltins\nint\n.", "builtins.int"),
            // An OrderedDict: items set on the object are dropped with it.
            (
                b"\x80\x02ccollections\nOrderedDict\n)R(K\x01K\x02u.",
                "collections.OrderedDict",
            ),
            // State set by BUILD stays with the refused object.
            (b"\x80\x02cuuid\nUUID\n)\x81}b.", "uuid.UUID"),
        ];
        for (pickle, name) in cases {
            assert_eq!(read_default(pickle).unwrap(), refused(name), "{pickle:?}");
        }
    }

    #[test]
    fn misused_object_opcodes_are_errors() {
        for pickle in [
            &b"\x80\x02]}b."[..],             // BUILD on a list
            b"\x80\x02X\x01\x00\x00\x00a)R.", // REDUCE on a str
            b"\x80\x04K\x01K\x02\x93.",       // STACK_GLOBAL of ints
            b"\x80\x02)K\x01a.",              // APPEND to a tuple
            b"\x80\x02](K\x01\x90.",          // ADDITEMS to a list
            b"\x80\x02}(K\x01u.",             // odd SETITEMS
            b"\x80\x02(o.",                   // OBJ without a class
        ] {
            assert!(
                matches!(read_default(pickle), Err(PickleError::Malformed { .. })),
                "{pickle:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let n = 10_000;
        let mut p0 = b"(l".repeat(n);
        p0.extend(b"a".repeat(n - 1));
        p0.push(b'.');
        assert!(matches!(read_default(&p0), Err(PickleError::TooDeep(64))));

        let mut p2 = b"\x80\x02".to_vec();
        p2.extend(b"]".repeat(n));
        p2.extend(b"a".repeat(n - 1));
        p2.push(b'.');
        assert!(matches!(read_default(&p2), Err(PickleError::TooDeep(64))));

        // Marks that are never closed.
        let mut marks = b"(".repeat(n);
        marks.extend(b"N.");
        assert!(read_default(&marks).is_err());
    }

    #[test]
    fn depth_limit_is_exact() {
        let nested = |n: usize| {
            let mut p = b"\x80\x02".to_vec();
            p.extend(b"]".repeat(n));
            p.extend(b"a".repeat(n - 1));
            p.push(b'.');
            p
        };
        assert!(read_default(&nested(64)).is_ok());
        assert!(matches!(
            read_default(&nested(65)),
            Err(PickleError::TooDeep(64))
        ));
        let shallow = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        assert!(read(b"K\x01.", &shallow).is_ok());
        assert!(matches!(
            read(b"].", &shallow),
            Err(PickleError::TooDeep(0))
        ));
    }

    #[test]
    fn containers_holding_themselves_are_errors() {
        // l = []; l.append(l)
        let list = b"\x80\x02]q\x00h\x00a.";
        assert!(matches!(read_default(list), Err(PickleError::TooDeep(64))));
        // d = {}; d['a'] = d
        let dict = b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s.";
        assert!(matches!(read_default(dict), Err(PickleError::TooDeep(64))));
        // l = [l, None, None, ...]: each level opened is charged its million
        // items up front, so the budget ends it before 64 levels of copies.
        let mut wide = b"\x80\x02]q\x00(h\x00".to_vec();
        wide.extend(b"N".repeat(1_000_000));
        wide.extend(b"e.");
        assert!(matches!(read_default(&wide), Err(PickleError::TooBig(_))));
    }

    #[test]
    fn memo_blow_up_is_an_error() {
        // "Billion laughs": each list holds the previous one ten times, 30
        // levels deep: 10^30 values once copied.
        let mut p = b"\x80\x02]q\x000".to_vec();
        for level in 0..30u8 {
            p.push(b'(');
            for _ in 0..10 {
                p.extend([b'h', level]);
            }
            p.extend([b'l', b'q', level + 1, b'0']);
        }
        p.extend([b'h', 30, b'.']);
        let started = std::time::Instant::now();
        assert!(matches!(read_default(&p), Err(PickleError::TooBig(_))));
        // The budget stops it long before: about a second even unoptimized.
        assert!(started.elapsed() < std::time::Duration::from_secs(30));

        // A list appended to itself through GET, many times.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..1000 {
            p.extend(b"h\x00a");
        }
        p.push(b'.');
        assert!(read_default(&p).is_err());
    }

    #[test]
    fn global_names_are_not_copied_per_opcode() {
        // A 60 kB module name, then 100,000 STACK_GLOBALs and REDUCEs of it:
        // names are built only for what the value holds.
        let mut p = b"\x80\x04X\x60\xea\x00\x00".to_vec();
        p.extend(b"m".repeat(60_000));
        p.extend(b"\x940\x8c\x01x\x940");
        for _ in 0..100_000 {
            p.extend(b"h\x00h\x01\x93)R0");
        }
        p.extend(b"h\x00h\x01\x93)R.");
        let want = refused(&format!("{}.x", "m".repeat(60_000)));
        assert_eq!(read_default(&p).unwrap(), want);
    }

    #[test]
    fn shared_values_are_shared_as_in_python() {
        let want = dict(vec![
            ("a", Py::List(vec![Py::Int(1), Py::Int(2)])),
            ("b", Py::List(vec![Py::Int(1), Py::Int(2)])),
            ("s", Py::List(vec![s("ann"), s("ann"), s("ann")])),
        ]);
        assert_eq!(read_default(SHARED_P4).unwrap(), want);
        assert_eq!(read_default(SHARED_P0).unwrap(), want);
    }

    #[test]
    fn copy_budget_is_the_size_written() {
        for pickle in [SHARED_P4, SHARED_P0] {
            let value = read_default(pickle).unwrap();
            let written = write(&value).len();
            assert!(written >= pickle.len(), "{written} < {}", pickle.len());
            let limits = |max_bytes| Limits {
                max_bytes,
                max_depth: 64,
            };
            assert_eq!(read(pickle, &limits(written)).unwrap(), value);
            if written > pickle.len() {
                let err = read(pickle, &limits(written - 1)).unwrap_err();
                assert!(matches!(err, PickleError::TooBig(_)), "{err}");
            }
        }
    }

    #[test]
    fn repeated_keys_keep_the_last_value_in_the_first_place() {
        let p =
            b"\x80\x02}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03u.";
        let want = dict(vec![("a", Py::Int(3)), ("b", Py::Int(2))]);
        assert_eq!(read_default(p).unwrap(), want);
    }

    #[test]
    fn ints_beyond_64_bits_are_refused() {
        let big = refused("an int beyond 64 bits");
        let want = Py::List(vec![
            Py::Int(i64::MAX),
            Py::Int(i64::MIN),
            big.clone(),
            big.clone(),
            big,
            Py::Int(0),
            Py::Int(-1),
            Py::Int(255),
            Py::Int(256),
            Py::Int(65535),
            Py::Int(65536),
            Py::Int(i32::MAX.into()),
            Py::Int(i32::MIN.into()),
            Py::Int(1 << 31),
        ]);
        assert_eq!(read_default(INTS_P0).unwrap(), want);
        assert_eq!(read_default(INTS_P2).unwrap(), want);
        // LONG1 longer than needed, LONG4, and an empty LONG1 (zero).
        let p = b"\x80\x02(\x8a\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\
            \x8b\x02\x00\x00\x00\x00\x80\x8a\x00l.";
        let want = Py::List(vec![Py::Int(-1), Py::Int(-32768), Py::Int(0)]);
        assert_eq!(read_default(p).unwrap(), want);
    }

    #[test]
    fn text_of_every_protocol() {
        let want = Py::List(vec![
            s("é\n\\ü€😀\r\x1a\x00 \\u0041"),
            refused("a str with lone surrogates"),
        ]);
        assert_eq!(read_default(TEXT_P0).unwrap(), want);
        assert_eq!(read_default(TEXT_P4).unwrap(), want);
        // Python 2 `str`: text when UTF-8, else bytes.
        let cases: [(&[u8], Py); 5] = [
            (b"S'it\\'s \\x41\\101\\n\\q'\n.", s("it's AA\n\\q")),
            (b"S\"dq\"\n.", s("dq")),
            (b"S'\\xff'\n.", refused("bytes")),
            (b"T\x03\x00\x00\x00abc.", s("abc")),
            (b"U\x02\xff\xfe.", refused("bytes")),
        ];
        for (pickle, value) in cases {
            assert_eq!(read_default(pickle).unwrap(), value, "{pickle:?}");
        }
        for pickle in [
            &b"Sunquoted\n."[..],
            b"S'\\x4'\n.",
            b"X\x01\x00\x00\x00\xff.",
            b"V\\u12\n.",
            b"V\\U00110000\n.",
        ] {
            assert!(
                matches!(read_default(pickle), Err(PickleError::Malformed { .. })),
                "{pickle:?}"
            );
        }
    }

    #[test]
    fn floats_of_every_protocol() {
        for pickle in [FLOATS_P0, FLOATS_P2] {
            let Py::List(items) = read_default(pickle).unwrap() else {
                panic!("not a list");
            };
            let floats: Vec<f64> = items
                .iter()
                .map(|v| match v {
                    Py::Float(f) => *f,
                    other => panic!("not a float: {other:?}"),
                })
                .collect();
            assert!(floats[0].is_nan());
            assert_eq!(floats[1..3], [f64::INFINITY, f64::NEG_INFINITY]);
            assert!(floats[3] == 0.0 && floats[3].is_sign_negative());
            assert_eq!(floats[4..], [1e100, 5e-324]);
        }
    }

    #[test]
    fn bad_framing_is_an_error() {
        assert!(matches!(read_default(b""), Err(PickleError::Truncated)));
        assert!(matches!(
            read_default(b"\x80\x04N"),
            Err(PickleError::Truncated)
        ));
        assert!(matches!(
            read_default(b"\x80\x02X\x05\x00\x00\x00ab."),
            Err(PickleError::Truncated)
        ));
        assert!(matches!(
            read_default(b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N."),
            Err(PickleError::Truncated)
        ));
        assert!(matches!(
            read_default(b"Vno newline"),
            Err(PickleError::Truncated)
        ));
        for pickle in [
            &b"NN."[..],
            b"N.N",
            b"(N.",
            b".",
            b"\x80\x06N.",
            b"0N.",
            b"g1\n.",
            b"I0122\n.",
            b"L0x1fL\n.",
            b"I\n.",
            // A frame that ends inside an opcode, and one inside another.
            b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00J\x01\x00\x00\x00.",
            b"\x80\x04\x95\x0a\x00\x00\x00\x00\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00N.",
        ] {
            assert!(
                matches!(read_default(pickle), Err(PickleError::Malformed { .. })),
                "{pickle:?}"
            );
        }
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let limits = Limits {
            max_bytes: 10,
            max_depth: 64,
        };
        let err = read(&[0xff; 11], &limits).unwrap_err();
        assert!(matches!(err, PickleError::TooLarge { len: 11, max: 10 }));
        assert_eq!(err.to_string(), "pickle larger than 10 bytes (11 bytes)");
        assert!(read(b"N.", &limits).is_ok());
    }

    #[test]
    fn outside_references_are_not_allowed() {
        for opcode in [0x82, 0x83, 0x84, b'P', b'Q', 0x97, 0x98] {
            let pickle = [0x80, 5, opcode, 1, 0, 0, 0, b'\n', b'.'];
            let err = read_default(&pickle).unwrap_err();
            assert!(
                matches!(err, PickleError::NotAllowed { op, pos: 2 } if op == opcode),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                format!("opcode 0x{opcode:02x} not allowed (byte 2)")
            );
        }
        for opcode in [0xff, b'z', 0x99] {
            let err = read_default(&[opcode, b'.']).unwrap_err();
            assert!(matches!(err, PickleError::Unknown { op, pos: 0 } if op == opcode));
        }
    }

    #[test]
    fn to_json_of_a_session() {
        let want = json!({
            "user": "ann", "cart": ["a", "b"], "n": 3, "big": 1_u64 << 40, "neg": -7,
            "pi": 3.5, "ok": true, "none": null, "_permanent": true,
            "_flashes": [["message", "hi"], ["error", "bad"]],
            "nested": {"k": [1, [2, 3]]},
        });
        assert_eq!(session().to_json().unwrap(), want);
    }

    #[test]
    fn to_json_names_what_it_refuses() {
        let value = dict(vec![
            ("ok", Py::Int(1)),
            ("when", refused("datetime.datetime")),
        ]);
        assert_eq!(value.to_json().unwrap_err(), "datetime.datetime");
        let int_key = Py::Dict(vec![(Py::Int(1), Py::None)]);
        assert_eq!(
            int_key.to_json().unwrap_err(),
            "a dict key that is not a str"
        );
        let nan = Py::List(vec![Py::Float(f64::NAN)]);
        assert_eq!(
            nan.to_json().unwrap_err(),
            "a float that is NaN or infinite"
        );
        assert!(read_default(REFUSED_P4).unwrap().contains_refused());
        assert!(!session().contains_refused());
    }

    #[test]
    fn from_json_values() {
        let value = json!({"a": [1, 2.5, null, true, "x", -3], "big": u64::MAX});
        let want = dict(vec![
            (
                "a",
                Py::List(vec![
                    Py::Int(1),
                    Py::Float(2.5),
                    Py::None,
                    Py::Bool(true),
                    s("x"),
                    Py::Int(-3),
                ]),
            ),
            ("big", Py::Float(u64::MAX as f64)),
        ]);
        assert_eq!(Py::from_json(&value), want);
        // Through a pickle and back.
        let back = read_default(&write(&Py::from_json(&value))).unwrap();
        assert_eq!(
            back.to_json().unwrap(),
            json!({"a": [1, 2.5, null, true, "x", -3], "big": u64::MAX as f64})
        );
    }

    /// `write(&session())`, which Python 3.11's `pickle.loads` was checked
    /// (by hand) to read as SESSION, tuples as tuples.
    const WRITTEN_SESSION: &[u8] =
        b"\x80\x02}(X\x04\x00\x00\x00userX\x03\x00\x00\x00annX\x04\x00\x00\x00cart\
        ](X\x01\x00\x00\x00aX\x01\x00\x00\x00beX\x01\x00\x00\x00nK\x03X\x03\x00\x00\
        \x00big\x8a\x06\x00\x00\x00\x00\x00\x01X\x03\x00\x00\x00negJ\xf9\xff\xff\
        \xffX\x02\x00\x00\x00piG@\x0c\x00\x00\x00\x00\x00\x00X\x02\x00\x00\x00ok\
        \x88X\x04\x00\x00\x00noneNX\n\x00\x00\x00_permanent\x88X\x08\x00\x00\x00\
        _flashes](X\x07\x00\x00\x00messageX\x02\x00\x00\x00hi\x86X\x05\x00\x00\x00\
        errorX\x03\x00\x00\x00bad\x86eX\x06\x00\x00\x00nested}(X\x01\x00\x00\x00\
        k](K\x01K\x02K\x03\x86euu.";

    #[test]
    fn write_a_session_as_python_reads_it() {
        assert_eq!(write(&session()), WRITTEN_SESSION);
        assert_eq!(read_default(WRITTEN_SESSION).unwrap(), session());
    }

    #[test]
    fn write_picks_ints_as_python_does() {
        // 2**40 as in Python's own protocol 2 pickle of SESSION.
        assert!(write(&Py::Int(1 << 40))
            .windows(8)
            .any(|w| w == b"\x8a\x06\x00\x00\x00\x00\x00\x01"));
        assert_eq!(write(&Py::Int(-1)), b"\x80\x02J\xff\xff\xff\xff.");
        assert_eq!(write(&Py::Int(i64::MIN))[2..4], [0x8a, 8]);
        assert_eq!(
            write(&Py::Int(-(1 << 31) - 1))[2..8],
            [0x8a, 5, 0xff, 0xff, 0xff, 0x7f]
        );
        for n in [
            0,
            255,
            256,
            65535,
            65536,
            -1,
            -256,
            i32::MAX.into(),
            i32::MIN.into(),
            1 << 31,
            -(1 << 31) - 1,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(read_default(&write(&Py::Int(n))).unwrap(), Py::Int(n));
        }
    }

    /// Py trees as a session holds them: no `Refused`, finite floats,
    /// dicts without repeated `str` keys, depth at most 6.
    fn value() -> impl Strategy<Value = Py> {
        let int = prop_oneof![
            any::<i64>(),
            prop::sample::select(vec![
                0,
                255,
                256,
                65535,
                65536,
                -1,
                i32::MAX.into(),
                i64::from(i32::MAX) + 1,
                i32::MIN.into(),
                i64::from(i32::MIN) - 1,
                i64::MAX,
                i64::MIN,
            ]),
        ];
        let leaf = prop_oneof![
            Just(Py::None),
            any::<bool>().prop_map(Py::Bool),
            int.prop_map(Py::Int),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Py::Float),
            any::<String>().prop_map(Py::Str),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            let key = prop_oneof![
                3 => any::<String>().prop_map(Py::Str),
                1 => any::<i64>().prop_map(Py::Int),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Py::List),
                prop::collection::vec(inner.clone(), 0..6).prop_map(Py::Tuple),
                prop::collection::vec((key, inner), 0..6).prop_map(|pairs| {
                    let mut seen = std::collections::HashSet::new();
                    Py::Dict(
                        pairs
                            .into_iter()
                            .filter(|(k, _)| match k {
                                Py::Str(k) => seen.insert(k.clone()),
                                _ => true,
                            })
                            .collect(),
                    )
                }),
            ]
        })
    }

    /// Every pickle above, for mutation.
    const PYTHON_MADE: &[&[u8]] = &[
        SESSION_P0, SESSION_P1, SESSION_P2, SESSION_P3, SESSION_P4, SESSION_P5, REFUSED_P0,
        REFUSED_P2, REFUSED_P3, REFUSED_P4, REFUSED_P5, HOSTILE_P4, SHARED_P4, SHARED_P0, INTS_P0,
        INTS_P2, TEXT_P0, TEXT_P4, FLOATS_P0, FLOATS_P2,
    ];

    proptest! {
        #[test]
        fn write_then_read_is_identity(value in value()) {
            let written = write(&value);
            prop_assert_eq!(read_default(&written).unwrap(), value);
            // The copy budget is exactly the written size.
            let exact = Limits { max_bytes: written.len(), ..Limits::default() };
            prop_assert!(read(&written, &exact).is_ok());
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            proto in prop::option::of(0..=5u8),
            bytes in prop::collection::vec(any::<u8>(), 0..2000),
        ) {
            let mut pickle = proto.map(|p| vec![0x80, p]).unwrap_or_default();
            pickle.extend(bytes);
            let _ = read_default(&pickle);
        }

        #[test]
        fn mutated_pickles_never_panic(
            value in value(),
            python in prop::sample::select(PYTHON_MADE),
            use_python in any::<bool>(),
            edits in prop::collection::vec((0..3u8, any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut pickle = if use_python { python.to_vec() } else { write(&value) };
            for (kind, at, byte) in edits {
                let i = at.index(pickle.len() + 1);
                match kind {
                    0 if i < pickle.len() => pickle[i] ^= byte | 1,
                    1 => pickle.insert(i, byte),
                    _ if i < pickle.len() => {
                        pickle.remove(i);
                    }
                    _ => {}
                }
            }
            let _ = read_default(&pickle);
        }
    }
}
