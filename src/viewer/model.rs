//! hydra's state and what every key does to it: the selection in each pane, the
//! thread groups, filters, the global search, alias jumps, zoom and help. Plain
//! data and plain functions (no terminal), so the headless screen, the
//! interactive UI and the tests drive the same code.

use crate::snapshot::tree::{self, Tree};
use crate::snapshot::{Scope, Snapshot, Value};
use tuirealm::event::{Key, KeyEvent, KeyModifiers};

/// The four panes, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Threads,
    Frames,
    Variables,
    Peripheral,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Threads, Pane::Frames, Pane::Variables, Pane::Peripheral];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Threads => "Threads",
            Pane::Frames => "Frames",
            Pane::Variables => "Variables",
            Pane::Peripheral => "Peripheral",
        }
    }
}

/// The peripheral tabs, 1–9.
pub const TABS: [&str; 9] =
    ["Summary", "Registers", "Maps", "Modules", "Attributes", "Environment", "Memory", "Source", "Kernel"];

/// Threads whose stacks are identical (same pcs), shown as one row `×N`.
#[derive(Debug, Clone)]
pub struct Group {
    pub members: Vec<usize>,
    pub expanded: bool,
}

/// One row of the Threads pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRow {
    pub thread: usize,
    pub group: usize,
    /// The group's first thread (the row that stands for the group when collapsed).
    pub leader: bool,
}

/// A place in the snapshot a search or an alias jump goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub thread: usize,
    pub frame: Option<usize>,
    /// The variable's path and the paths of its ancestors (expanded to show it).
    pub var: Option<(Vec<String>, String)>,
}

/// What is being typed on the bottom line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `/`: filters the list of this pane as it is typed.
    Filter(Pane),
    /// `f`: searches every thread's frames and variables on Enter.
    Global,
}

pub enum Outcome {
    Continue,
    Quit,
}

pub struct Hydra {
    pub snap: Snapshot,
    pub groups: Vec<Group>,
    pub focus: Pane,
    /// 1-based peripheral tab.
    pub tab: usize,
    /// Selection (index into the visible rows) of Threads, Frames, Variables; scroll of Peripheral.
    pub sel: [usize; 4],
    /// First row shown, per pane (kept by drawing).
    pub offset: [usize; 4],
    /// Rows a page holds, per pane (set by drawing).
    pub page: [usize; 4],
    /// How far the current peripheral tab scrolls (set by drawing).
    pub periph_scroll: usize,
    /// The filter of each pane (`/`).
    pub filters: [String; 4],
    pub input: Option<(Input, String)>,
    /// The last global search: its matches and where we are in them.
    pub found: Option<(String, Vec<Loc>, usize)>,
    /// The address `a` follows, once used.
    pub alias: Option<u64>,
    pub zoom: bool,
    pub help: bool,
    /// One line of news for the bottom bar (search results, alias position).
    pub message: String,
    pub tree: Tree,
    /// Where the store said this object belongs (shown in Summary), when opened from a store.
    pub origin: Vec<(String, String)>,
}

impl Hydra {
    pub fn new(snap: Snapshot) -> Hydra {
        let groups = group_threads(&snap);
        let mut h = Hydra {
            snap,
            groups,
            focus: Pane::Variables,
            tab: 1,
            sel: [0; 4],
            offset: [0; 4],
            page: [10; 4],
            periph_scroll: 0,
            filters: Default::default(),
            input: None,
            found: None,
            alias: None,
            zoom: false,
            help: false,
            message: String::new(),
            tree: Tree::default(),
            origin: Vec::new(),
        };
        let start = h.opening();
        h.go(&start);
        if start.var.is_none() {
            h.focus = Pane::Frames;
        }
        h
    }

