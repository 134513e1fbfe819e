//! Every walk terminates, whatever the stack holds: random stacks, self-referencing
//! frame-pointer chains and return addresses that point back into the same stack, over
//! the real modules of this test process (mapped where they really are).

use bt::capture::CopiedMemory;
use bt::snapshot::{Mapping, Registers};
use bt::symbols::{ModuleSet, SymbolOptions};
use bt::unwind::{WalkOptions, walk};

/// This process's file mappings, parsed from /proc/self/maps.
fn self_maps() -> Vec<Mapping> {
    let text = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let range = it.next()?;
            let perms = it.next()?.to_string();
            let offset = u64::from_str_radix(it.next()?, 16).ok()?;
            let _dev = it.next()?;
            let _inode = it.next()?;
            let path = it.collect::<Vec<_>>().join(" ");
            let (a, b) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                perms,
                offset,
                path,
            })
        })
        .collect()
}

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[inline(never)]
fn some_code_address() -> u64 {
    some_code_address as *const () as u64
}

#[test]
fn random_stacks_always_terminate() {
    let maps = self_maps();
    let (modules, _) = ModuleSet::load(&maps, &[], &[], &CopiedMemory::default(), &SymbolOptions::default());
    let code: Vec<u64> =
        maps.iter().filter(|m| m.perms.contains('x') && m.path.starts_with('/')).map(|m| m.start + 0x40).collect();
    assert!(!code.is_empty());
    let stack_base = 0x7ffd_0000_0000u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..300 {
        let mut words = Vec::with_capacity(4096);
        for i in 0..4096u64 {
            let w = match rng.next() % 6 {
                // A code address somewhere in a real module (plausible return addresses).
                0 => code[(rng.next() % code.len() as u64) as usize] + rng.next() % 0x4000,
                // A pointer back into the stack, also below the current slot (loops).
                1 => stack_base + (rng.next() % 4096) * 8,
                2 => stack_base + i * 8,
                3 => some_code_address() + rng.next() % 64,
                _ => rng.next(),
            };
            words.push(w);
        }
        let mut mem = CopiedMemory::default();
        mem.add(stack_base, words.iter().flat_map(|w| w.to_le_bytes()).collect());
        let sp = stack_base + (rng.next() % 64) * 8;
        let regs = Registers {
            rip: if case % 2 == 0 { some_code_address() } else { code[case % code.len()] + rng.next() % 0x2000 },
            rsp: sp,
            rbp: stack_base + (rng.next() % 4096) * 8,
            rbx: rng.next(),
            ..Default::default()
        };
        let opts = WalkOptions { max_frames: 256 };
        let (frames, _problems) = walk(&regs, &mem, &modules, &opts);
        assert!(!frames.is_empty() && frames.len() <= 256, "case {case}: {} frames", frames.len());
        // Each caller frame moved the stack up, except right after a signal frame.
        for w in frames.windows(2).skip(1) {
            assert!(
                w[1].sp > w[0].sp || w[0].signal_frame || w[1].registers.is_empty(),
                "case {case}: sp went down {:#x} -> {:#x}",
                w[0].sp,
                w[1].sp
            );
        }
        for f in frames {
            let _ = modules.symbolize(f);
        }
    }
}

#[test]
fn self_referencing_frame_pointer_chain_terminates() {
    let maps = self_maps();
    let (modules, _) = ModuleSet::load(&maps, &[], &[], &CopiedMemory::default(), &SymbolOptions::default());
    let stack_base = 0x7ffd_0000_0000u64;
    // [rbp] = rbp (a loop) and [rbp+8] = a code address.
    let mut words = vec![0u64; 64];
    words[4] = stack_base + 32;
    words[5] = some_code_address() + 5;
    let mut mem = CopiedMemory::default();
    mem.add(stack_base, words.iter().flat_map(|w| w.to_le_bytes()).collect());
    // A pc with no CFI: an address in a data mapping of a module is not code; use 1.
    let regs = Registers { rip: 1, rsp: stack_base, rbp: stack_base + 32, ..Default::default() };
    let (frames, _) = walk(&regs, &mem, &modules, &WalkOptions { max_frames: 1000 });
    assert!(frames.len() < 10, "{} frames from a two-word loop", frames.len());
}
