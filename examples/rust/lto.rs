//! A Rust program built with fat LTO (`rustc -g -C lto=fat -C opt-level=2`) that
//! crashes in a worker thread while the main thread joins it. LTO inlines code of one
//! crate's units into another's: many inlined frames (std's thread and thread-local
//! machinery, this program's closures) have their abstract DIE in another compile
//! unit, and must still be named from it as gdb names them.

use std::cell::Cell;

thread_local! {
    static VISITS: Cell<usize> = const { Cell::new(0) };
}

mod stock {
    pub struct Bin {
        pub counts: Vec<u32>,
    }

    impl Bin {
        #[inline]
        pub fn take(&self, slot: usize) -> u32 {
            if slot >= self.counts.len() {
                // SAFETY: deliberately unsound; this example exists to crash.
                unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u32>(), slot as u32) };
            }
            self.counts[slot]
        }
    }
}

mod picker {
    pub fn drain(slots: usize) -> u32 {
        let bin = crate::stock::Bin { counts: vec![4, 5, 6] };
        crate::VISITS.with(|v| {
            v.set(v.get() + 1);
            (0..slots).map(|s| bin.take(s)).sum()
        })
    }
}

fn main() {
    let slots = std::env::args().count() + 4;
    let worker = std::thread::Builder::new().name("picker".into()).spawn(move || picker::drain(slots));
    println!("{:?}", worker.map(|w| w.join()));
}
