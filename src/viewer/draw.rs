//! Drawing hydra's panes with ratatui: each pane is a bordered list whose title
//! says what it holds; the focused pane's border is bold and its selection
//! reversed. Colours only mark what matters (the fault, the selection, headings);
//! `--mono` / `NO_COLOR` keep the same marks with bold and reverse alone.

use super::model::{Hydra, Input, Pane, TABS};
use super::tabs::{self, Hl};
use crate::snapshot::{Scope, render::for_terminal};
use tuirealm::ratatui::Frame;
use tuirealm::ratatui::layout::{Constraint, Layout, Rect};
use tuirealm::ratatui::style::{Color, Modifier, Style};
use tuirealm::ratatui::text::{Line, Span};
use tuirealm::ratatui::widgets::{Block, Borders, Clear, Paragraph};

/// Colours on or off.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub mono: bool,
}

impl Theme {
    fn hl(self, hl: Hl) -> Style {
        let s = Style::default();
        match (hl, self.mono) {
            (Hl::Normal, _) => s,
            (Hl::Head, true) => s.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            (Hl::Head, false) => s.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            (Hl::Hot, true) => s.add_modifier(Modifier::BOLD),
            (Hl::Hot, false) => s.fg(Color::Red).add_modifier(Modifier::BOLD),
            (Hl::Warm, true) => s,
            (Hl::Warm, false) => s.fg(Color::Yellow),
            (Hl::Dim, true) => s,
            (Hl::Dim, false) => s.fg(Color::DarkGray),
        }
    }
}

/// The areas of the four panes and the bar: Threads | Frames over Variables |
/// Peripheral, or the focused pane alone when zoomed.
pub fn layout(h: &Hydra, area: Rect) -> ([Option<Rect>; 4], Rect) {
    let [main, bar] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    if h.zoom {
        let mut panes = [None; 4];
        panes[h.focus.index()] = Some(main);
        return (panes, bar);
    }
    let [top, bottom] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(main);
    let [threads, frames] = Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(top);
    let [vars, periph] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    ([Some(threads), Some(frames), Some(vars), Some(periph)], bar)
}

fn block(h: &Hydra, pane: Pane, title: String, theme: Theme) -> Block<'static> {
    let focused = h.focus == pane;
    let mut style = Style::default();
    if focused {
        style = style.add_modifier(Modifier::BOLD);
        if !theme.mono {
            style = style.fg(Color::LightGreen);
        }
    }
    let filter = &h.filters[pane.index()];
    let title = if filter.is_empty() { title } else { format!("{title} /{filter}") };
    Block::default().borders(Borders::ALL).border_style(style).title(format!(" {title} "))
}

/// Keeps the selection in view; returns the first row to show.
fn scroll(h: &mut Hydra, pane: Pane, rows: usize, height: usize) -> usize {
    let i = pane.index();
    h.page[i] = height.max(1);
    let sel = h.sel[i].min(rows.saturating_sub(1));
    h.sel[i] = sel;
    let mut off = h.offset[i];
    if sel < off {
        off = sel;
    }
    if height > 0 && sel >= off + height {
        off = sel + 1 - height;
    }
    if off + height > rows {
        off = rows.saturating_sub(height);
    }
    h.offset[i] = off;
    off
}