    /// Where hydra opens: the faulting thread; the variable an analysis annotated (an
    /// alias of the fault address) or one holding the fault address; else the first
    /// frame with source (frame 0 of an abort is libc's raise, not the cause).
    fn opening(&self) -> Loc {
        let pid = self.snap.process.pid;
        let t = self
            .snap
            .threads
            .iter()
            .position(|t| t.faulted)
            .or_else(|| self.snap.threads.iter().position(|t| t.tid == pid))
            .unwrap_or(0);
        let Some(thread) = self.snap.threads.get(t) else { return Loc { thread: 0, frame: None, var: None } };
        for a in &self.snap.annotations {
            if let Scope::Variable(tid, f, name) = &a.scope
                && *tid == thread.tid
                && thread.frames.get(*f as usize).is_some_and(|fr| fr.variables.iter().any(|v| &v.name == name))
            {
                return Loc { thread: t, frame: Some(*f as usize), var: Some((vec![], name.clone())) };
            }
        }
        if let Some(addr) = self.snap.signal.as_ref().and_then(|s| s.fault_address) {
            // Pointers first; then integers (a small fault address computed from one).
            for ints in [false, true] {
                if let Some(l) = self.holders_of(addr, ints).into_iter().find(|l| l.thread == t) {
                    return l;
                }
            }
            // A fault in the null page (`p->field` with p NULL): the NULL pointer
            // nearest the fault is the likely culprit.
            // Only in the frames down to the first one with source: a NULL deeper in
            // the stack (libc's start code) says nothing about this fault.
            let top = thread.frames.iter().position(|f| f.file.is_some()).unwrap_or(0);
            if addr < 0x1000
                && addr != 0
                && let Some(l) =
                    self.holders_of(0, false).into_iter().find(|l| l.thread == t && l.frame.is_some_and(|f| f <= top))
            {
                return l;
            }
        }
        let f = thread.frames.iter().position(|f| f.file.is_some()).unwrap_or(0);
        Loc { thread: t, frame: Some(f), var: None }
    }

    // ---- rows of each pane ----

    pub fn thread_rows_all(&self) -> Vec<ThreadRow> {
        let mut rows = Vec::with_capacity(self.snap.threads.len());
        for (g, grp) in self.groups.iter().enumerate() {
            for (i, &t) in grp.members.iter().enumerate() {
                if i == 0 || grp.expanded {
                    rows.push(ThreadRow { thread: t, group: g, leader: i == 0 });
                }
            }
        }
        rows
    }

    pub fn thread_text(&self, r: &ThreadRow) -> String {
        let t = &self.snap.threads[r.thread];
        let grp = &self.groups[r.group];
        let count = if r.leader && grp.members.len() > 1 {
            format!(" ×{}{}", grp.members.len(), if grp.expanded { "▾" } else { "▸" })
        } else {
            String::new()
        };
        // Frame 0, and the innermost frame of the executable when that is another.
        let name = |f: &crate::snapshot::Frame| f.function.clone().unwrap_or_else(|| "??".into());
        let mut top = t.frames.first().map(name).unwrap_or_else(|| "??".into());
        let exe = self.snap.modules.iter().find(|m| m.is_executable).map(|m| base(&m.path).to_string());
        if let Some(app) = t.frames.iter().skip(1).find(|f| f.module.as_deref().map(base) == exe.as_deref())
            && t.frames.first().map(|f| f.module.as_deref().map(base)) != Some(exe.as_deref())
        {
            top = format!("{top} ‹ {}", name(app));
        }
        format!(
            "{}{}{:>7} {:<15} {}{} {}",
            if t.faulted { "!" } else { " " },
            if r.leader { "" } else { "  " },
            t.tid,
            t.name,
            t.state,
            count,
            top
        )
    }

    pub fn thread_rows(&self) -> Vec<ThreadRow> {
        let q = self.filters[0].to_lowercase();
        let all = self.thread_rows_all();
        if q.is_empty() {
            return all;
        }
        all.into_iter().filter(|r| self.thread_text(r).to_lowercase().contains(&q)).collect()
    }

    /// The selected thread's index in `snap.threads`.
    pub fn thread(&self) -> Option<usize> {
        let rows = self.thread_rows();
        rows.get(self.sel[0].min(rows.len().saturating_sub(1))).map(|r| r.thread)
    }

