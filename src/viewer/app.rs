//! The tui-realm application: one component per pane plus the key bar, all
//! views of the one [`Hydra`] model. The Elm loop: an event reaches the focused
//! component, which turns it into a [`Msg`]; `update` applies it to the model
//! and moves tui-realm's focus to the model's pane; the screen is drawn again.
//! The interactive terminal and the headless `--screen` run this same loop,
//! with crossterm or with tui-realm's test terminal and event port.

use super::draw::{self, Theme};
use super::model::{Hydra, Outcome, Pane};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tuirealm::application::{Application, PollStrategy};
use tuirealm::command::{Cmd, CmdResult};
use tuirealm::component::{AppComponent, Component};
use tuirealm::event::{Event, KeyEvent, NoUserEvent};
use tuirealm::listener::EventListenerCfg;
use tuirealm::props::{AttrValue, Attribute, Props, QueryResult};
use tuirealm::ratatui::Frame;
use tuirealm::ratatui::layout::Rect;
use tuirealm::state::State;
use tuirealm::terminal::TerminalAdapter;

pub type Shared = Rc<RefCell<Hydra>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    Pane(usize),
    Bar,
}

#[derive(Debug, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    Redraw,
}

/// A pane (or the bar, `pane: None`) as a tui-realm component.
struct View {
    hydra: Shared,
    pane: Option<Pane>,
    theme: Theme,
    props: Props,
}

impl Component for View {
    fn view(&mut self, frame: &mut Frame, area: Rect) {
        let mut h = self.hydra.borrow_mut();
        match self.pane {
            Some(p) => draw::pane(frame, area, &mut h, p, self.theme),
            None => draw::bar(frame, area, &h, self.theme),
        }
    }

    fn query<'a>(&'a self, attr: Attribute) -> Option<QueryResult<'a>> {
        self.props.get_for_query(attr)
    }

    fn attr(&mut self, attr: Attribute, value: AttrValue) {
        self.props.set(attr, value);
    }

    fn state(&self) -> State {
        State::None
    }

    fn perform(&mut self, _cmd: Cmd) -> CmdResult {
        CmdResult::NoChange
    }
}

impl AppComponent<Msg, NoUserEvent> for View {
    fn on(&mut self, ev: &Event<NoUserEvent>) -> Option<Msg> {
        match ev {
            Event::Keyboard(k) => Some(Msg::Key(*k)),
            Event::WindowResize(..) => Some(Msg::Redraw),
            _ => None,
        }
    }
}

/// The mounted application over a model.
pub struct Screen {
    pub app: Application<Id, Msg, NoUserEvent>,
    pub hydra: Shared,
    theme: Theme,
}

impl Screen {
    pub fn new(hydra: Hydra, listener: EventListenerCfg<NoUserEvent>, theme: Theme) -> Result<Screen, String> {
        let hydra = Rc::new(RefCell::new(hydra));
        let mut app: Application<Id, Msg, NoUserEvent> = Application::init(listener);
        for p in Pane::ALL {
            let v = View { hydra: hydra.clone(), pane: Some(p), theme, props: Props::default() };
            app.mount(Id::Pane(p.index()), Box::new(v), Vec::new()).map_err(|e| e.to_string())?;
        }
        let bar = View { hydra: hydra.clone(), pane: None, theme, props: Props::default() };
        app.mount(Id::Bar, Box::new(bar), Vec::new()).map_err(|e| e.to_string())?;
        let mut me = Screen { app, hydra, theme };
        me.refocus();
        Ok(me)
    }

    fn refocus(&mut self) {
        let focus = self.hydra.borrow().focus;
        // The id is mounted above; failing here would be a bug in this file.
        let _ = self.app.active(&Id::Pane(focus.index()));
    }

    /// Applies one message; true when hydra must quit.
    pub fn update(&mut self, msg: Msg) -> bool {
        let quit = match msg {
            Msg::Key(k) => matches!(self.hydra.borrow_mut().key(&k), Outcome::Quit),
            Msg::Redraw => false,
        };
        self.refocus();
        quit
    }

    /// Draws the whole screen.
    pub fn draw<T: TerminalAdapter>(&mut self, term: &mut T) -> Result<(), String> {
        let theme = self.theme;
        let hydra = self.hydra.clone();
        let app = &mut self.app;
        term.draw(|f| {
            let (panes, bar) = draw::layout(&hydra.borrow(), f.area());
            for (i, area) in panes.iter().enumerate() {
                if let Some(a) = area {
                    app.view(&Id::Pane(i), f, *a);
                }
            }
            app.view(&Id::Bar, f, bar);
            if hydra.borrow().help {
                draw::help(f, f.area(), theme);
            }
        })
        .map(|_| ())
        .map_err(|e| format!("drawing the screen: {e}"))
    }

    /// Waits up to `wait` for events; returns the messages they became.
    pub fn tick(&mut self, wait: Duration) -> Result<Vec<Msg>, String> {
        self.app.tick(PollStrategy::UpTo(64, wait)).map_err(|e| format!("reading keys: {e}"))
    }
}
