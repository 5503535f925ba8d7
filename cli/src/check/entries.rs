//! Entry redirection, the tool's side: which function entries of the running program (its
//! executable and the patches loaded before) a patch redirects into itself.
//!
//! Functions are matched by their mangled names, which are the same in the host and in a
//! patch: the host compiles the bin crate as an rlib and a patch as a cdylib, with the same
//! `-C metadata`, and neither crate type is an executable, so rustc gives both the same crate
//! hash, and every function (every instance of a generic one) the same symbol.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use hotswap::protocol::Redirect;
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// How many of a function's first bytes the agent compares with the file's before it writes.
const GUARD_BYTES: u64 = 8;

/// A function as its file's symbol table gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Function {
    /// Its address in the file (the symbol's value; the agent adds the load bias).
    pub(crate) address: u64,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its first bytes (at most [`GUARD_BYTES`], at most `size`).
    pub(crate) bytes: Vec<u8>,
    /// Whether its own code jumps back into its first five bytes (a loop right after a short
    /// prologue): a thread that takes that jump after the entry became a jump would run the
    /// middle of it, so the entry cannot be redirected.
    pub(crate) loops_into_entry: bool,
    /// What its code refers to: direct calls and addresses taken, by target address (read
    /// with [`Functions::read_with_references`] only).
    pub(crate) references: Vec<(u64, Use)>,
}

/// How a function's code refers to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Use {
    /// A direct call (or jump) outside any loop of the function's own code.
    Call,
    /// A direct call inside a loop of the function's own code (a cycle of its control flow).
    CallInLoop,
    /// A direct call inside a loop that nothing leaves (`loop { .. }` without `break` or
    /// `return`): a running call of the function goes on making it until the program ends.
    CallInEndlessLoop,
    /// A RIP-relative address (`lea`, a memory operand): a function pointer taken, which may be
    /// called from anywhere, any number of times.
    Address,
}

/// The functions and mutable statics one module (the executable or a patch) defines, by
/// mangled name.
#[derive(Debug, Default)]
pub(crate) struct Functions {
    by_name: HashMap<String, Function>,
    /// Mutable statics: mangled name -> (address, size).
    statics: HashMap<String, (u64, u64)>,
    /// The same, by address.
    statics_at: HashMap<u64, String>,
    /// The addresses its `R_X86_64_RELATIVE` dynamic relocations store (function pointers in
    /// vtables and statics); read with [`Functions::read_with_references`] only.
    data_references: HashSet<u64>,
}

impl Functions {
    /// Reads the functions with code (`STT_FUNC`, defined, non-empty) and the mutable statics
    /// (`STT_OBJECT` in writable data, not thread-local) of the ELF file at `path` from its
    /// symbol table (local symbols included), keeping those whose mangled name `keep` accepts.
    /// The file is read piecemeal (a debug executable may be hundreds of megabytes): its
    /// headers, symbol and string tables, and the first bytes of each kept function.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or is not an object file.
    pub(crate) fn read(path: &Path, keep: &dyn Fn(&str) -> bool) -> anyhow::Result<Functions> {
        Self::read_file(path, keep, false)
    }

    /// [`Functions::read`], and what each kept function's code refers to (decoded whole) and
    /// the addresses the dynamic relocations store: what [`Functions::start_up_only`] needs.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or is not an object file.
    pub(crate) fn read_with_references(
        path: &Path,
        keep: &dyn Fn(&str) -> bool,
    ) -> anyhow::Result<Functions> {
        Self::read_file(path, keep, true)
    }