    pub fn frame_text(&self, t: usize, i: usize) -> String {
        let f = &self.snap.threads[t].frames[i];
        let func = f.function.clone().unwrap_or_else(|| "??".into());
        let place = match (&f.file, f.line) {
            (Some(file), Some(l)) => format!(" {}:{l}", base(file)),
            (Some(file), None) => format!(" {}", base(file)),
            _ => f.module.as_deref().map(|m| format!(" ({})", base(m))).unwrap_or_default(),
        };
        let trust = match f.trust {
            crate::snapshot::Trust::Context => "ctx",
            crate::snapshot::Trust::Cfi => "cfi",
            crate::snapshot::Trust::FramePointer => "fp",
            crate::snapshot::Trust::Scan => "scan",
        };
        format!("#{i:<3}{}{func}{place} [{trust}]", if f.inlined { "(inline) " } else { "" })
    }

    /// Visible frames of the selected thread (indices into its frames).
    pub fn frame_rows(&self) -> Vec<usize> {
        let Some(t) = self.thread() else { return Vec::new() };
        let q = self.filters[1].to_lowercase();
        (0..self.snap.threads[t].frames.len())
            .filter(|&i| q.is_empty() || self.frame_text(t, i).to_lowercase().contains(&q))
            .collect()
    }

    pub fn frame(&self) -> Option<usize> {
        let rows = self.frame_rows();
        rows.get(self.sel[1].min(rows.len().saturating_sub(1))).copied()
    }

    pub fn var_text(r: &tree::Row) -> String {
        let mark = if !r.expandable {
            "  "
        } else if r.expanded {
            "▾ "
        } else {
            "▸ "
        };
        let ty = if r.type_name.is_empty() { String::new() } else { format!("({}) ", r.type_name) };
        format!("{}{mark}{}: {ty}{}", "  ".repeat(r.depth), r.name, r.text)
    }

    pub fn var_rows(&mut self) -> Vec<tree::Row> {
        let (Some(t), Some(f)) = (self.thread(), self.frame()) else { return Vec::new() };
        let rows = self.tree.rows(&self.snap, t, f);
        let q = self.filters[2].to_lowercase();
        if q.is_empty() {
            return rows;
        }
        rows.into_iter().filter(|r| Self::var_text(r).to_lowercase().contains(&q)).collect()
    }

    pub fn var(&mut self) -> Option<tree::Row> {
        let rows = self.var_rows();
        let i = self.sel[2].min(rows.len().saturating_sub(1));
        rows.into_iter().nth(i)
    }

    fn len(&mut self, pane: Pane) -> usize {
        match pane {
            Pane::Threads => self.thread_rows().len(),
            Pane::Frames => self.frame_rows().len(),
            Pane::Variables => self.var_rows().len(),
            Pane::Peripheral => usize::MAX,
        }
    }

    // ---- keys ----

    pub fn key(&mut self, ev: &KeyEvent) -> Outcome {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(ev.code, Key::Char('c')) {
            return Outcome::Quit;
        }
        if let Some((what, mut text)) = self.input.take() {
            match ev.code {
                Key::Esc => {
                    if let Input::Filter(p) = what {
                        self.filters[p.index()].clear();
                    }
                    self.message.clear();
                }
                Key::Enter => match what {
                    Input::Filter(_) => {}
                    Input::Global => self.global_search(&text),
                },
                Key::Backspace => {
                    text.pop();
                    self.input = Some((what, text));
                }
                Key::Char(c) => {
                    text.push(c);
                    self.input = Some((what, text));
                }
                _ => self.input = Some((what, text)),
            }
            if let Some((Input::Filter(p), t)) = &self.input {
                self.filters[p.index()] = t.clone();
                self.sel[p.index()] = 0;
            }
            return Outcome::Continue;
        }
        if self.help {
            match ev.code {
                Key::Char('q') => return Outcome::Quit,
                _ => self.help = false,
            }
            return Outcome::Continue;
        }
        let p = self.focus;
        match ev.code {
            Key::Char('q') => return Outcome::Quit,
            Key::Tab => self.focus = Pane::ALL[(p.index() + 1) % 4],
            Key::BackTab => self.focus = Pane::ALL[(p.index() + 3) % 4],
            Key::Up | Key::Char('k') => self.step(p, -1),
            Key::Down | Key::Char('j') => self.step(p, 1),
            Key::PageUp => self.step(p, -(self.page[p.index()].max(1) as i64)),
            Key::PageDown => self.step(p, self.page[p.index()].max(1) as i64),
            Key::Home | Key::Char('g') => self.set_sel(p, 0),
            Key::End | Key::Char('G') => {
                let n = self.len(p);
                let last =
                    if p == Pane::Peripheral { self.periph_len().saturating_sub(1) } else { n.saturating_sub(1) };
                self.set_sel(p, last)
            }
            Key::Left | Key::Char('h') => self.fold(false),
            Key::Right | Key::Char('l') => self.fold(true),
            Key::Enter => self.enter(),
            Key::Char(c @ '1'..='9') => {
                self.tab = c as usize - '0' as usize;
                self.sel[3] = 0;
            }
            Key::Char('/') => {
                self.input = Some((Input::Filter(p), self.filters[p.index()].clone()));
            }
            Key::Char('f') => self.input = Some((Input::Global, String::new())),
            Key::Char('n') => self.next_match(1),
            Key::Char('N') => self.next_match(-1),
            Key::Char('a') => self.alias_jump(),
            Key::Char('z') => self.zoom = !self.zoom,
            Key::Char('?') => self.help = true,
            Key::Esc => {
                if !self.filters[p.index()].is_empty() {
                    self.filters[p.index()].clear();
                } else {
                    self.zoom = false;
                }
                self.message.clear();
            }
            _ => {}
        }
        Outcome::Continue
    }

