//! hydra, the terminal viewer of one snapshot: Threads, Frames, Variables and a
//! Peripheral pane of nine tabs, on tui-realm. The only module that names
//! tui-realm and ratatui; it reads snapshots only through [`crate::snapshot`].
//!
//! - [`model`]: the state and what each key does (no terminal);
//! - the variables tree is [`crate::snapshot::tree`] (the console shows it too);
//! - [`tabs`]: the peripheral tabs as lines; [`draw`]: ratatui drawing;
//! - [`app`]: the tui-realm application, shared by the terminal and `--screen`.

mod app;
mod draw;
pub mod model;
mod tabs;

use crate::snapshot::Snapshot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tuirealm::event::{Event, Key, KeyEvent, KeyModifiers, NoUserEvent};
use tuirealm::listener::EventListenerCfg;
use tuirealm::ratatui::layout::Size;
use tuirealm::terminal::{CrosstermTerminalAdapter, TerminalAdapter, TestEventListener, TestTerminalAdapter};

#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error("bad --keys: {0}")]
    BadKeys(String),
    #[error("bad --screen {0:?}: expected COLSxROWS, e.g. 120x40 (at least 20x6)")]
    BadScreen(String),
    #[error("hydra needs a terminal on stdin and stdout (or --screen COLSxROWS --keys … for a text rendering)")]
    NoTerminal,
    #[error("terminal: {0}")]
    Terminal(String),
    #[error("{0}")]
    Load(String),
}

/// How hydra looks.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// No colours (the command sets it for `--mono` and for `NO_COLOR`).
    pub mono: bool,
    /// What the store says about the object (project, object id, group), for Summary.
    pub origin: Vec<(String, String)>,
    /// Headless: print the time of the first screen and of each key to stderr.
    pub timings: bool,
}

/// What to view: a snapshot and the store's facts about it, or the error that
/// prevented loading it.
pub type Loaded = Result<Opened, String>;

/// A snapshot and the store's facts about it.
pub type Opened = (Snapshot, Vec<(String, String)>);

/// `COLSxROWS` → size.
pub fn parse_screen(s: &str) -> Result<Size, ViewerError> {
    let bad = || ViewerError::BadScreen(s.to_string());
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (c, r): (u16, u16) = (c.trim().parse().map_err(|_| bad())?, r.trim().parse().map_err(|_| bad())?);
    if c < 20 || r < 6 || c > 1000 || r > 1000 {
        return Err(bad());
    }
    Ok(Size::new(c, r))
}

/// Keys as tmux `send-keys` names them: `Tab`, `BTab`, `Up`, `Down`, `Left`,
/// `Right`, `Enter`, `Escape`, `BSpace`, `Space`, `Home`, `End`, `PageUp`/`PPage`,
/// `PageDown`/`NPage`, `C-x`, a single character, or a word whose characters are typed.
pub fn parse_keys(spec: &str) -> Result<Vec<KeyEvent>, ViewerError> {
    let mut out = Vec::new();
    let plain = |k: Key| KeyEvent::new(k, KeyModifiers::NONE);
    for word in spec.split_whitespace() {
        let named = match word {
            "Tab" => Some(Key::Tab),
            "BTab" => Some(Key::BackTab),
            "Up" => Some(Key::Up),
            "Down" => Some(Key::Down),
            "Left" => Some(Key::Left),
            "Right" => Some(Key::Right),
            "Enter" => Some(Key::Enter),
            "Escape" | "Esc" => Some(Key::Esc),
            "BSpace" => Some(Key::Backspace),
            "Space" => Some(Key::Char(' ')),
            "Home" => Some(Key::Home),
            "End" => Some(Key::End),
            "PageUp" | "PgUp" | "PPage" => Some(Key::PageUp),
            "PageDown" | "PgDn" | "NPage" => Some(Key::PageDown),
            _ => None,
        };
        if let Some(k) = named {
            out.push(plain(k));
        } else if let Some(c) = word.strip_prefix("C-") {
            let mut cs = c.chars();
            match (cs.next(), cs.next()) {
                (Some(ch), None) => out.push(KeyEvent::new(Key::Char(ch.to_ascii_lowercase()), KeyModifiers::CONTROL)),
                _ => return Err(ViewerError::BadKeys(format!("{word:?} is not a control key (C-c, C-l, …)"))),
            }
        } else {
            out.extend(word.chars().map(|c| plain(Key::Char(c))));
        }
    }
    Ok(out)
}

fn theme(opts: &Options) -> draw::Theme {
    draw::Theme { mono: opts.mono }
}

fn model(snap: Snapshot, origin: Vec<(String, String)>) -> model::Hydra {
    let mut h = model::Hydra::new(snap);
    h.origin = origin;
    h
}