    fn read_file(
        path: &Path,
        keep: &dyn Fn(&str) -> bool,
        references: bool,
    ) -> anyhow::Result<Functions> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open `{}`", path.display()))?;
        let cache = object::ReadCache::new(file);
        let object = object::File::parse(&cache)
            .with_context(|| format!("`{}` is not an object file", path.display()))?;
        let mut functions = Functions::default();
        // The GOT's slots that hold a function's address (an `R_X86_64_RELATIVE` relocation
        // into `.got`): code that calls through one (`mov slot(%rip), %rax; call *%rax`, as
        // calls of an exported function are compiled in position-independent code) calls that
        // function, and the slot is no pointer the program stored.
        let relative = if references {
            relative_relocations(&object)
        } else {
            Vec::new()
        };
        let got: HashMap<u64, u64> = got_slots(&object, &relative).collect();
        for symbol in object.symbols() {
            if !symbol.is_definition() || symbol.size() == 0 {
                continue;
            }
            let Ok(name) = symbol.name() else { continue };
            if !keep(name) {
                continue;
            }
            let Some(index) = symbol.section_index() else {
                continue;
            };
            if symbol.kind() == SymbolKind::Data {
                let writable = object.section_by_index(index).is_ok_and(|section| {
                    matches!(
                        section.kind(),
                        SectionKind::Data | SectionKind::UninitializedData
                    )
                });
                if writable {
                    functions
                        .statics
                        .insert(name.to_owned(), (symbol.address(), symbol.size()));
                    functions
                        .statics_at
                        .insert(symbol.address(), name.to_owned());
                }
                continue;
            }
            if symbol.kind() != SymbolKind::Text {
                continue;
            }
            let (address, size) = (symbol.address(), symbol.size());
            let code = object
                .section_by_index(index)
                .ok()
                .and_then(|section| section.data_range(address, size).ok()?);
            if let Some(code) = code {
                functions.by_name.insert(
                    name.to_owned(),
                    Function {
                        address,
                        size,
                        bytes: code[..code.len().min(GUARD_BYTES as usize)].to_vec(),
                        loops_into_entry: loops_into_entry(code, address),
                        references: if references {
                            code_references(code, address, &got)
                        } else {
                            Vec::new()
                        },
                    },
                );
            }
        }
        if references {
            functions.data_references = relative
                .iter()
                .filter(|(at, _)| !got.contains_key(at))
                .map(|(_, target)| *target)
                .collect();
        }
        Ok(functions)
    }

    /// The functions `own` accepts (mangled names) that the running program calls only while it
    /// starts, or whose one call runs until the program ends: those reached by direct calls
    /// outside loops from `main` (mangled name), and from what those call outside their loops,
    /// and by nothing else. A function is called again, and left out, when it is reached
    /// from a call in a loop of any function; from any function `own` rejects (another crate's
    /// generic instance); through an address taken in code or stored in data (a function
    /// pointer, a vtable); when no function read calls it at all (its callers are other
    /// crates' code, a thread's start, a closure handed to a library); or when it calls itself.
    /// `main` itself is not in the set.
    /// Needs [`Functions::read_with_references`].
    pub(crate) fn start_up_only(&self, main: &str, own: &dyn Fn(&str) -> bool) -> HashSet<String> {
        let Some(main_function) = self.by_name.get(main) else {
            return HashSet::new();
        };
        let at: HashMap<u64, &str> = self
            .by_name
            .iter()
            .map(|(name, function)| (function.address, name.as_str()))
            .collect();
        let called: HashSet<u64> = self
            .by_name
            .values()
            .flat_map(|function| function.references.iter().map(|(target, _)| *target))
            .collect();
        let mut again: Vec<&str> = Vec::new();
        for (name, function) in &self.by_name {
            if name == main {
                continue;
            }
            // Called by no function read, stored in data, or calling itself (a recursion
            // enters it again and again).
            let recursive = function
                .references
                .iter()
                .any(|(target, _)| *target == function.address);
            if !called.contains(&function.address)
                || self.data_references.contains(&function.address)
                || recursive
            {
                again.push(name);
            }
            for (target, how) in &function.references {
                if (!own(name) || *how != Use::Call)
                    && let Some(callee) = at.get(target)
                {
                    again.push(callee);
                }
            }
        }
        for (target, how) in &main_function.references {
            if *how != Use::Call
                && let Some(callee) = at.get(target)
            {
                again.push(callee);
            }
        }
        let again = self.closure(again, &at, &HashSet::new(), main, false);
        let once: Vec<&str> = main_function
            .references
            .iter()
            .filter(|(_, how)| *how == Use::Call)
            .filter_map(|(target, _)| at.get(target).copied())
            .collect();
        self.closure(once, &at, &again, main, true)
            .into_iter()
            .filter(|name| own(name))
            .map(str::to_owned)
            .collect()
    }

    /// The functions `start` reach through references (only calls outside loops when
    /// `calls_only`), never entering `main` or `excluded`.
    fn closure<'a>(
        &'a self,
        start: Vec<&'a str>,
        at: &HashMap<u64, &'a str>,
        excluded: &HashSet<&'a str>,
        main: &str,
        calls_only: bool,
    ) -> HashSet<&'a str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut queue = start;
        while let Some(name) = queue.pop() {
            if name == main || excluded.contains(name) || !seen.insert(name) {
                continue;
            }
            for (target, how) in &self.by_name[name].references {
                if (!calls_only || *how == Use::Call)
                    && let Some(callee) = at.get(target)
                {
                    queue.push(callee);
                }
            }
        }
        seen
    }

    /// The mutable static with the mangled name `name`: its address and size.
    pub(crate) fn static_named(&self, name: &str) -> Option<(u64, u64)> {
        self.statics.get(name).copied()
    }

    /// The GOT entries of this module (a patch file at `path`) that hold the address of one of
    /// its own mutable statics: `(entry address, static address, static's mangled name)`.
    /// They are the `R_X86_64_RELATIVE` dynamic relocations inside `.got`.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed.
    pub(crate) fn got_statics(&self, path: &Path) -> anyhow::Result<Vec<(u64, u64, String)>> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let object = object::File::parse(&*data)
            .with_context(|| format!("`{}` is not an object file", path.display()))?;
        let relative = relative_relocations(&object);
        Ok(got_slots(&object, &relative)
            .filter_map(|(at, target)| {
                let name = self.statics_at.get(&target)?;
                Some((at, target, name.clone()))
            })
            .collect())
    }

    /// The functions (mangled names) whose code calls the function `name` directly, each with
    /// how (its strongest call); `None` when its address is taken, in code or in data (a
    /// function pointer, a vtable): calls through it cannot be told. Needs
    /// [`Functions::read_with_references`].
    pub(crate) fn callers(&self, name: &str) -> Option<Vec<(&str, Use)>> {
        let address = self.by_name.get(name)?.address;
        if self.data_references.contains(&address) {
            return None;
        }
        let mut callers = Vec::new();
        for (caller, function) in &self.by_name {
            for (target, how) in &function.references {
                if *target == address {
                    if *how == Use::Address {
                        return None;
                    }
                    callers.push((caller.as_str(), *how));
                }
            }
        }
        callers.sort_unstable();
        callers.dedup();
        Some(callers)
    }

    /// The function with the mangled name `name`, if the module defines it.
    pub(crate) fn get(&self, name: &str) -> Option<&Function> {
        self.by_name.get(name)
    }

    /// The mangled names of every function.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// Every `R_X86_64_RELATIVE` dynamic relocation of `object` (the dynamic loader stores an