fn list(f: &mut Frame, area: Rect, h: &mut Hydra, pane: Pane, title: String, rows: Vec<(String, Hl)>, theme: Theme) {
    let b = block(h, pane, title, theme);
    let inner = b.inner(area);
    let height = inner.height as usize;
    let off = scroll(h, pane, rows.len(), height);
    let sel = h.sel[pane.index()];
    let focused = h.focus == pane;
    let lines: Vec<Line> = rows
        .into_iter()
        .enumerate()
        .skip(off)
        .take(height)
        .map(|(i, (text, hl))| {
            let mut style = theme.hl(hl);
            // The cursor is a glyph as well as a style: it survives NO_COLOR, a
            // screen reader and a plain-text screen in a bug report.
            let cursor = if i != sel {
                " "
            } else if focused {
                "›"
            } else {
                "·"
            };
            if i == sel {
                style = if focused {
                    style.add_modifier(Modifier::REVERSED)
                } else {
                    style.add_modifier(Modifier::UNDERLINED)
                };
            }
            Line::from(vec![Span::raw(cursor), Span::styled(for_terminal(&text).into_owned(), style)])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(b), area);
}

/// Draws one pane.
pub fn pane(f: &mut Frame, area: Rect, h: &mut Hydra, pane: Pane, theme: Theme) {
    match pane {
        Pane::Threads => {
            let rows: Vec<(String, Hl)> = h
                .thread_rows()
                .iter()
                .map(|r| (h.thread_text(r), if h.snap.threads[r.thread].faulted { Hl::Hot } else { Hl::Normal }))
                .collect();
            let title = format!("Threads ({})", h.snap.threads.len());
            list(f, area, h, pane, title, rows, theme);
        }
        Pane::Frames => {
            let t = h.thread();
            let rows: Vec<(String, Hl)> = match t {
                Some(t) => h
                    .frame_rows()
                    .into_iter()
                    .map(|i| {
                        let fr = &h.snap.threads[t].frames[i];
                        let hl = if fr.trust == crate::snapshot::Trust::Scan || fr.function.is_none() {
                            Hl::Dim
                        } else {
                            Hl::Normal
                        };
                        (h.frame_text(t, i), hl)
                    })
                    .collect(),
                None => Vec::new(),
            };
            let title = match t {
                Some(t) => format!("Frames of {} {}", h.snap.threads[t].tid, h.snap.threads[t].name),
                None => "Frames".into(),
            };
            list(f, area, h, pane, title, rows, theme);
        }
        Pane::Variables => {
            let (t, fr) = (h.thread(), h.frame());
            let tid = t.map(|t| h.snap.threads[t].tid).unwrap_or(0);
            let notes: Vec<(String, String)> = h
                .snap
                .annotations
                .iter()
                .filter_map(|a| match &a.scope {
                    Scope::Variable(at, af, name) if *at == tid && Some(*af as usize) == fr => {
                        Some((name.clone(), a.text.clone()))
                    }
                    _ => None,
                })
                .collect();
            let fault = h.snap.signal.as_ref().and_then(|s| s.fault_address).filter(|a| *a != 0);
            let rows: Vec<(String, Hl)> = h
                .var_rows()
                .iter()
                .map(|r| {
                    let mut text = Hydra::var_text(r);
                    let note = notes.iter().find(|(n, _)| r.depth == 0 && *n == r.path);
                    if let Some((_, note)) = note {
                        text.push_str(&format!("  ⚑ {note}"));
                    }
                    let hot = note.is_some() || (fault.is_some() && r.points_to == fault);
                    (text, if hot { Hl::Hot } else { Hl::Normal })
                })
                .collect();
            let title = match fr {
                Some(i) => format!("Variables of frame #{i}"),
                None => "Variables".into(),
            };
            let empty = rows.is_empty();
            list(f, area, h, pane, title, rows, theme);
            if empty && area.height > 2 {
                let inner = Rect { x: area.x + 2, y: area.y + 1, width: area.width.saturating_sub(2), height: 1 };
                f.render_widget(Paragraph::new("no variables captured for this frame").style(theme.hl(Hl::Dim)), inner);
            }
        }
        Pane::Peripheral => {
            let lines = tabs::lines(h);
            let mut title = String::new();
            for (i, name) in TABS.iter().enumerate() {
                if i + 1 == h.tab {
                    title.push_str(&format!("[{} {name}]", i + 1));
                } else {
                    title.push_str(&format!(" {}", i + 1));
                }
            }
            let b = block(h, pane, title, theme);
            let inner = b.inner(area);
            let height = inner.height as usize;
            let max_scroll = lines.len().saturating_sub(height);
            h.periph_scroll = max_scroll;
            h.sel[3] = h.sel[3].min(max_scroll);
            h.page[3] = height.max(1);
            let lines: Vec<Line> = lines
                .into_iter()
                .skip(h.sel[3])
                .take(height)
                .map(|(t, hl)| Line::from(Span::styled(for_terminal(&t).into_owned(), theme.hl(hl))))
                .collect();
            f.render_widget(Paragraph::new(lines).block(b), area);
        }
    }
}

/// The bottom line: what is being typed, news, or the keys of the focused pane.
pub fn bar(f: &mut Frame, area: Rect, h: &Hydra, theme: Theme) {
    let style = match (&h.input, theme.mono) {
        (Some((Input::Global, _)) | Some((Input::Filter(_), _)), _) => Style::default().add_modifier(Modifier::BOLD),
        (None, false) => Style::default().fg(Color::Black).bg(Color::Gray),
        (None, true) => Style::default().add_modifier(Modifier::REVERSED),
    };
    f.render_widget(Paragraph::new(for_terminal(&h.key_bar()).into_owned()).style(style), area);
}

/// Every key, for `?`.
pub const HELP: &[(&str, &str)] = &[
    ("Tab / BackTab", "next / previous pane"),
    ("Up Down / k j", "move"),
    ("Left Right / h l", "fold / expand (threads ×N, variables); tabs in Peripheral"),
    ("Enter", "select / expand"),
    ("PageUp PageDown", "a page"),
    ("Home End / g G", "first / last"),
    ("1 … 9", "Summary Registers Maps Modules Attributes Environment Memory Source Kernel"),
    ("/", "filter the focused list (Enter keeps, Esc clears)"),
    ("f", "find in every thread's frames and variables"),
    ("n / N", "next / previous match"),
    ("a", "next thread/frame/variable holding the same address (fault address first)"),
    ("z", "zoom the focused pane"),
    ("Esc", "clear the filter, leave zoom"),
    ("?", "this help"),
    ("q / Ctrl-C", "quit"),
];

pub fn help(f: &mut Frame, area: Rect, theme: Theme) {
    let w = area.width.min(90);
    let hgt = area.height.min(HELP.len() as u16 + 4);
    let r = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - hgt) / 2, width: w, height: hgt };
    let mut lines = vec![Line::from(Span::styled("hydra keys (any key closes)", theme.hl(Hl::Head)))];
    for (k, what) in HELP {
        lines.push(Line::from(format!("{k:<18} {what}")));
    }
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" help ")), r);
}