/// Renders the screen after `keys` without a terminal: the same application and
/// loop as the interactive UI, on tui-realm's test terminal and event port. Returns
/// the screen as plain text, one line per row (trailing blanks trimmed).
pub fn headless(snap: Snapshot, size: Size, keys: &[KeyEvent], opts: &Options) -> Result<String, ViewerError> {
    headless_buffer(snap, size, keys, opts).map(|b| tuirealm::testing::buffer_to_string(&b))
}

/// [`headless`], returning the screen's cells (text and styles).
fn headless_buffer(
    snap: Snapshot,
    size: Size,
    keys: &[KeyEvent],
    opts: &Options,
) -> Result<tuirealm::ratatui::buffer::Buffer, ViewerError> {
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel::<Event<NoUserEvent>>();
    let listener = EventListenerCfg::default().add_port(
        Box::new(TestEventListener::new(rx)),
        Duration::from_millis(1),
        keys.len().max(1),
    );
    let mut screen =
        app::Screen::new(model(snap, opts.origin.clone()), listener, theme(opts)).map_err(ViewerError::Terminal)?;
    let mut term = TestTerminalAdapter::new(size).map_err(|e| ViewerError::Terminal(e.to_string()))?;
    // The first screen is drawn before any key, as in the terminal (drawing sets
    // the page sizes PageUp/PageDown use).
    screen.draw(&mut term).map_err(ViewerError::Terminal)?;
    let first = started.elapsed();
    for k in keys {
        tx.send(Event::Keyboard(*k)).map_err(|e| ViewerError::Terminal(e.to_string()))?;
    }
    // Each key is applied and the screen drawn, as when a person types; the time
    // of each (update + draw) is what `timings` reports.
    let mut applied = 0;
    let mut took = Vec::with_capacity(keys.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    'keys: while applied < keys.len() {
        for msg in screen.tick(Duration::from_millis(20)).map_err(ViewerError::Terminal)? {
            applied += 1;
            let t0 = Instant::now();
            let quit = screen.update(msg);
            screen.draw(&mut term).map_err(ViewerError::Terminal)?;
            took.push(t0.elapsed());
            if quit {
                break 'keys;
            }
        }
        if Instant::now() > deadline {
            return Err(ViewerError::Terminal(format!("only {applied} of {} keys arrived", keys.len())));
        }
    }
    if opts.timings {
        took.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = took.iter().map(|d| ms(*d)).sum::<f64>() / took.len().max(1) as f64;
        eprintln!(
            "hydra: first screen {:.1} ms; {} keys: mean {mean:.2} ms, max {:.2} ms per key (update + draw)",
            ms(first),
            took.len(),
            took.last().map(|d| ms(*d)).unwrap_or(0.0)
        );
    }
    Ok(term.raw().backend().buffer().clone())
}

/// Fails unless stdin and stdout are terminals (checked before anything is loaded).
pub fn check_terminal() -> Result<(), ViewerError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(ViewerError::NoTerminal);
    }
    Ok(())
}

/// Set by SIGTERM/SIGHUP/SIGINT: leave the loop and restore the terminal.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn catch_stop_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(SigHandler::Handler(on_stop), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
    }
}

/// Runs hydra in the terminal. `load` delivers the snapshot (or the error that
/// prevented loading it); when it is not there within a moment, the screen shows
/// a spinner until it is. Errors known before the terminal is taken are returned
/// without touching it; the terminal is restored on every way out (quit, error,
/// SIGTERM, and panic through tui-realm's crossterm adapter).
pub fn interactive(load: Receiver<Loaded>, opts: &Options) -> Result<(), ViewerError> {
    check_terminal()?;
    let early = match load.recv_timeout(Duration::from_millis(300)) {
        Ok(Ok(x)) => Some(x),
        Ok(Err(e)) => return Err(ViewerError::Load(e)),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => return Err(ViewerError::Load("loading stopped".into())),
    };
    catch_stop_signals();
    let term_err = |e: tuirealm::terminal::TerminalError| ViewerError::Terminal(e.to_string());
    let mut term = CrosstermTerminalAdapter::new().map_err(term_err)?;
    term.enable_raw_mode().map_err(term_err)?;
    term.enter_alternate_screen().map_err(term_err)?;
    let result = run_in(&mut term, early, &load, opts);
    let restored = term.restore().map_err(|e| ViewerError::Terminal(e.to_string()));
    result.and(restored)
}

fn run_in(
    term: &mut CrosstermTerminalAdapter,
    early: Option<Opened>,
    load: &Receiver<Loaded>,
    opts: &Options,
) -> Result<(), ViewerError> {
    let (snap, origin) = match early {
        Some(x) => x,
        None => match spin(term, load)? {
            Some(x) => x,
            None => return Ok(()),
        },
    };
    let listener = EventListenerCfg::default().crossterm_input_listener(Duration::from_millis(10), 64);
    let mut origin_all = opts.origin.clone();
    origin_all.extend(origin);
    let mut screen = app::Screen::new(model(snap, origin_all), listener, theme(opts)).map_err(ViewerError::Terminal)?;
    screen.draw(term).map_err(ViewerError::Terminal)?;
    while !STOP.load(Ordering::SeqCst) {
        let msgs = screen.tick(Duration::from_millis(50)).map_err(ViewerError::Terminal)?;
        if msgs.is_empty() {
            continue;
        }
        for msg in msgs {
            if screen.update(msg) {
                return Ok(());
            }
        }
        screen.draw(term).map_err(ViewerError::Terminal)?;
    }
    Ok(())
}