/// address of the module itself there): `(where, the address stored)`, in the file's order.
fn relative_relocations<'d, R: object::ReadRef<'d>>(
    object: &object::File<'d, R>,
) -> Vec<(u64, u64)> {
    object
        .dynamic_relocations()
        .into_iter()
        .flatten()
        .filter(|(_, relocation)| {
            matches!(
                relocation.flags(),
                object::RelocationFlags::Elf {
                    r_type: object::elf::R_X86_64_RELATIVE
                }
            )
        })
        .filter_map(|(at, relocation)| Some((at, u64::try_from(relocation.addend()).ok()?)))
        .collect()
}

/// The slots of `object`'s `.got` section among `relative` (see [`relative_relocations`]), each
/// with the address it holds.
fn got_slots<'r, 'd, R: object::ReadRef<'d>>(
    object: &object::File<'d, R>,
    relative: &'r [(u64, u64)],
) -> impl Iterator<Item = (u64, u64)> + 'r {
    let range = object
        .section_by_name(".got")
        .map_or(0..0, |got| got.address()..got.address() + got.size());
    relative
        .iter()
        .filter(move |(at, _)| range.contains(at))
        .copied()
}

/// What the code of a function at `address` refers to outside itself, each target once with
/// its strongest use: direct calls and jumps (in a loop when their basic block lies on a cycle
/// of the function's control flow graph), and RIP-relative addresses. A load of a slot of `got`
/// (see [`got_slots`]) refers to the address the slot holds: a call when the next instruction
/// calls the register loaded (or the instruction calls through the slot), an address otherwise.
/// Decoding stops at the first byte that does not decode (padding); other indirect calls are
/// not followed, and a function with an indirect jump (a `match`'s jump table) counts every call
/// as in a loop.
fn code_references(code: &[u8], address: u64, got: &HashMap<u64, u64>) -> Vec<(u64, Use)> {
    use iced_x86::{Decoder, DecoderOptions, FlowControl, Mnemonic, OpKind};
    let own = address..address + code.len() as u64;
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = iced_x86::Instruction::default();
    // Each instruction: its address, the end of it, how control leaves it, and its direct
    // branch target inside the function.
    let mut decoded: Vec<(u64, u64, FlowControl, Option<u64>)> = Vec::new();
    let mut found: Vec<(u64, u64, bool)> = Vec::new();
    let mut indirect = false;
    // A GOT slot's address just loaded: the register, the load's address and the target.
    let mut loaded: Option<(iced_x86::Register, u64, u64)> = None;
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        let ip = instruction.ip();
        let flow = instruction.flow_control();
        indirect |= flow == FlowControl::IndirectBranch;
        if let Some((register, at, target)) = loaded.take() {
            let calls_it = flow == FlowControl::IndirectCall
                && instruction.op0_kind() == OpKind::Register
                && instruction.op0_register() == register;
            found.push(if calls_it {
                (ip, target, true)
            } else {
                (at, target, false)
            });
        }
        if instruction.is_ip_rel_memory_operand()
            && let Some(&target) = got.get(&instruction.ip_rel_memory_address())
        {
            if flow == FlowControl::IndirectCall {
                found.push((ip, target, true));
            } else if instruction.mnemonic() == Mnemonic::Mov
                && instruction.op0_kind() == OpKind::Register
            {
                loaded = Some((instruction.op0_register(), ip, target));
            } else {
                found.push((ip, target, false));
            }
            decoded.push((ip, instruction.next_ip(), flow, None));
            continue;
        }
        let direct = matches!(
            instruction.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        );
        let mut inside = None;
        if direct {
            let target = instruction.near_branch_target();
            if own.contains(&target) {
                inside = Some(target);
            } else {
                found.push((ip, target, true));
            }
        } else if instruction.is_ip_rel_memory_operand() && instruction.mnemonic() != Mnemonic::Nop
        {
            found.push((ip, instruction.ip_rel_memory_address(), false));
        }
        decoded.push((ip, instruction.next_ip(), flow, inside));
    }
    if let Some((_, at, target)) = loaded {
        found.push((at, target, false));
    }
    let cyclic = if indirect {
        None
    } else {
        Some(cyclic_blocks(&decoded))
    };
    let mut references: HashMap<u64, Use> = HashMap::new();
    for (ip, target, call) in found {
        let how = if !call {
            Use::Address
        } else {
            match cyclic.as_ref().map_or(Loop::Some, |cyclic| cyclic(ip)) {
                Loop::None => Use::Call,
                Loop::Some => Use::CallInLoop,
                Loop::Endless => Use::CallInEndlessLoop,
            }
        };
        let known = references.entry(target).or_insert(how);
        *known = (*known).max(how);
    }
    let mut references: Vec<(u64, Use)> = references.into_iter().collect();
    references.sort_unstable();
    references
}

