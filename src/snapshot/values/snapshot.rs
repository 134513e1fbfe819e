//! Rendering every variable of a snapshot (its threads' stacks, a Go program's
//! goroutines, its globals) with one [`Renderer`] per thread of rendering, within the
//! per-frame read budget and the snapshot's node bound.

use super::{
    FOLLOW_NODES_PER_SNAPSHOT, FRAME_READ_BUDGET, MAX_NODES_PER_SNAPSHOT, MAX_NODES_PER_VALUE, Renderer, Table,
    TypeSource, VariableOptions, follow_share,
};
use crate::snapshot::{Memory, Regions, Snapshot, Variable};

/// Renders every variable of a version 3 snapshot again, from its type table, its
/// kept memory and its symbol names only (no core, no binaries): fills `text` and
/// `value` of each variable that has a type and a location. With the options
/// capture used, the result is what capture wrote, byte for byte.
pub fn render_snapshot(snap: &mut Snapshot, opts: &VariableOptions) {
    let kept = std::mem::take(&mut snap.memory);
    render_snapshot_from(snap, &Regions::new(&kept), opts);
    snap.memory = kept;
}

/// [`render_snapshot`] reading values from `memory` instead of the kept regions.
pub fn render_snapshot_from(snap: &mut Snapshot, memory: &dyn Memory, opts: &VariableOptions) {
    let mut threads = std::mem::take(&mut snap.threads);
    let mut globals = std::mem::take(&mut snap.globals);
    let frames = threads.iter_mut().map(|t| t.frames.iter_mut().map(|f| (f.inlined, &mut f.variables)).collect());
    render_variables(snap, frames, globals.iter_mut(), memory, opts);
    snap.threads = threads;
    snap.globals = globals;
}

/// Renders variables that are not (yet) in `snap` — a Go program's goroutines —
/// with its type table and symbol names, the same way as its threads': per stack,
/// per frame (inlined or not, as the read budget is per physical frame).
pub fn render_stacks(
    snap: &Snapshot,
    stacks: Vec<Vec<(bool, &mut Vec<Variable>)>>,
    memory: &dyn Memory,
    opts: &VariableOptions,
) {
    render_variables(snap, stacks, std::iter::empty(), memory, opts);
}

fn render_variables<'v>(
    snap: &Snapshot,
    stacks: impl IntoIterator<Item = Vec<(bool, &'v mut Vec<Variable>)>>,
    globals: impl Iterator<Item = &'v mut Variable>,
    memory: &dyn Memory,
    opts: &VariableOptions,
) {
    let names: std::collections::HashMap<(u64, bool), &str> =
        snap.symbols.iter().map(|s| ((s.address, s.code), s.name.as_str())).collect();
    let mut stacks: Vec<_> = stacks.into_iter().collect();
    let globals: Vec<&mut Variable> = globals.collect();
    let follow = follow_share(stacks.len());
    // Many stacks (a thousand threads) are rendered by several threads, each with an
    // even share of the snapshot's node bound; a few, by this one.
    let workers =
        if stacks.len() >= 64 { std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8) } else { 1 };
    if workers <= 1 {
        render_stacks_with(snap, &names, stacks, globals, memory, opts, MAX_NODES_PER_SNAPSHOT, follow);
        return;
    }
    let per = stacks.len().div_ceil(workers);
    let mut parts = Vec::new();
    while !stacks.is_empty() {
        let rest = stacks.split_off(per.min(stacks.len()));
        parts.push(std::mem::replace(&mut stacks, rest));
    }
    let share = MAX_NODES_PER_SNAPSHOT / parts.len();
    let names = &names;
    std::thread::scope(|s| {
        let mut parts = parts.into_iter();
        let first = parts.next().unwrap_or_default();
        for part in parts {
            s.spawn(move || render_stacks_with(snap, names, part, Vec::new(), memory, opts, share, follow));
        }
        render_stacks_with(snap, names, first, globals, memory, opts, share, follow);
    });
}

/// Renders `stacks` (per frame: inlined or not, its variables) and `globals` with
/// at most `nodes_left` nodes in all, and `follow` nodes behind pointers per stack
/// (each global has [`FOLLOW_NODES_PER_SNAPSHOT`], as when it was captured).
#[allow(clippy::too_many_arguments)]
fn render_stacks_with(
    snap: &Snapshot,
    names: &std::collections::HashMap<(u64, bool), &str>,
    stacks: Vec<Vec<(bool, &mut Vec<Variable>)>>,
    globals: Vec<&mut Variable>,
    memory: &dyn Memory,
    opts: &VariableOptions,
    mut nodes_left: usize,
    follow: usize,
) {
    let mut types = Table::new(&snap.types);
    let symbol = |a: u64| names.get(&(a, true)).map(|n| n.to_string());
    let data_symbol = |a: u64| names.get(&(a, false)).map(|n| n.to_string());
    let mut budget = FRAME_READ_BUDGET;
    let mut one = |v: &mut Variable, budget: &mut usize, follow: &mut usize| {
        let ty = v.type_id.and_then(|id| types.get(id));
        let lang = ty.as_ref().map(|t| t.lang).unwrap_or_default();
        if let Some(t) = ty.filter(|t| !t.name.is_empty()) {
            v.type_name = t.name.clone();
        }
        let mut r = Renderer {
            types: &mut types,
            lang,
            memory,
            opts,
            symbol: &symbol,
            data_symbol: &data_symbol,
            budget: *budget,
            nesting: 0,
            nodes: nodes_left.min(MAX_NODES_PER_VALUE),
            follow: *follow,
            follow_from: None,
        };
        let before = r.nodes;
        r.variable(v);
        *budget = r.budget;
        *follow = r.follow;
        nodes_left -= before - r.nodes;
    };
    for frames in stacks {
        let mut left = follow;
        for (inlined, vars) in frames {
            for v in vars.iter_mut() {
                one(v, &mut budget, &mut left);
            }
            if !inlined {
                budget = FRAME_READ_BUDGET;
            }
        }
    }
    for g in globals {
        budget = FRAME_READ_BUDGET;
        let mut each = FOLLOW_NODES_PER_SNAPSHOT;
        one(g, &mut budget, &mut each);
    }
}