/// The loading screen: a spinner until the snapshot arrives; q or Ctrl-C gives up
/// (None).
fn spin(term: &mut CrosstermTerminalAdapter, load: &Receiver<Loaded>) -> Result<Option<Opened>, ViewerError> {
    use tuirealm::ratatui::crossterm::event::{self, KeyCode, KeyModifiers as Mods};
    use tuirealm::ratatui::widgets::Paragraph;
    const SPIN: [char; 4] = ['|', '/', '-', '\\'];
    let started = Instant::now();
    for i in 0usize.. {
        if STOP.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match load.recv_timeout(Duration::from_millis(80)) {
            Ok(Ok(x)) => return Ok(Some(x)),
            Ok(Err(e)) => return Err(ViewerError::Load(e)),
            Err(RecvTimeoutError::Disconnected) => return Err(ViewerError::Load("loading stopped".into())),
            Err(RecvTimeoutError::Timeout) => {}
        }
        let text =
            format!("{} loading the snapshot… {:.1} s   (q to give up)", SPIN[i % 4], started.elapsed().as_secs_f64());
        term.draw(|f| f.render_widget(Paragraph::new(text), f.area()))
            .map_err(|e| ViewerError::Terminal(e.to_string()))?;
        while event::poll(Duration::ZERO).unwrap_or(false) {
            if let Ok(event::Event::Key(k)) = event::read()
                && (k.code == KeyCode::Char('q')
                    || (k.code == KeyCode::Char('c') && k.modifiers.contains(Mods::CONTROL)))
            {
                return Ok(None);
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Frame, Signal, Thread};
    use tuirealm::ratatui::style::Color;

    fn small() -> Snapshot {
        let frame = |f: &str| Frame {
            function: Some(f.into()),
            file: Some("/src/a.c".into()),
            line: Some(3),
            ..Frame::default()
        };
        Snapshot {
            signal: Some(Signal {
                signo: 11,
                name: "SIGSEGV".into(),
                fault_address: Some(0),
                tid: 7,
                ..Signal::default()
            }),
            threads: vec![
                Thread {
                    tid: 7,
                    name: "app".into(),
                    faulted: true,
                    frames: vec![frame("inner"), frame("main")],
                    ..Thread::default()
                },
                Thread { tid: 8, name: "worker".into(), frames: vec![frame("wait")], ..Thread::default() },
                Thread { tid: 9, name: "worker".into(), frames: vec![frame("wait")], ..Thread::default() },
            ],
            ..Snapshot::default()
        }
    }

    fn colours(mono: bool) -> usize {
        let opts = Options { mono, ..Options::default() };
        let b = headless_buffer(small(), Size::new(100, 30), &parse_keys("").expect("keys"), &opts).expect("screen");
        b.content().iter().filter(|c| c.fg != Color::Reset || c.bg != Color::Reset).count()
    }

    #[test]
    fn mono_has_no_colour_and_colour_has_some() {
        assert_eq!(colours(true), 0, "--mono paints nothing");
        assert!(colours(false) > 0, "the default theme marks the fault and the focus");
    }

    #[test]
    fn identical_stacks_are_one_row() {
        let s = headless(small(), Size::new(100, 30), &[], &Options::default()).expect("screen");
        assert!(s.contains("×2▸ wait"), "{s}");
        assert!(!s.contains("      9 worker"), "the second worker is folded:\n{s}");
        let s =
            headless(small(), Size::new(100, 30), &parse_keys("BTab Down Right").expect("keys"), &Options::default())
                .expect("screen");
        assert!(s.contains("×2▾") && s.contains("9 worker"), "expanded:\n{s}");
    }

    #[test]
    fn keys_parse_as_tmux_names_them() {
        let k = parse_keys("Tab BTab C-c /ab Enter Space").expect("keys");
        assert_eq!(k.len(), 8);
        assert_eq!(k[2], KeyEvent::new(Key::Char('c'), KeyModifiers::CONTROL));
        assert_eq!(k[3], KeyEvent::new(Key::Char('/'), KeyModifiers::NONE));
        assert!(parse_keys("C-").is_err() && parse_keys("C-ab").is_err());
        assert!(parse_screen("80x24").is_ok());
        for bad in ["80", "x24", "10x5", "80x24x1", "0x0", "99999x10"] {
            assert!(parse_screen(bad).is_err(), "{bad}");
        }
    }
}