/// Whether an instruction lies in a loop of its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loop {
    None,
    /// On a cycle of the control flow graph.
    Some,
    /// On a cycle that no edge leaves: no branch out, no return.
    Endless,
}

/// A test of whether the instruction at an address lies on a cycle of the control flow graph of
/// `decoded` (a function's instructions in order: address, end, flow, branch target inside the
/// function): the basic blocks are split at branch targets and after branches, linked by
/// fall-through and direct jumps, and grouped into strongly connected components (Tarjan's
/// algorithm, without recursion).
fn cyclic_blocks(
    decoded: &[(u64, u64, iced_x86::FlowControl, Option<u64>)],
) -> impl Fn(u64) -> Loop + use<> {
    use iced_x86::FlowControl;
    let mut leaders: Vec<u64> = decoded.first().map(|first| first.0).into_iter().collect();
    for (_, end, flow, target) in decoded {
        leaders.extend(target);
        if !matches!(
            flow,
            FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall
        ) {
            leaders.push(*end);
        }
    }
    leaders.sort_unstable();
    leaders.dedup();
    let block_of = |at: u64| {
        leaders
            .partition_point(|&leader| leader <= at)
            .checked_sub(1)
    };
    // One node more than the blocks: where control leaves the function (a return, a jump or
    // fall-through out of it).
    let out = leaders.len();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); leaders.len() + 1];
    for (index, (ip, _, flow, target)) in decoded.iter().enumerate() {
        let Some(block) = block_of(*ip) else { continue };
        if let Some(target) = target.and_then(block_of) {
            edges[block].push(target);
        }
        let leaves = matches!(flow, FlowControl::Return)
            || (matches!(flow, FlowControl::UnconditionalBranch) && target.is_none());
        if leaves {
            edges[block].push(out);
        }
        let last = decoded
            .get(index + 1)
            .is_none_or(|next| leaders.binary_search(&next.0).is_ok());
        let falls = !matches!(
            flow,
            FlowControl::UnconditionalBranch
                | FlowControl::IndirectBranch
                | FlowControl::Return
                | FlowControl::Exception
                | FlowControl::Interrupt
        );
        if last && falls {
            match decoded.get(index + 1).and_then(|next| block_of(next.0)) {
                Some(next) => edges[block].push(next),
                None => edges[block].push(out),
            }
        }
    }
    let (component, on_cycle) = strongly_connected(&edges);
    // A cycle is endless when no edge of its blocks leads out of their component.
    let mut leaves = vec![false; edges.len()];
    for (block, targets) in edges.iter().enumerate() {
        if targets
            .iter()
            .any(|&target| component[target] != component[block])
        {
            leaves[component[block]] = true;
        }
    }
    move |at: u64| {
        let Some(block) = leaders
            .partition_point(|&leader| leader <= at)
            .checked_sub(1)
        else {
            return Loop::None;
        };
        match (on_cycle[block], leaves[component[block]]) {
            (false, _) => Loop::None,
            (true, true) => Loop::Some,
            (true, false) => Loop::Endless,
        }
    }
}