    fn step(&mut self, p: Pane, by: i64) {
        let cur = self.sel[p.index()] as i64;
        let next = (cur + by).max(0) as usize;
        let max =
            if p == Pane::Peripheral { self.periph_len().saturating_sub(1) } else { self.len(p).saturating_sub(1) };
        self.set_sel(p, next.min(max));
    }

    fn set_sel(&mut self, p: Pane, i: usize) {
        let changed = self.sel[p.index()] != i;
        self.sel[p.index()] = i;
        if changed {
            match p {
                Pane::Threads => {
                    self.sel[1] = 0;
                    self.sel[2] = 0;
                }
                Pane::Frames => self.sel[2] = 0,
                _ => {}
            }
        }
    }

    /// Lines of the current peripheral tab beyond its first screen (set by drawing).
    fn periph_len(&self) -> usize {
        self.periph_scroll + 1
    }

    fn fold(&mut self, open: bool) {
        match self.focus {
            Pane::Threads => {
                let rows = self.thread_rows();
                let Some(r) = rows.get(self.sel[0]).cloned() else { return };
                if self.groups[r.group].members.len() > 1 {
                    self.groups[r.group].expanded = open;
                    // Stay on the group's row when it folds under the selection.
                    let rows = self.thread_rows();
                    let i = rows.iter().position(|x| x.group == r.group && (x.thread == r.thread || !open));
                    self.sel[0] = i.unwrap_or(0);
                }
            }
            Pane::Variables => {
                let (Some(t), Some(f)) = (self.thread(), self.frame()) else { return };
                let Some(r) = self.var() else { return };
                if open {
                    if r.expandable {
                        self.tree.set_expanded(t, f, &r.path, true);
                    }
                } else if r.expanded {
                    self.tree.set_expanded(t, f, &r.path, false);
                } else if r.depth > 0 {
                    // Go to the parent.
                    let rows = self.var_rows();
                    let i = self.sel[2].min(rows.len().saturating_sub(1));
                    if let Some(j) = rows[..i].iter().rposition(|x| x.depth + 1 == r.depth) {
                        self.sel[2] = j;
                    }
                }
            }
            Pane::Frames => {
                if open {
                    self.focus = Pane::Variables;
                } else {
                    self.focus = Pane::Threads;
                }
            }
            Pane::Peripheral => {
                self.tab = if open { self.tab % 9 + 1 } else { (self.tab + 7) % 9 + 1 };
                self.sel[3] = 0;
            }
        }
    }

