//! A terminal simulation: balls bounce between two walls, and every bounce scores. Each frame
//! advances the world through the hot function [`physics::step`] and draws it through the hot
//! function [`render::frame`].
//!
//! Run it with `cargo hotswap run`, then edit the physics (the speed, the bounce) or the
//! rendering (the characters, the layout) and save: the running simulation changes at the
//! start of the next frame, with the balls where they were and the score it had.
//!
//! Patches are applied at safe points ([`hotswap::safepoint`], once per frame), so a frame runs
//! wholly old or wholly new code: its two physics substeps never disagree. `FRAMES` (how many
//! frames to run; default: forever) and `FRAME_MS` (the frame time; default 100) come from the
//! environment.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod physics;
mod render;

/// The simulation's state: it lives in `main` and survives every patch.
#[derive(Debug, Clone)]
pub struct World {
    /// Width of the field, in cells.
    pub width: i64,
    /// The balls.
    pub balls: Vec<Ball>,
    /// Bounces so far.
    pub score: u64,
    /// Which physics code ran in each substep of this frame, shown by the renderer.
    pub physics: Vec<&'static str>,
}

/// One ball: a position and a velocity, in cells and cells per frame.
#[derive(Debug, Clone, Copy)]
pub struct Ball {
    /// Position in cells from the left wall.
    pub x: i64,
    /// Velocity in cells per frame.
    pub vx: i64,
}

hotswap::persist! {
    /// The frame being run, for the `on_patch` report.
    static FRAME: AtomicU64 = AtomicU64::new(0);
}

/// Physics substeps per frame.
const SUBSTEPS: u32 = 2;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ANCHOR: main_loop
fn main() {
    // Patches wait for the next `safepoint()`: a frame never mixes old and new code.
    hotswap::set_apply_mode(hotswap::ApplyMode::SafePoints);
    hotswap::on_patch(|info| {
        println!(
            "patched before frame={} gen={}: {}",
            FRAME.load(Ordering::Relaxed),
            info.generation,
            info.changed.join(", ")
        );
    });
    let frames = env_number("FRAMES", u64::MAX);
    let frame_time = Duration::from_millis(env_number("FRAME_MS", 100));
    let terminal = std::io::stdout().is_terminal();
    let mut world = World {
        width: 40,
        balls: vec![Ball { x: 3, vx: 1 }, Ball { x: 30, vx: -2 }],
        score: 0,
        physics: Vec::new(),
    };
    for frame in 1..=frames {
        FRAME.store(frame, Ordering::Relaxed);
        hotswap::safepoint();
        world.physics.clear();
        for _ in 0..SUBSTEPS {
            physics::step(&mut world);
            // The frame's work takes time; a patch that arrives now waits for the next frame.
            std::thread::sleep(frame_time / SUBSTEPS);
        }
        let picture = render::frame(&world, frame);
        if terminal {
            print!("\r\x1b[2K{picture}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{picture}");
        }
    }
}
// ANCHOR_END: main_loop