/// For each node of the graph `edges` (successors by node), the number of its strongly
/// connected component (below the number of nodes), and whether it lies on a cycle: in a
/// component of more than one node, or with an edge to itself.
fn strongly_connected(edges: &[Vec<usize>]) -> (Vec<usize>, Vec<bool>) {
    const UNSEEN: usize = usize::MAX;
    let count = edges.len();
    let (mut index, mut low) = (vec![UNSEEN; count], vec![0; count]);
    let mut on_stack = vec![false; count];
    let mut stack: Vec<usize> = Vec::new();
    let mut on_cycle = vec![false; count];
    let mut component = vec![0; count];
    let mut next_index = 0;
    for root in 0..count {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, next successor to visit)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut at)) = work.last_mut() {
            if let Some(&next) = edges[node].get(*at) {
                *at += 1;
                if index[next] == UNSEEN {
                    index[next] = next_index;
                    low[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(index[next]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut members = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    members.push(member);
                    if member == node {
                        break;
                    }
                }
                let cycle = members.len() > 1 || edges[node].contains(&node);
                for member in members {
                    on_cycle[member] = cycle;
                    component[member] = node;
                }
            }
        }
    }
    (component, on_cycle)
}

/// Whether the code of a function at `address` branches into its own first five bytes (after
/// the first): x86-64 decoded with iced-x86; an undecodable function counts as one that does.
/// Indirect jumps (a `match`'s jump table) are not followed.
fn loops_into_entry(code: &[u8], address: u64) -> bool {
    use iced_x86::{Decoder, DecoderOptions, OpKind};
    let entry = address + 1..address + 5;
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = iced_x86::Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            // Padding or data after the last instruction; a function's own code decodes.
            return instruction.ip() < address + 5;
        }
        // A direct jump, conditional jump or call: its operand is a near branch.
        let direct = matches!(
            instruction.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        );
        if direct && entry.contains(&instruction.near_branch_target()) {
            return true;
        }
    }
    false
}