    fn enter(&mut self) {
        match self.focus {
            Pane::Threads => {
                let rows = self.thread_rows();
                match rows.get(self.sel[0]) {
                    Some(r) if r.leader && self.groups[r.group].members.len() > 1 && !self.groups[r.group].expanded => {
                        self.fold(true)
                    }
                    _ => self.focus = Pane::Frames,
                }
            }
            Pane::Frames => self.focus = Pane::Variables,
            Pane::Variables => {
                if let Some(r) = self.var() {
                    if r.expandable {
                        self.fold(!r.expanded);
                    } else if let Some(a) = r.points_to.or(r.address) {
                        // A leaf: show its memory.
                        let _ = a;
                        self.tab = 7;
                        self.sel[3] = 0;
                    }
                }
            }
            Pane::Peripheral => {}
        }
    }

    // ---- locations: going to one, search, aliases ----

    /// Selects a location: its thread, frame and variable, clearing filters that hide them.
    pub fn go(&mut self, l: &Loc) {
        if l.thread >= self.snap.threads.len() {
            return;
        }
        self.filters = Default::default();
        if let Some(g) = self.groups.iter().position(|g| g.members.contains(&l.thread))
            && self.groups[g].members[0] != l.thread
        {
            self.groups[g].expanded = true;
        }
        let rows = self.thread_rows();
        self.sel[0] = rows.iter().position(|r| r.thread == l.thread).unwrap_or(0);
        self.sel[1] = l.frame.unwrap_or(0);
        self.sel[2] = 0;
        if let (Some(f), Some((chain, path))) = (l.frame, &l.var) {
            for c in chain {
                self.tree.set_expanded(l.thread, f, c, true);
            }
            let rows = self.var_rows();
            self.sel[2] = rows.iter().position(|r| &r.path == path).unwrap_or(0);
            self.focus = Pane::Variables;
        } else if l.frame.is_some() {
            self.focus = Pane::Frames;
        } else {
            self.focus = Pane::Threads;
        }
    }

    /// Where the selection is, as a location.
    fn here(&mut self) -> Loc {
        let thread = self.thread().unwrap_or(0);
        let frame = self.frame();
        let var = if self.focus == Pane::Variables { self.var().map(|r| (vec![], r.path)) } else { None };
        Loc { thread, frame, var }
    }

    /// Every variable (and nested value) holding or located at `addr`, in thread order.
    pub fn holders(&self, addr: u64) -> Vec<Loc> {
        self.holders_of(addr, false)
    }

    /// [`Self::holders`]; with `ints`, integers equal to a small address count too.
    fn holders_of(&self, addr: u64, ints: bool) -> Vec<Loc> {
        let big = addr > 0xfff || ints;
        let mut out = Vec::new();
        for (t, th) in self.snap.threads.iter().enumerate() {
            for (f, fr) in th.frames.iter().enumerate() {
                for v in &fr.variables {
                    if v.address == Some(addr) && addr != 0 {
                        out.push(Loc { thread: t, frame: Some(f), var: Some((vec![], v.name.clone())) });
                    }
                    tree::walk(&v.name, &v.value, &mut Vec::new(), &mut |chain, _, path, val| {
                        // NULL is held by pointers only (every zero integer is not an alias).
                        let hit = match val {
                            Value::Pointer { address, .. } => *address == addr,
                            Value::Str { address, .. } => *address == addr && addr != 0,
                            Value::UInt(u) => *u == addr && big && addr != 0,
                            Value::Int(i) => *i as u64 == addr && big && addr != 0,
                            _ => false,
                        };
                        if hit
                            && !out.last().is_some_and(|l: &Loc| {
                                l.thread == t && l.frame == Some(f) && l.var.as_ref().is_some_and(|(_, p)| p == path)
                            })
                        {
                            out.push(Loc { thread: t, frame: Some(f), var: Some((chain.to_vec(), path.to_string())) });
                        }
                    });
                }
            }
        }
        out
    }

    /// `a`: the next place holding the same address as the selection (a pointer
    /// variable's target), else the fault address.
    fn alias_jump(&mut self) {
        let picked =
            if self.focus == Pane::Variables { self.var().and_then(|r| r.points_to).filter(|a| *a != 0) } else { None };
        let fault = self.snap.signal.as_ref().and_then(|s| s.fault_address);
        let Some(addr) = picked.or(self.alias).or(fault) else {
            self.message = "a: select a pointer variable (this snapshot has no fault address)".into();
            return;
        };
        self.alias = Some(addr);
        let all = self.holders(addr);
        if all.is_empty() {
            self.message = format!("no variable holds 0x{addr:x}");
            return;
        }
        let here = self.here();
        let same = |l: &Loc| {
            l.thread == here.thread
                && l.frame == here.frame
                && l.var.as_ref().map(|v| &v.1) == here.var.as_ref().map(|v| &v.1)
        };
        let i = all.iter().position(same).map(|i| (i + 1) % all.len()).unwrap_or(0);
        let target = all[i].clone();
        self.go(&target);
        self.message = format!("0x{addr:x}: holder {}/{} (a: next)", i + 1, all.len());
    }

