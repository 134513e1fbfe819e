//! hydra, the terminal viewer of one snapshot: Threads, Frames, Variables and a
//! Peripheral pane of nine tabs, on tui-realm. The only module that names
//! tui-realm and ratatui; it reads snapshots only through [`crate::snapshot`].
//!
//! - [`model`]: the state and what each key does (no terminal);
//! - [`tree`]: the variables tree, expanded past the captured depth from kept memory;
//! - [`tabs`]: the peripheral tabs as lines; [`draw`]: ratatui drawing;
//! - [`app`]: the tui-realm application, shared by the terminal and `--screen`.

mod app;
mod draw;
pub mod model;
mod tabs;
pub mod tree;

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
    /// No colours (also with `NO_COLOR` set).
    pub mono: bool,
    /// What the store says about the object (project, object id, group), for Summary.
    pub origin: Vec<(String, String)>,
}

/// What to view: a snapshot and the store's facts about it, or the error that
/// prevented loading it.
pub type Loaded = Result<(Snapshot, Vec<(String, String)>), String>;

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
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    draw::Theme { mono: opts.mono || no_color }
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
    for k in keys {
        tx.send(Event::Keyboard(*k)).map_err(|e| ViewerError::Terminal(e.to_string()))?;
    }
    let mut applied = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied < keys.len() {
        let (n, quit) = screen.turn(Duration::from_millis(20)).map_err(ViewerError::Terminal)?;
        applied += n;
        if n > 0 {
            screen.draw(&mut term).map_err(ViewerError::Terminal)?;
        }
        if quit {
            break;
        }
        if Instant::now() > deadline {
            return Err(ViewerError::Terminal(format!("only {applied} of {} keys arrived", keys.len())));
        }
    }
    screen.draw(&mut term).map_err(ViewerError::Terminal)?;
    Ok(tuirealm::testing::buffer_to_string(term.raw().backend().buffer()))
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
    early: Option<(Snapshot, Vec<(String, String)>)>,
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
        let (n, quit) = screen.turn(Duration::from_millis(50)).map_err(ViewerError::Terminal)?;
        if quit {
            break;
        }
        if n > 0 {
            screen.draw(term).map_err(ViewerError::Terminal)?;
        }
    }
    Ok(())
}

/// The loading screen: a spinner until the snapshot arrives; q or Ctrl-C gives up
/// (None).
fn spin(
    term: &mut CrosstermTerminalAdapter,
    load: &Receiver<Loaded>,
) -> Result<Option<(Snapshot, Vec<(String, String)>)>, ViewerError> {
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