/// The redirections that make the functions of `patch` that `wanted` accepts (by mangled name)
/// the ones that run: the same function's entry in each module of `modules` (`(0, the
/// executable)`, then `(patch id, its functions)` for every patch loaded before) jumps to the
/// patch's. A function that a module lacks (new in the patch) needs no entry there. Also
/// returns, by mangled name, the wanted functions whose entry cannot be redirected (see
/// [`Function::loops_into_entry`]), and those that no module has.
pub(crate) fn redirects(
    patch: &Functions,
    wanted: &dyn Fn(&str) -> bool,
    modules: &[(u64, &Functions)],
) -> Planned {
    let mut names: Vec<&str> = patch.names().filter(|name| wanted(name)).collect();
    names.sort_unstable();
    let mut redirects = Vec::new();
    let mut blocked = Vec::new();
    let mut unmatched = Vec::new();
    for name in names {
        let new = &patch.by_name[name];
        if !modules.iter().any(|(_, module)| module.get(name).is_some()) {
            unmatched.push(name.to_owned());
        }
        for (from, module) in modules {
            if let Some(old) = module.get(name) {
                if old.loops_into_entry {
                    blocked.push(name.to_owned());
                    break;
                }
                redirects.push(Redirect {
                    from: *from,
                    at: old.address,
                    size: old.size,
                    to: new.address,
                    at_bytes: old.bytes.clone(),
                    to_bytes: new.bytes.clone(),
                    into: None,
                });
            }
        }
    }
    Planned {
        redirects,
        blocked,
        unmatched,
    }
}

/// What [`redirects`] found.
#[derive(Debug, Default)]
pub(crate) struct Planned {
    /// The entries to redirect.
    pub(crate) redirects: Vec<Redirect>,
    /// Functions whose entry cannot be redirected: their code loops back into it.
    pub(crate) blocked: Vec<String>,
    /// Functions that no module has under that symbol: new ones, or ones whose symbol changed.
    pub(crate) unmatched: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(functions: &[(&str, u64)]) -> Functions {
        Functions {
            by_name: functions
                .iter()
                .map(|(name, address)| {
                    let function = Function {
                        address: *address,
                        size: 0x40,
                        bytes: address.to_le_bytes().to_vec(),
                        loops_into_entry: *name == "busy",
                        references: Vec::new(),
                    };
                    ((*name).to_owned(), function)
                })
                .collect(),
            ..Functions::default()
        }
    }

    /// A function of a test module: its name, its address and what its code refers to.
    type Calling<'a> = (&'a str, u64, &'a [(u64, Use)]);