    /// `f` + Enter: every frame (function, file, module) and variable (name, value)
    /// of every thread whose text contains the query, case-insensitively.
    fn global_search(&mut self, q: &str) {
        let ql = q.to_lowercase();
        let mut found = Vec::new();
        if !ql.is_empty() {
            for (t, th) in self.snap.threads.iter().enumerate() {
                for (f, fr) in th.frames.iter().enumerate() {
                    let ftext = format!(
                        "{} {} {}",
                        fr.function.as_deref().unwrap_or(""),
                        fr.file.as_deref().unwrap_or(""),
                        fr.module.as_deref().unwrap_or("")
                    )
                    .to_lowercase();
                    if ftext.contains(&ql) {
                        found.push(Loc { thread: t, frame: Some(f), var: None });
                    }
                    for v in &fr.variables {
                        if v.name.to_lowercase().contains(&ql) || v.text.to_lowercase().contains(&ql) {
                            found.push(Loc { thread: t, frame: Some(f), var: Some((vec![], v.name.clone())) });
                        }
                    }
                }
            }
        }
        if found.is_empty() {
            self.message = format!("{q:?}: not found in any thread");
            self.found = None;
            return;
        }
        let first = found[0].clone();
        self.message = format!("{q:?}: match 1/{} (n/N: next/previous)", found.len());
        self.found = Some((q.to_string(), found, 0));
        self.go(&first);
    }

    fn next_match(&mut self, dir: i64) {
        if let Some((q, all, at)) = &mut self.found {
            let n = all.len() as i64;
            *at = ((*at as i64 + dir).rem_euclid(n)) as usize;
            let (l, msg) = (all[*at].clone(), format!("{q:?}: match {}/{}", *at + 1, n));
            self.go(&l);
            self.message = msg;
        } else {
            // In a filtered list every row matches: n/N walk them.
            let p = self.focus;
            self.step(p, dir);
        }
    }

    /// The keys that work in the focused pane, for the bottom bar.
    pub fn key_bar(&self) -> String {
        if let Some((what, text)) = &self.input {
            return match what {
                Input::Filter(p) => format!("filter {}: {text}▏  Enter keep · Esc clear", p.title()),
                Input::Global => format!("find in all threads: {text}▏  Enter search · Esc cancel"),
            };
        }
        if !self.message.is_empty() {
            return self.message.clone();
        }
        let pane = match self.focus {
            Pane::Threads => "↑↓ move · →/Enter expand ×N · ← fold",
            Pane::Frames => "↑↓ move · Enter variables",
            Pane::Variables => "↑↓ move · →← expand/fold · a alias",
            Pane::Peripheral => "↑↓ scroll · ←→ tab · 1-9 tab",
        };
        format!("{pane} · Tab pane · / filter · f find · z zoom · ? help · q quit")
    }
}

/// Groups threads with identical stacks; the faulted thread always stands alone, first.
fn group_threads(snap: &Snapshot) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_stack: std::collections::HashMap<Vec<u64>, usize> = std::collections::HashMap::new();
    for (i, t) in snap.threads.iter().enumerate() {
        if t.faulted {
            groups.insert(0, Group { members: vec![i], expanded: false });
            for g in by_stack.values_mut() {
                *g += 1;
            }
            continue;
        }
        let key: Vec<u64> = t.frames.iter().map(|f| f.pc).collect();
        match by_stack.get(&key) {
            Some(&g) => groups[g].members.push(i),
            None => {
                by_stack.insert(key, groups.len());
                groups.push(Group { members: vec![i], expanded: false });
            }
        }
    }
    groups
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