    /// A module whose functions (name, address) call or take the addresses given.
    fn calling(functions: &[Calling<'_>]) -> Functions {
        let mut module = module(
            &functions
                .iter()
                .map(|(name, address, _)| (*name, *address))
                .collect::<Vec<_>>(),
        );
        for (name, _, references) in functions {
            module.by_name.get_mut(*name).unwrap().references = references.to_vec();
        }
        module
    }

    #[test]
    fn functions_main_calls_before_its_loop_and_nothing_else_calls_run_only_at_start_up() {
        // main calls `banner` and `setup` (which calls `parse`) once, then in its loop `tick`,
        // which calls `parse` too and `format`; `setup` also takes the address of `handler`;
        // `spawn`, another crate's generic instance, calls `worker`; `callback` is stored in a
        // vtable; `orphan` is called by no function read; `run`, called once, calls `on_key` in
        // its own loop; `again` calls itself.
        let module = calling(&[
            (
                "main",
                0x1000,
                &[
                    (0x2000, Use::Call),
                    (0x3000, Use::Call),
                    (0x5000, Use::CallInLoop),
                    (0x8000, Use::Call),
                    (0xa000, Use::Call),
                    (0xe000, Use::Call),
                    (0x10000, Use::Call),
                ],
            ),
            ("banner", 0x2000, &[]),
            (
                "setup",
                0x3000,
                &[
                    (0x4000, Use::Call),
                    (0x7000, Use::Address),
                    (0xc000, Use::Call),
                ],
            ),
            ("parse", 0x4000, &[]),
            ("tick", 0x5000, &[(0x4000, Use::Call), (0x6000, Use::Call)]),
            ("format", 0x6000, &[]),
            ("handler", 0x7000, &[]),
            ("std::spawn", 0x8000, &[(0x9000, Use::Call)]),
            ("worker", 0x9000, &[]),
            ("callback", 0xa000, &[]),
            ("orphan", 0xb000, &[(0xd000, Use::Call)]),
            ("config", 0xc000, &[]),
            ("helper", 0xd000, &[]),
            ("run", 0xe000, &[(0xf000, Use::CallInLoop)]),
            ("again", 0x10000, &[(0x10000, Use::Call)]),
            ("on_key", 0xf000, &[]),
        ]);
        let mut module = module;
        module.data_references.insert(0xa000);
        let own = |name: &str| !name.starts_with("std::");
        let mut once: Vec<String> = module.start_up_only("main", &own).into_iter().collect();
        once.sort();
        assert_eq!(once, ["banner", "config", "run", "setup"]);
        assert_eq!(
            module.callers("parse"),
            Some(vec![("setup", Use::Call), ("tick", Use::Call)])
        );
        assert_eq!(
            module.callers("on_key"),
            Some(vec![("run", Use::CallInLoop)])
        );
        assert_eq!(module.callers("handler"), None);
        assert_eq!(module.callers("callback"), None);
        assert_eq!(module.callers("orphan"), Some(vec![]));
    }

    #[test]
    fn a_call_through_a_got_slot_calls_the_function_the_slot_holds() {
        // 0x1000: mov 0x2000(%rip), %rax; 0x1007: call *%rax; 0x1009: call *0x2008(%rip);
        // 0x100f: mov 0x2010(%rip), %rax; 0x1016: mov %rax, (%rdi); 0x1019: ret.
        let code = [
            0x48, 0x8b, 0x05, 0xf9, 0x0f, 0, 0, // mov 0x2000(%rip), %rax
            0xff, 0xd0, // call *%rax
            0xff, 0x15, 0xf9, 0x0f, 0, 0, // call *0x2008(%rip)
            0x48, 0x8b, 0x05, 0xfa, 0x0f, 0, 0, // mov 0x2010(%rip), %rax
            0x48, 0x89, 0x07, // mov %rax, (%rdi)
            0xc3, // ret
        ];
        let got = HashMap::from([(0x2000, 0x5000), (0x2008, 0x6000), (0x2010, 0x7000)]);
        assert_eq!(
            code_references(&code, 0x1000, &got),
            [
                (0x5000, Use::Call),
                (0x6000, Use::Call),
                // Loaded and stored: a function pointer, not a call.
                (0x7000, Use::Address)
            ]
        );
    }

    #[test]
    fn a_jump_back_to_a_join_point_is_no_loop() {
        // 0x1000: jne 0x100a; 0x1002: call 0x2000; 0x1007: call 0x3000 (the join point);
        // 0x100c: ret; 0x100d: call 0x4000; 0x1012: jmp 0x1007 (back, but no cycle).
        let code = [
            0x75, 0x0b, // jne +11 -> 0x100d
            0xe8, 0xf9, 0x0f, 0, 0, // call -> 0x2000
            0xe8, 0xf4, 0x1f, 0, 0,    // call -> 0x3000
            0xc3, // ret
            0xe8, 0xee, 0x2f, 0, 0, // call -> 0x4000
            0xeb, 0xf3, // jmp -13 -> 0x1007
        ];
        assert_eq!(
            code_references(&code, 0x1000, &HashMap::new()),
            [
                (0x2000, Use::Call),
                (0x3000, Use::Call),
                (0x4000, Use::Call)
            ]
        );
        // An indirect jump: every call may be in a loop.
        let mut indirect = code.to_vec();
        indirect.extend([0xff, 0xe0]); // jmp *%rax
        assert!(
            code_references(&indirect, 0x1000, &HashMap::new())
                .iter()
                .all(|(_, how)| *how == Use::CallInLoop)
        );
    }

    #[test]
    fn calls_in_a_loop_and_addresses_are_told_apart_in_real_code() {
        // 0x1000: call 0x2000; 0x1005: lea 0x3000(%rip),%rax; 0x100c: call 0x4000;
        // 0x1011: jmp 0x100c (a loop around the second call that nothing leaves).
        let code = [
            0xe8, 0xfb, 0x0f, 0, 0, // call +0xffb -> 0x2000
            0x48, 0x8d, 0x05, 0xf4, 0x1f, 0, 0, // lea 0x1ff4(%rip) -> 0x3000
            0xe8, 0xef, 0x2f, 0, 0, // call +0x2fef -> 0x4000
            0xeb, 0xf9, // jmp -7 -> 0x100c
        ];
        assert_eq!(
            code_references(&code, 0x1000, &HashMap::new()),
            [
                (0x2000, Use::Call),
                (0x3000, Use::Address),
                (0x4000, Use::CallInEndlessLoop)
            ]
        );
        // 0x1000: call 0x2000; 0x1005: jne 0x1000 (a loop that ends); 0x1007: ret.
        let ending = [0xe8, 0xfb, 0x0f, 0, 0, 0x75, 0xf9, 0xc3];
        assert_eq!(
            code_references(&ending, 0x1000, &HashMap::new()),
            [(0x2000, Use::CallInLoop)]
        );
    }

    #[test]
    fn each_wanted_function_is_redirected_in_every_module_that_has_it() {
        let host = module(&[
            ("f", 0x1000),
            ("g", 0x2000),
            ("main", 0x3000),
            ("busy", 0x4000),
        ]);
        let earlier = module(&[("f", 0x500), ("g", 0x600)]);
        let patch = module(&[
            ("f", 0x10),
            ("g", 0x20),
            ("h", 0x30),
            ("main", 0x40),
            ("busy", 0x50),
        ]);
        let wanted = |name: &str| ["f", "h", "busy"].contains(&name);
        let Planned {
            redirects,
            blocked,
            unmatched,
        } = redirects(&patch, &wanted, &[(0, &host), (3, &earlier)]);
        assert_eq!(blocked, ["busy"]);
        assert_eq!(unmatched, ["h"]);
        let found: Vec<(u64, u64, u64)> = redirects.iter().map(|r| (r.from, r.at, r.to)).collect();
        // `h` is new: nothing calls an older copy of it. `g` and `main` are not wanted.
        assert_eq!(found, [(0, 0x1000, 0x10), (3, 0x500, 0x10)]);
        assert_eq!(redirects[0].at_bytes, 0x1000_u64.to_le_bytes());
        assert_eq!(redirects[0].to_bytes, 0x10_u64.to_le_bytes());
        assert_eq!(redirects[1].size, 0x40);
    }

    #[test]
    fn a_loop_back_into_the_first_five_bytes_is_found() {
        // sub $0x38,%rsp; call +0; jmp back to the call (entry + 4).
        let looping = [0x48, 0x83, 0xec, 0x38, 0xe8, 0, 0, 0, 0, 0xeb, 0xf9];
        assert!(loops_into_entry(&looping, 0x1000));
        // The same jumping back to the entry itself: a recursion-like loop, harmless.
        let to_entry = [0x48, 0x83, 0xec, 0x38, 0xe8, 0, 0, 0, 0, 0xeb, 0xf5];
        assert!(!loops_into_entry(&to_entry, 0x1000));
        // mov $1,%eax; ret, then int3 padding.
        assert!(!loops_into_entry(
            &[0xb8, 1, 0, 0, 0, 0xc3, 0xcc, 0xcc],
            0x2000
        ));
    }

    /// A function of this test executable, found by name.
    #[inline(never)]
    fn a_function_this_test_reads() -> u64 {
        std::hint::black_box(41) + 1
    }

    #[test]
    fn a_function_is_read_with_the_bytes_it_has_in_memory() {
        assert_eq!(a_function_this_test_reads(), 42);
        let exe = std::env::current_exe().unwrap();
        let functions =
            Functions::read(&exe, &|name| name.contains("a_function_this_test_reads")).unwrap();
        let names: Vec<&str> = functions.names().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let function = functions.get(names[0]).unwrap();
        assert!(function.size >= 8, "{function:?}");
        let code = a_function_this_test_reads as fn() -> u64 as usize as *const u8;
        // SAFETY: the function's first 8 bytes are mapped, readable code (it is longer).
        let memory = unsafe { std::slice::from_raw_parts(code, 8) };
        assert_eq!(function.bytes, memory);
    }
}
